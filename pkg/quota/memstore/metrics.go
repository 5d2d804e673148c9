package memstore

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's own; New registers them on the caller's
// Registerer, never on the global one.
type metrics struct {
	evictions prometheus.Counter
	expired   prometheus.Counter
	keys      prometheus.GaugeFunc
}

func newMetrics(s *Store) metrics {
	return metrics{
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "quota_memstore", Name: "evictions_total",
			Help: "Live counters dropped to make room because the store held MaxKeys; each one restarts from zero.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "quota_memstore", Name: "expired_total",
			Help: "Counters dropped after their window or bucket expired.",
		}),
		keys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "portcullis", Subsystem: "quota_memstore", Name: "keys",
			Help: "Counters held, including expired ones not yet dropped.",
		}, func() float64 { return float64(s.Len()) }),
	}
}

func (m metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.evictions, m.expired, m.keys} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}
