package rls

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/rules"
)

// metrics are labelled by domain and rule name only: both come from
// configuration, never from a request's counter values, so cardinality is
// bounded by the rule set. Domains not in the rule set share one label.
type metrics struct {
	hits, over, near, within, shadow *prometheus.CounterVec
	outcomes                         []prometheus.Counter // by rules.Outcome
	storeErrors                      *prometheus.CounterVec
	storeSeconds                     prometheus.Histogram
	decisions                        *prometheus.CounterVec

	mu     sync.RWMutex
	byRule map[ruleKey]*ruleCounters
}

// ruleKey indexes the per-rule counters without building a string per
// request.
type ruleKey struct{ domain, rule string }

type ruleCounters struct {
	hits, over, near, within, shadow prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	ns := "portcullis_ratelimit"
	byRule := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, []string{"domain", "rule"})
	}
	m := &metrics{
		byRule: make(map[ruleKey]*ruleCounters),
		hits:   byRule("hits_total", "Hits counted against a rule or policy (the sum of hits_addend)."),
		over:   byRule("over_limit_total", "Checks that found a rule or policy over its limit and were enforced."),
		near:   byRule("near_limit_total", "Checks within the limit but past the near-limit ratio."),
		within: byRule("within_limit_total", "Checks within the limit."),
		shadow: byRule("shadow_mode_total", "Checks over the limit that were not enforced (shadow mode or stopOnQuotaReach: false)."),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "store_errors_total",
			Help: "Requests the store could not answer in time, by the failure mode applied."}, []string{"mode"}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "store_duration_seconds",
			Help:    "Time for one request's atomic store step.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "decisions_total",
			Help: "Answers by overall code."}, []string{"code"}),
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "descriptors_total",
		Help: "Descriptors by how they resolved (limited, override, unlimited, replaced, no_domain, no_match, unknown_policy, scope_mismatch, unknown_group, bad_descriptor)."},
		[]string{"outcome"})
	for _, o := range rules.Outcomes() {
		m.outcomes = append(m.outcomes, outcomes.WithLabelValues(o.String()))
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.over, m.near, m.within, m.shadow, outcomes, m.storeErrors, m.storeSeconds, m.decisions)
	}
	return m
}

func (m *metrics) rule(domain, rule string) *ruleCounters {
	key := ruleKey{domain, rule}
	m.mu.RLock()
	c, ok := m.byRule[key]
	m.mu.RUnlock()
	if ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.byRule[key]; ok {
		return c
	}
	c = &ruleCounters{
		hits:   m.hits.WithLabelValues(domain, rule),
		over:   m.over.WithLabelValues(domain, rule),
		near:   m.near.WithLabelValues(domain, rule),
		within: m.within.WithLabelValues(domain, rule),
		shadow: m.shadow.WithLabelValues(domain, rule),
	}
	m.byRule[key] = c
	return c
}

func (m *metrics) outcome(o rules.Outcome) {
	if int(o) < len(m.outcomes) {
		m.outcomes[o].Inc()
	}
}
