package jwtverify

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Fetch kinds and results, label values of the fetch metrics.
const (
	fetchDiscovery = "discovery"
	fetchJWKS      = "jwks"
	resultOK       = "ok"
	resultError    = "error"
)

// metrics are resolved to plain counters per identity provider at
// construction, so that a verification pays one atomic add and no label
// lookup. Every label value comes from the catalog or a closed set, never
// from a token.
type metrics struct {
	ok          prometheus.Counter
	unavailable prometheus.Counter
	invalid     map[Reason]prometheus.Counter
	fetches     *prometheus.CounterVec // idp, kind, result
	fetchTime   *prometheus.HistogramVec
	idp         string
}

func newMetrics(reg prometheus.Registerer, idp string) (*metrics, error) {
	verifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "jwt", Name: "verifications_total",
		Help: "JWT verifications by identity provider, result (ok, invalid, unavailable) and, for invalid, the reason.",
	}, []string{"idp", "result", "reason"})
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "jwt", Name: "key_fetches_total",
		Help: "Requests to an identity provider for its discovery document or its JWKS, by result (ok, error). " +
			"A flood of tokens with unknown kids shows here as at most one jwks fetch per refresh cooldown.",
	}, []string{"idp", "kind", "result"})
	fetchTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "portcullis", Subsystem: "jwt", Name: "key_fetch_duration_seconds",
		Help:    "Time to fetch an identity provider's discovery document or JWKS, failures included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"idp", "kind"})
	if reg != nil {
		var errs []error
		var err error
		verifications, err = registerOrReuse(reg, verifications)
		errs = append(errs, err)
		fetches, err = registerOrReuse(reg, fetches)
		errs = append(errs, err)
		fetchTime, err = registerOrReuse(reg, fetchTime)
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("jwtverify: register metrics: %w", err)
		}
	}
	m := &metrics{
		ok:          verifications.WithLabelValues(idp, "ok", ""),
		unavailable: verifications.WithLabelValues(idp, "unavailable", ""),
		invalid:     make(map[Reason]prometheus.Counter, len(reasons)),
		fetches:     fetches,
		fetchTime:   fetchTime,
		idp:         idp,
	}
	for _, r := range reasons {
		m.invalid[r] = verifications.WithLabelValues(idp, "invalid", string(r))
	}
	return m, nil
}

// verified counts the outcome of one verification.
func (m *metrics) verified(err error) {
	if err == nil {
		m.ok.Inc()
		return
	}
	if ie, ok := errors.AsType[*InvalidError](err); ok {
		if c := m.invalid[ie.Reason]; c != nil {
			c.Inc()
		}
		return
	}
	m.unavailable.Inc()
}

func (m *metrics) fetched(kind string, seconds float64, err error) {
	result := resultOK
	if err != nil {
		result = resultError
	}
	m.fetches.WithLabelValues(m.idp, kind, result).Inc()
	m.fetchTime.WithLabelValues(m.idp, kind).Observe(seconds)
}

// registerOrReuse registers c, or returns the collector already registered
// under the same name, so that every provider's verifier, and the verifiers
// rebuilt after a catalog reload, share one set of series.
func registerOrReuse[T prometheus.Collector](r prometheus.Registerer, c T) (T, error) {
	err := r.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, err
}
