package introspect

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an Introspect call, the values of the result label. Every
// call counts under exactly one.
const (
	resultActive     = "active"      // a token
	resultInactive   = "inactive"    // the provider said active: false
	resultRefused    = "refused"     // active, but refused by our checks (exp, iss, token_type, ...), or never sent
	resultTimeout    = "timeout"     // no answer within Timeout or the caller's deadline
	resultTransport  = "unreachable" // connection refused, reset, DNS, TLS
	resultStatus     = "status"      // a non-2xx status other than a client-auth refusal
	resultClientAuth = "client_auth" // the provider refused our client credentials
	resultMalformed  = "malformed"   // not an RFC 7662 response, or too large
	resultSecret     = "secret"      // our client secret could not be read
)

var allResults = []string{resultActive, resultInactive, resultRefused, resultTimeout, resultTransport, resultStatus, resultClientAuth, resultMalformed, resultSecret}

type metrics struct {
	results  map[string]prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(provider string, r prometheus.Registerer) (metrics, error) {
	labels := prometheus.Labels{"provider": provider}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "introspect", Name: "calls_total",
		Help:        "Token introspections by result: active, inactive, refused (by Portcullis's checks), or why no decision was reached (timeout, unreachable, status, client_auth, malformed, secret).",
		ConstLabels: labels,
	}, []string{"result"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "portcullis", Subsystem: "introspect", Name: "duration_seconds",
		Help:        "Time from sending an introspection request to judging its answer, for calls that reached the network.",
		ConstLabels: labels,
		Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	if r != nil {
		var err1, err2 error
		calls, err1 = registerOrReuse(r, calls)
		duration, err2 = registerOrReuse(r, duration)
		if err := errors.Join(err1, err2); err != nil {
			return metrics{}, err
		}
	}
	m := metrics{results: make(map[string]prometheus.Counter, len(allResults)), duration: duration}
	for _, res := range allResults {
		m.results[res] = calls.WithLabelValues(res)
	}
	return m, nil
}

// registerOrReuse registers c, or returns the collector already registered
// under the same name and labels, so that a client rebuilt after a catalog
// reload continues its predecessor's series instead of failing.
func registerOrReuse[T prometheus.Collector](r prometheus.Registerer, c T) (T, error) {
	err := r.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, err
}
