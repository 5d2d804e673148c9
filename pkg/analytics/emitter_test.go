package analytics_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

func newEmitter(t *testing.T, opts analytics.EmitterOptions) (*analytics.Emitter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	e, err := analytics.NewEmitter(opts)
	if err != nil {
		t.Fatalf("NewEmitter: %v", err)
	}
	return e, reg
}

func event(id string) analytics.Event {
	return analytics.Event{Source: analytics.SourceAccessLog, CorrelationID: id}
}

func TestEmitterExportsAFullBatchAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{exported: make(chan int, 10)}
		e, reg := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{rec}, BatchSize: 3, FlushInterval: time.Minute})
		start := time.Now()
		for _, id := range []string{"a", "b", "c"} {
			if !e.Emit(event(id)) {
				t.Fatalf("Emit(%s) refused", id)
			}
		}
		if n := <-rec.exported; n != 3 {
			t.Errorf("first batch has %d events, want 3", n)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("a full batch waited %v for the flush interval", waited)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := metricValue(t, reg, "portcullis_analytics_events_exported_total", "sink", "recorder"); got != 3 {
			t.Errorf("events_exported_total = %v, want 3", got)
		}
		if got := metricValue(t, reg, "portcullis_analytics_events_total"); got != 3 {
			t.Errorf("events_total = %v, want 3", got)
		}
	})
}

func TestEmitterExportsAPartialBatchAfterTheFlushInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{exported: make(chan int, 10)}
		e, _ := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{rec}, BatchSize: 100, FlushInterval: 2 * time.Second})
		start := time.Now()
		e.Emit(event("a"))
		e.Emit(event("b"))
		if n := <-rec.exported; n != 2 {
			t.Errorf("batch has %d events, want 2", n)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("partial batch exported after %v, want the 2s flush interval", waited)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}

func TestEmitterDropsAndCountsWhenTheQueueIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		rec := &recorder{block: release}
		e, reg := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{rec}, QueueSize: 2, BatchSize: 1, FlushInterval: time.Second})
		e.Emit(event("taken by the exporter"))
		synctest.Wait() // the exporter holds the first event and blocks in the sink
		accepted := []bool{e.Emit(event("queued 1")), e.Emit(event("queued 2")), e.Emit(event("dropped"))}
		if want := []bool{true, true, false}; !equalBools(accepted, want) {
			t.Errorf("Emit accepted %v, want %v", accepted, want)
		}
		if got := metricValue(t, reg, "portcullis_analytics_events_dropped_total", "reason", "queue_full"); got != 1 {
			t.Errorf("events_dropped_total{queue_full} = %v, want 1", got)
		}
		if got := metricValue(t, reg, "portcullis_analytics_queue_length"); got != 2 {
			t.Errorf("queue_length = %v, want 2", got)
		}
		close(release)
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		var ids []string
		for _, ev := range rec.events() {
			ids = append(ids, ev.CorrelationID)
		}
		if want := "taken by the exporter,queued 1,queued 2"; strings.Join(ids, ",") != want {
			t.Errorf("exported %v, want %s", ids, want)
		}
	})
}

func TestEmitterCloseFlushesWhatIsQueuedAndShutsSinksDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := &recorder{name: "a"}, &recorder{name: "b"}
		e, _ := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{a, b}, BatchSize: 4, FlushInterval: time.Hour})
		for i := range 10 {
			e.Emit(event(string(rune('0' + i))))
		}
		start := time.Now()
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %v for the flush interval", waited)
		}
		for _, r := range []*recorder{a, b} {
			if got := len(r.events()); got != 10 {
				t.Errorf("sink %s got %d events, want 10", r.name, got)
			}
			for _, n := range r.sizes() {
				if n > 4 {
					t.Errorf("sink %s got a batch of %d, more than BatchSize 4", r.name, n)
				}
			}
			if r.shutdown != 1 {
				t.Errorf("sink %s shut down %d times, want 1", r.name, r.shutdown)
			}
		}
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestEmitterDropsAndCountsEventsAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e, reg := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{rec}})
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if e.Emit(event("late")) {
			t.Error("Emit after Close accepted the event")
		}
		if got := metricValue(t, reg, "portcullis_analytics_events_dropped_total", "reason", "closed"); got != 1 {
			t.Errorf("events_dropped_total{closed} = %v, want 1", got)
		}
		if got := len(rec.events()); got != 0 {
			t.Errorf("sink got %d events", got)
		}
	})
}

func TestEmitterCloseGivesUpAtItsDeadlineAndCancelsTheExport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{block: make(chan struct{})} // never released: only ctx ends the export
		e, _ := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{rec}, ExportTimeout: time.Hour})
		e.Emit(event("stuck"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := e.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("Close returned after %v, want its 5s deadline", waited)
		}
		synctest.Wait() // the cancelled export returns and the emitter finishes
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.sawCtx) != 1 || !errors.Is(rec.sawCtx[0], context.Canceled) {
			t.Errorf("export saw ctx errors %v, want one Canceled", rec.sawCtx)
		}
	})
}

func TestEmitterCountsAFailingSinkAndLogsOnlyTheChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		failing := &recorder{name: "failing", fail: errors.New("collector unreachable"), exported: make(chan int, 10)}
		healthy := &recorder{name: "healthy"}
		e, reg := newEmitter(t, analytics.EmitterOptions{
			Sinks: []analytics.Sink{failing, healthy}, BatchSize: 2, FlushInterval: time.Hour,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		for range 3 { // three failed batches
			e.Emit(event("x"))
			e.Emit(event("y"))
			<-failing.exported
		}
		failing.mu.Lock()
		failing.fail = nil
		failing.mu.Unlock()
		e.Emit(event("x"))
		e.Emit(event("y"))
		<-failing.exported
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		checks := []struct {
			name   string
			labels []string
			want   float64
		}{
			{"portcullis_analytics_export_failures_total", []string{"sink", "failing"}, 3},
			{"portcullis_analytics_events_failed_total", []string{"sink", "failing"}, 6},
			{"portcullis_analytics_events_exported_total", []string{"sink", "failing"}, 2},
			{"portcullis_analytics_events_exported_total", []string{"sink", "healthy"}, 8},
			{"portcullis_analytics_export_failures_total", []string{"sink", "healthy"}, 0},
			{"portcullis_analytics_export_duration_seconds", []string{"sink", "healthy"}, 4},
		}
		for _, c := range checks {
			if got := metricValue(t, reg, c.name, c.labels...); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		out := logs.String()
		if n := strings.Count(out, "analytics export failing"); n != 1 {
			t.Errorf("logged the failure %d times, want once:\n%s", n, out)
		}
		if n := strings.Count(out, "analytics export recovered"); n != 1 {
			t.Errorf("logged the recovery %d times, want once:\n%s", n, out)
		}
	})
}

func TestNewEmitterRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    func(reg prometheus.Registerer) analytics.EmitterOptions
		wantErr string
	}{
		{name: "no sink", opts: func(prometheus.Registerer) analytics.EmitterOptions { return analytics.EmitterOptions{} }, wantErr: "no sink"},
		{name: "nil sink", opts: func(prometheus.Registerer) analytics.EmitterOptions {
			return analytics.EmitterOptions{Sinks: []analytics.Sink{nil}}
		}, wantErr: "sink 0 is nil"},
		{name: "metrics already registered", opts: func(reg prometheus.Registerer) analytics.EmitterOptions {
			first, err := analytics.NewEmitter(analytics.EmitterOptions{Sinks: []analytics.Sink{&recorder{}}, Registerer: reg})
			if err != nil {
				t.Fatalf("first NewEmitter: %v", err)
			}
			t.Cleanup(func() { _ = first.Close(context.Background()) })
			return analytics.EmitterOptions{Sinks: []analytics.Sink{&recorder{}}, Registerer: reg}
		}, wantErr: "register analytics metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := analytics.NewEmitter(tt.opts(prometheus.NewRegistry()))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				if e != nil {
					_ = e.Close(context.Background())
				}
				t.Fatalf("NewEmitter = %v; want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
