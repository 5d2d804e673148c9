package catalog

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

// Watcher reports changes to the catalog's files; internal/watch.Watcher
// implements it. Create it before the first Load, so that a change made
// between loading and watching is not missed.
type Watcher interface {
	// Run calls onChange after each settled change until ctx is done.
	Run(ctx context.Context, onChange func()) error
}

// SourceOptions configure a Source.
type SourceOptions struct {
	// Path is a catalog file or directory, as LoadPath reads it.
	Path string
	// Logger receives each reload's outcome; nil discards it.
	Logger *slog.Logger
	// Registerer receives the reload metrics; nil registers none. Pass the
	// binary's own registry, never the global one.
	Registerer prometheus.Registerer
	// Now stamps successful reloads for the metrics; nil means time.Now.
	Now func() time.Time
}

// Source holds the current catalog Snapshot and replaces it on reload. A
// reload that fails keeps the last good snapshot and logs every problem
// with its file and line: a bad edit to a ConfigMap must not take down a
// data plane that was serving correctly.
type Source struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	current atomic.Pointer[Snapshot]

	mu          sync.Mutex // serialises loads, so snapshots are published in order
	subscribers []func(*Snapshot)

	m sourceMetrics
}

type sourceMetrics struct {
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	healthy     prometheus.Gauge
	problems    prometheus.Gauge
	objects     *prometheus.GaugeVec
}

// NewSource returns a Source with no snapshot yet; call Load.
func NewSource(opts SourceOptions) (*Source, error) {
	s := &Source{path: opts.Path, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	const ns, sub = "portcullis", "catalog"
	s.m = sourceMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "loads_total",
			Help: "Catalog loads by result (success, failure).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_success_timestamp_seconds",
			Help: "When the catalog in use was loaded, as a Unix time.",
		}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_load_successful",
			Help: "1 if the last load succeeded, 0 if it failed and an older catalog is in use.",
		}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "problems",
			Help: "Problems found by the last load; 0 after a successful one.",
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "objects",
			Help: "Documents in the catalog in use, by kind.",
		}, []string{"kind"}),
	}
	// Both results exist from the start, so that a rate() over failures
	// works before the first one.
	s.m.reloads.WithLabelValues("success")
	s.m.reloads.WithLabelValues("failure")
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.m.reloads, s.m.lastSuccess, s.m.healthy, s.m.problems, s.m.objects} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register catalog metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Snapshot returns the catalog in use; nil until a Load has succeeded.
// Read it once per request and use that value throughout.
func (s *Source) Snapshot() *Snapshot { return s.current.Load() }

// OnUpdate registers fn to be called with every snapshot that is put in
// use, and at once with the current one if there is one, so a consumer
// that compiles its own view (the rate-limit rule set) never misses one.
// Calls are serialised and in order; fn must not call Load.
func (s *Source) OnUpdate(fn func(*Snapshot)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribers = append(s.subscribers, fn)
	if cur := s.current.Load(); cur != nil {
		fn(cur)
	}
}

// Load reads and validates the catalog and, if it is good, puts it in use
// and tells the subscribers. If it is not, the snapshot in use stays, every
// problem is logged with its file and line, and the error (Problems, or a
// read failure) is returned.
func (s *Source) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := LoadPath(ctx, s.path)
	if err != nil {
		if ctx.Err() == nil { // a cancelled load says nothing about the catalog
			s.failed(err)
		}
		return fmt.Errorf("load catalog %s: %w", s.path, err)
	}
	s.current.Store(snap)
	s.m.reloads.WithLabelValues("success").Inc()
	s.m.healthy.Set(1)
	s.m.problems.Set(0)
	s.m.lastSuccess.Set(float64(s.now().UnixNano()) / 1e9)
	counts := map[string]int{
		KindIdentityProvider: len(snap.idps),
		KindAPI:              len(snap.apis),
		KindApplication:      len(snap.apps),
		KindSubscription:     len(snap.subs),
		KindPolicy:           len(snap.policies),
	}
	attrs := []slog.Attr{slog.String("path", s.path)}
	for kind, n := range counts {
		s.m.objects.WithLabelValues(kind).Set(float64(n))
	}
	for _, kind := range []string{KindIdentityProvider, KindAPI, KindApplication, KindSubscription, KindPolicy} {
		attrs = append(attrs, slog.Int(kind, counts[kind]))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "catalog loaded", attrs...)
	for _, fn := range s.subscribers {
		fn(snap)
	}
	return nil
}

// maxLoggedProblems bounds the log lines of one failed load; the count of
// the rest is logged, and the returned error holds them all.
const maxLoggedProblems = 50

func (s *Source) failed(err error) {
	s.m.reloads.WithLabelValues("failure").Inc()
	s.m.healthy.Set(0)
	keeping := "none: nothing is served until a load succeeds"
	if s.current.Load() != nil {
		keeping = "the last good catalog"
	}
	var ps Problems
	if !errors.As(err, &ps) {
		s.m.problems.Set(1)
		s.log.Error("catalog load failed", "path", s.path, "error", err, "keeping", keeping)
		return
	}
	s.m.problems.Set(float64(len(ps)))
	for i, p := range ps {
		if i == maxLoggedProblems {
			s.log.Error("catalog problems not logged", "count", len(ps)-i)
			break
		}
		reason := ""
		if p.Err != nil {
			reason = p.Err.Error()
		}
		s.log.Error("catalog problem",
			"file", p.Pos.File, "line", p.Pos.Line,
			"kind", p.Kind, "name", p.Name, "field", p.Field,
			"reason", reason)
	}
	s.log.Error("catalog load failed", "path", s.path, "problems", len(ps), "keeping", keeping)
}

// Run reloads the catalog whenever w reports a change, until ctx is done.
// Call Load first: Run does not load by itself.
func (s *Source) Run(ctx context.Context, w Watcher) error {
	err := w.Run(ctx, func() {
		// The outcome is logged and counted by Load; a failed reload
		// keeps the catalog in use, and the next change tries again.
		_ = s.Load(ctx)
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch catalog %s: %w", s.path, err)
	}
	return nil
}
