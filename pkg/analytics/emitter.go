package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// before it is exported anyway: the queue is drained on this tick, and
	// at once whenever a full batch is waiting. Default 1s.
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
//
// The queue is a slice behind a mutex that the exporter swaps for an
// empty one, rather than a channel: an event costs one short critical
// section on the request path and nothing per event on the exporter's
// side, where a channel costs a locked receive and a copy per event and a
// wake-up of the exporter whenever it had caught up.
type Emitter struct {
	mu     sync.Mutex
	queue  []Event       // under mu
	closed bool          // under mu
	spare  []Event       // the exporter's: the other buffer, swapped in by take
	kick   chan struct{} // a full batch is waiting
	sinks  []Sink
	opts   EmitterOptions
	log    *slog.Logger
	m      *emitterMetrics

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
		queue:     make([]Event, 0, min(opts.QueueSize, opts.BatchSize)),
		spare:     make([]Event, 0, min(opts.QueueSize, opts.BatchSize)),
		kick:      make(chan struct{}, 1),
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
func (e *Emitter) Emit(ev Event) bool {
	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		e.m.droppedClosed.Inc()
		return false
	case len(e.queue) >= e.opts.QueueSize:
		e.mu.Unlock()
		e.m.droppedFull.Inc()
		return false
	}
	e.queue = append(e.queue, ev)
	full := len(e.queue) == e.opts.BatchSize
	e.mu.Unlock()
	// The exporter sleeps on the kick channel and the flush tick: only the
	// event that completes a batch wakes it.
	if full {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// Close stops accepting events, exports everything queued, then shuts the
// sinks down. If ctx ends first, in-flight exports are cancelled and Close
// returns ctx's error without waiting further. Close is safe to call more
// than once; later calls wait for (and report) the same shutdown.
func (e *Emitter) Close(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
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

// run is the one goroutine that calls the sinks. It waits for a kick (a
// full batch queued) or the flush tick, then exports everything queued.
func (e *Emitter) run() {
	defer close(e.done)
	defer e.cancel()
	tick := time.NewTicker(e.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.kick:
		case <-tick.C:
		case <-e.stop:
			e.drain() // nothing is accepted once stop is closed
			var errs []error
			for _, s := range e.sinks {
				if err := s.Shutdown(e.ctx); err != nil {
					errs = append(errs, fmt.Errorf("shut down analytics sink %s: %w", s.Name(), err))
				}
			}
			e.closeErr = errors.Join(errs...)
			return
		}
		e.drain()
	}
}

// drain exports what is queued, a batch at a time, until the queue is
// empty: under steady load the exporter keeps going without waiting for a
// kick.
func (e *Emitter) drain() {
	for {
		e.mu.Lock()
		events := e.queue
		e.queue = e.spare
		e.mu.Unlock()
		if len(events) == 0 {
			e.spare = events
			return
		}
		for rest := events; len(rest) > 0; {
			n := min(len(rest), e.opts.BatchSize)
			e.export(rest[:n])
			rest = rest[n:]
		}
		clear(events) // let the strings the events hold be collected
		e.spare = events[:0]
	}
}

// export hands one batch to every sink.
func (e *Emitter) export(batch []Event) {
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
		Help: "Events waiting for export."}, func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(len(e.queue))
	})
	queueCap := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_capacity",
		Help: "Events the queue holds before Emit drops."}, func() float64 { return float64(e.opts.QueueSize) })

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
