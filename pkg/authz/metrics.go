package authz

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Allow labels of the decisions metric: how the caller was let in.
const (
	allowAPIKey    = "api_key"
	allowJWT       = "jwt"
	allowOpaque    = "opaque"
	allowAnonymous = "anonymous"
	allowUnmanaged = "unmanaged"
)

// metrics count decisions by result and reason. Every label value comes
// from a closed set (the reasons table and the allow kinds), never from the
// request, so the series are bounded and created up front; the request
// path increments a counter it already holds, with no label lookup.
type metrics struct {
	allow       map[string]prometheus.Counter
	deny        [reasonCount]prometheus.Counter
	unavailable prometheus.Counter
	seconds     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "authz", Name: "decisions_total",
		Help: "Authorization decisions by result (allow, deny, error) and reason: for allow how the caller proved itself " +
			"(api_key, jwt, opaque, anonymous, unmanaged), for deny the refusal's code, for error idp_unavailable.",
	}, []string{"result", "reason"})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "portcullis", Subsystem: "authz", Name: "decision_duration_seconds",
		Help:    "Time to decide one request, identity-provider calls included.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .01, .05, .25, 1},
	})
	m := &metrics{allow: map[string]prometheus.Counter{}, seconds: seconds}
	for _, k := range []string{allowAPIKey, allowJWT, allowOpaque, allowAnonymous, allowUnmanaged} {
		m.allow[k] = decisions.WithLabelValues("allow", k)
	}
	for _, r := range Reasons() {
		if r == ReasonIdPUnavailable {
			continue // an error, not a deny, when Decide reports it
		}
		m.deny[r] = decisions.WithLabelValues("deny", r.String())
	}
	m.unavailable = decisions.WithLabelValues("error", ReasonIdPUnavailable.String())
	if reg != nil {
		for _, c := range []prometheus.Collector{decisions, seconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register authz metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) denied(r Reason) {
	if r < reasonCount && m.deny[r] != nil {
		m.deny[r].Inc()
	}
}
