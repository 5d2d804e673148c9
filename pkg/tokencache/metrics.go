package tokencache

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are resolved to plain counters at construction, so that a hit
// pays one atomic add and no label lookup.
type metrics struct {
	hits, negativeHits, misses prometheus.Counter
	staleServes, evictions     prometheus.Counter
}

func newMetrics(c *Cache, name string, r prometheus.Registerer) (metrics, error) {
	labels := prometheus.Labels{"cache": name}
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "tokencache", Name: "lookups_total",
		Help:        "Token lookups by result: hit (a verified token), negative_hit (a remembered refusal), miss (the verifier was asked, or a call already asking it was joined).",
		ConstLabels: labels,
	}, []string{"result"})
	stale := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "tokencache", Name: "stale_serves_total",
		Help:        "Misses answered with an expired entry because the verifier was unavailable (within staleIfError).",
		ConstLabels: labels,
	})
	evictions := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "tokencache", Name: "evictions_total",
		Help:        "Live entries dropped to make room because the cache held MaxEntries; a steady rate means MaxEntries is too small.",
		ConstLabels: labels,
	})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "portcullis", Subsystem: "tokencache", Name: "entries",
		Help:        "Entries held, including expired ones not yet dropped.",
		ConstLabels: labels,
	}, func() float64 { return float64(c.Len()) })

	if r != nil {
		var errs []error
		var err error
		lookups, err = registerOrReuse(r, lookups)
		errs = append(errs, err)
		stale, err = registerOrReuse(r, stale)
		errs = append(errs, err)
		evictions, err = registerOrReuse(r, evictions)
		errs = append(errs, err)
		errs = append(errs, registerOrReplace(r, entries))
		if err := errors.Join(errs...); err != nil {
			return metrics{}, err
		}
	}
	return metrics{
		hits:         lookups.WithLabelValues("hit"),
		negativeHits: lookups.WithLabelValues("negative_hit"),
		misses:       lookups.WithLabelValues("miss"),
		staleServes:  stale,
		evictions:    evictions,
	}, nil
}

// registerOrReuse registers c, or returns the collector already registered
// under the same name and labels, so that a cache rebuilt after a catalog
// reload continues its predecessor's counters instead of failing.
func registerOrReuse[T prometheus.Collector](r prometheus.Registerer, c T) (T, error) {
	err := r.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, err
}

// registerOrReplace registers c in place of a collector with the same
// descriptors: a gauge that reads a cache's size must read the new cache,
// not the one it replaced.
func registerOrReplace(r prometheus.Registerer, c prometheus.Collector) error {
	err := r.Register(c)
	if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		r.Unregister(c)
		err = r.Register(c)
	}
	return err
}
