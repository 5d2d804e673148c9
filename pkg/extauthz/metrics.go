package extauthz

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	transportGRPC = iota
	transportHTTP
)

const (
	outcomeOK = iota
	outcomeDenied
	outcomeUnavailable
	outcomeMalformed
)

var (
	transportNames = [...]string{"grpc", "http"}
	outcomeNames   = [...]string{"ok", "denied", "unavailable", "malformed"}
)

// metrics count checks by transport and outcome; authz counts the
// decisions themselves by reason. The series are created up front and
// held, so a check increments without a label lookup.
type metrics struct {
	byOutcome [len(transportNames)][len(outcomeNames)]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Subsystem: "extauthz", Name: "checks_total",
		Help: "ext_authz checks by transport (grpc, http) and outcome (ok, denied, unavailable: no decision, malformed: not a usable check).",
	}, []string{"transport", "outcome"})
	m := &metrics{}
	for t, tn := range transportNames {
		for o, on := range outcomeNames {
			m.byOutcome[t][o] = vec.WithLabelValues(tn, on)
		}
	}
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			return nil, fmt.Errorf("register ext_authz metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) checks(transport, outcome int) prometheus.Counter {
	return m.byOutcome[transport][outcome]
}
