package redisstore

import "github.com/prometheus/client_golang/prometheus"

// metrics have no per-key labels: cardinality is fixed.
type metrics struct {
	errors          *prometheus.CounterVec
	pipelineSeconds prometheus.Histogram
	batchSize       prometheus.Histogram
	scriptBatch     prometheus.Histogram
	cacheHits       prometheus.Counter
	refunds         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "portcullis", "redisstore"
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Requests that failed with ErrUnavailable, by kind: deadline, queue_full, closed, connection, timeout, cluster_down, loading, failover, noscript, redis; script_load counts failed script loads."},
			[]string{"kind"}),
		pipelineSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "pipeline_duration_seconds",
			Help:    "Round trip of one pipeline of script calls.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_size",
			Help:    "Requests sent in one pipeline: above 1, concurrent requests are sharing round trips.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		scriptBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "script_batch_size",
			Help:    "Requests judged by one script call (on Cluster, a request's checks in one slot count once per slot): above 1, requests are sharing the script call's fixed cost in Redis.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "local_cache_hits_total",
			Help: "Requests denied from the local over-limit cache without a Redis call."}),
		refunds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "refunds_total",
			Help: "Cluster script calls undone because another slot of the same request denied or failed, by result (ok, error)."},
			[]string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.pipelineSeconds, m.batchSize, m.scriptBatch, m.cacheHits, m.refunds)
	}
	return m
}
