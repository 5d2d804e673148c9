package accesslog

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Node label values that are not node ids.
const (
	// nodeOther is every node past the cap, while no tracked node is idle
	// enough to give up its series.
	nodeOther = "_other"
	// nodeUnknown is a stream whose first message carried no node id.
	nodeUnknown = "_unknown"
)

// nodes keeps per-Envoy-node series: entries received, streams opened and
// the time of the last entry. Node ids are per pod in Istio, so over a
// cluster's life they are unbounded; at most max ids have series of their
// own. A new id takes the series of a node that has no open stream and has
// been silent for idle, if there is one (its series are deleted), else it
// shares the _other series.
type nodes struct {
	max  int
	idle time.Duration
	now  func() time.Time

	entries  *prometheus.CounterVec
	streams  *prometheus.CounterVec
	lastSeen *prometheus.GaugeVec

	mu    sync.Mutex
	byID  map[string]*node
	other *node
	unkn  *node
}

// node is one label value's series, held by its streams so that counting
// an entry takes no lock and no label lookup.
type node struct {
	label    string
	entries  prometheus.Counter
	streams  prometheus.Counter
	lastSeen prometheus.Gauge
	last     atomic.Int64 // unix nanoseconds of the last entry
	open     int          // streams holding it; under nodes.mu
}

func newNodes(max int, idle time.Duration, now func() time.Time) *nodes {
	n := &nodes{
		max: max, idle: idle, now: now, byID: make(map[string]*node),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "accesslog", Name: "entries_total",
			Help: "HTTP access-log entries received, by Envoy node id (capped: _other past the cap, _unknown without an id). " +
				"Compare with Envoy's access_logs.grpc_access_log.logs_written per node: the difference is what the stream lost.",
		}, []string{"node"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "accesslog", Name: "node_streams_total",
			Help: "Access-log streams opened, by Envoy node id. Each reopening after the first is a reconnect, across which entries can be lost.",
		}, []string{"node"}),
		lastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "portcullis", Subsystem: "accesslog", Name: "node_last_entry_timestamp_seconds",
			Help: "When the last entry from a node arrived (unix seconds): a node that serves traffic but stops logging shows a gap here.",
		}, []string{"node"}),
	}
	n.other = n.series(nodeOther)
	n.unkn = n.series(nodeUnknown)
	return n
}

func (n *nodes) collectors() []prometheus.Collector {
	return []prometheus.Collector{n.entries, n.streams, n.lastSeen}
}

func (n *nodes) series(label string) *node {
	return &node{
		label:    label,
		entries:  n.entries.WithLabelValues(label),
		streams:  n.streams.WithLabelValues(label),
		lastSeen: n.lastSeen.WithLabelValues(label),
	}
}

// acquire returns the series a stream from node id counts into.
func (n *nodes) acquire(id string) *node {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.lookup(id)
	s.open++
	s.streams.Inc()
	return s
}

// release is called when a stream ends.
func (n *nodes) release(s *node) {
	n.mu.Lock()
	s.open--
	n.mu.Unlock()
}

func (n *nodes) lookup(id string) *node {
	switch {
	case id == "":
		return n.unkn
	case id == nodeOther || id == nodeUnknown:
		return n.other // a node named like a reserved label does not get to be one
	}
	if s, ok := n.byID[id]; ok {
		return s
	}
	if len(n.byID) >= n.max && !n.evict() {
		return n.other
	}
	s := n.series(id)
	n.byID[id] = s
	return s
}

// evict deletes the series of the node silent longest, if it has no open
// stream and has been silent for idle.
func (n *nodes) evict() bool {
	var victim *node
	for _, s := range n.byID {
		if s.open == 0 && (victim == nil || s.last.Load() < victim.last.Load()) {
			victim = s
		}
	}
	if victim == nil || n.now().Sub(time.Unix(0, victim.last.Load())) < n.idle {
		return false
	}
	delete(n.byID, victim.label)
	n.entries.DeleteLabelValues(victim.label)
	n.streams.DeleteLabelValues(victim.label)
	n.lastSeen.DeleteLabelValues(victim.label)
	return true
}

// received counts k entries that arrived at now.
func (s *node) received(k int, now time.Time) {
	s.entries.Add(float64(k))
	s.last.Store(now.UnixNano())
	s.lastSeen.Set(float64(now.UnixNano()) / 1e9)
}
