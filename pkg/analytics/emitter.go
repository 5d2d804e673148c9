package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink receives batches of events from an Emitter.
type Sink interface {
	// Name labels the sink's metrics and logs: "jsonl", "otlp-grpc",
	// "otlp-http", "usage".
	Name() string
	// Export delivers one batch. The Emitter calls it from one goroutine,
	// never concurrently, and events is valid only during the call. An
	// error means some or all of the batch is lost: the Emitter counts it
	// and carries on, so retrying, if any, is the sink's own business and
	// must honour ctx's deadline.
	Export(ctx context.Context, events []Event) error
	// Shutdown flushes what the sink holds and releases it. Export is not
	// called after it.
	Shutdown(ctx context.Context) error
}

// EmitterOptions tune an Emitter; only Sinks is required.
type EmitterOptions struct {
	// Sinks receive every batch, in order.
	Sinks []Sink
	// QueueSize bounds the events waiting for export; beyond it Emit drops.
	// Default 8192 (a few MB).
	QueueSize int
	// BatchSize is the most events handed to the sinks at once. Default 512.
	BatchSize int
	// FlushInterval is the longest an event waits for a batch to fill
	// before it is exported anyway. Default 1s.
	FlushInterval time.Duration
	// ExportTimeout bounds one batch's export to all sinks. Default 10s.
	ExportTimeout time.Duration
	// Logger receives export failures, once when a sink starts failing and
	// once when it recovers. Nil discards.
	Logger *slog.Logger
	// Registerer receives the emitter's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Emitter takes events off the request path. Emit never blocks: it puts
// the event on a bounded queue, or drops it and counts the drop when the
// queue is full, so a slow or unreachable collector costs events, never
// request latency. One goroutine batches the queue to the sinks; Close
// flushes what is queued, for a SIGTERM that loses nothing that was
// accepted.
type Emitter struct {
	queue  chan Event
	sinks  []Sink
	opts   EmitterOptions
	log    *slog.Logger
	m      *emitterMetrics
	closed atomic.Bool

	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	ctx       context.Context // cancelled when Close gives up waiting
	cancel    context.CancelFunc
	closeErr  error // set before done is closed
	sinkState []bool
}

// NewEmitter starts an Emitter; Close stops it.
func NewEmitter(opts EmitterOptions) (*Emitter, error) {
	if len(opts.Sinks) == 0 {
		return nil, errors.New("new analytics emitter: no sink")
	}
	for i, s := range opts.Sinks {
		if s == nil {
			return nil, fmt.Errorf("new analytics emitter: sink %d is nil", i)
		}
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.ExportTimeout <= 0 {
		opts.ExportTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Emitter{
		queue:     make(chan Event, opts.QueueSize),
		sinks:     opts.Sinks,
		opts:      opts,
		log:       log,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		sinkState: make([]bool, len(opts.Sinks)),
	}
	var err error
	if e.m, err = newEmitterMetrics(opts.Registerer, e); err != nil {
		return nil, fmt.Errorf("new analytics emitter: %w", err)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	go e.run()
	return e, nil
}

// Emit queues ev for export and reports whether it was accepted. It never
// blocks: a full queue, or an Emitter being closed, drops the event and
// counts it in portcullis_analytics_events_dropped_total.
//
// An Emit racing with Close may be accepted and still not exported; Close
// belongs after the servers that emit have stopped.
func (e *Emitter) Emit(ev Event) bool {
	if e.closed.Load() {
		e.m.droppedClosed.Inc()
		return false
	}
	select {
	case e.queue <- ev:
		return true
	default:
		e.m.droppedFull.Inc()
		return false
	}
}

// Close stops accepting events, exports everything queued, then shuts the
// sinks down. If ctx ends first, in-flight exports are cancelled and Close
// returns ctx's error without waiting further. Close is safe to call more
// than once; later calls wait for (and report) the same shutdown.
func (e *Emitter) Close(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
	})
	select {
	case <-e.done:
		return e.closeErr
	case <-ctx.Done():
		e.cancel()
		return fmt.Errorf("close analytics emitter: flush not finished: %w", ctx.Err())
	}
}

// run is the one goroutine that owns the batch and calls the sinks.
func (e *Emitter) run() {
	defer close(e.done)
	defer e.cancel()
	batch := make([]Event, 0, e.opts.BatchSize)
	timer := time.NewTimer(e.opts.FlushInterval)
	timer.Stop()
	for {
		select {
		case ev := <-e.queue:
			if len(batch) == 0 {
				timer.Reset(e.opts.FlushInterval)
			}
			batch = append(batch, ev)
			batch = e.fill(batch)
			if len(batch) >= e.opts.BatchSize {
				timer.Stop()
				batch = e.export(batch)
			}
		case <-timer.C:
			batch = e.export(batch)
		case <-e.stop:
			timer.Stop()
			for {
				batch = e.fill(batch)
				if len(batch) == 0 {
					break
				}
				batch = e.export(batch)
			}
			var errs []error
			for _, s := range e.sinks {
				if err := s.Shutdown(e.ctx); err != nil {
					errs = append(errs, fmt.Errorf("shut down analytics sink %s: %w", s.Name(), err))
				}
			}
			e.closeErr = errors.Join(errs...)
			return
		}
	}
}

// fill adds what is queued, without waiting, until the batch is full.
func (e *Emitter) fill(batch []Event) []Event {
	for len(batch) < e.opts.BatchSize {
		select {
		case ev := <-e.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// export hands the batch to every sink and returns it emptied, its events
// cleared so the strings they hold can be collected.
func (e *Emitter) export(batch []Event) []Event {
	if len(batch) == 0 {
		return batch
	}
	e.m.events.Add(float64(len(batch)))
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.ExportTimeout)
	for i, s := range e.sinks {
		sm := e.m.sinks[i]
		start := time.Now()
		err := s.Export(ctx, batch)
		sm.seconds.Observe(time.Since(start).Seconds())
		if err != nil {
			sm.failedBatches.Inc()
			sm.failedEvents.Add(float64(len(batch)))
			if !e.sinkState[i] {
				e.sinkState[i] = true
				e.log.LogAttrs(ctx, slog.LevelWarn, "analytics export failing; events are being lost",
					slog.String("sink", s.Name()), slog.Int("events", len(batch)), slog.String("error", err.Error()))
			}
			continue
		}
		sm.exported.Add(float64(len(batch)))
		if e.sinkState[i] {
			e.sinkState[i] = false
			e.log.LogAttrs(ctx, slog.LevelInfo, "analytics export recovered", slog.String("sink", s.Name()))
		}
	}
	cancel()
	clear(batch)
	return batch[:0]
}

type sinkMetrics struct {
	exported, failedEvents, failedBatches prometheus.Counter
	seconds                               prometheus.Observer
}

type emitterMetrics struct {
	events                     prometheus.Counter
	droppedFull, droppedClosed prometheus.Counter
	sinks                      []sinkMetrics
}

func newEmitterMetrics(reg prometheus.Registerer, e *Emitter) (*emitterMetrics, error) {
	const ns, sub = "portcullis", "analytics"
	events := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_total",
		Help: "Events taken off the queue for export."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_dropped_total",
		Help: "Events dropped before export: queue_full (the sinks are slower than the traffic) or closed (emitted during shutdown)."},
		[]string{"reason"})
	exported := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_exported_total",
		Help: "Events a sink accepted."}, []string{"sink"})
	failedEvents := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_failed_total",
		Help: "Events in batches a sink failed to export (lost to that sink)."}, []string{"sink"})
	failedBatches := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "export_failures_total",
		Help: "Batches a sink failed to export."}, []string{"sink"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "export_duration_seconds",
		Help:    "Time for one sink to export one batch.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10}}, []string{"sink"})
	queueLen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_length",
		Help: "Events waiting for export."}, func() float64 { return float64(len(e.queue)) })
	queueCap := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_capacity",
		Help: "Events the queue holds before Emit drops."}, func() float64 { return float64(cap(e.queue)) })

	m := &emitterMetrics{
		events:        events,
		droppedFull:   dropped.WithLabelValues("queue_full"),
		droppedClosed: dropped.WithLabelValues("closed"),
	}
	for _, s := range e.sinks {
		n := s.Name()
		m.sinks = append(m.sinks, sinkMetrics{
			exported:      exported.WithLabelValues(n),
			failedEvents:  failedEvents.WithLabelValues(n),
			failedBatches: failedBatches.WithLabelValues(n),
			seconds:       seconds.WithLabelValues(n),
		})
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{events, dropped, exported, failedEvents, failedBatches, seconds, queueLen, queueCap} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register analytics metrics: %w", err)
			}
		}
	}
	return m, nil
}
