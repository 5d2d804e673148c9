package analytics

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// Catalog gives the catalog in force; *catalog.Source satisfies it. It is
// read once per batch.
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// Label values that are not catalog names.
const (
	// LabelNone: the event names none (no API matched, an anonymous
	// caller).
	LabelNone = "_none"
	// LabelOther: the event names one the catalog in force does not have.
	// Event fields come from proxy metadata, which a misconfigured proxy or
	// a stale catalog could fill with anything; only catalog names become
	// label values, so the series stay bounded by the catalog.
	LabelOther = "_other"
)

// UsageOptions configure the usage metrics.
type UsageOptions struct {
	// Catalog bounds the label values. Nil: every name is _other.
	Catalog Catalog
	// Registerer receives the metrics; required.
	Registerer prometheus.Registerer
	// LatencyByApplication adds the application label to the latency
	// histograms. Off by default: a histogram is a dozen series per label
	// set, and applications times operations grows fast (Kong's
	// per-consumer latency is opt-in for the same reason).
	LatencyByApplication bool
}

// Usage is the sink that turns events into Prometheus usage metrics:
// requests, errors and latency per API, operation and application. It
// never labels by path, user, client or anything else from the request,
// only by catalog names (and the closed set of error types).
//
// Decision events and access-log events are both requests: a deployment
// that wires both counts each request twice, so cmd/authz enables
// decision events only where no access log is wired.
type Usage struct {
	cat      Catalog
	byApp    bool
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	backend  *prometheus.HistogramVec
}

var _ Sink = (*Usage)(nil)

// NewUsage registers the usage metrics.
func NewUsage(opts UsageOptions) (*Usage, error) {
	if opts.Registerer == nil {
		return nil, errors.New("new usage metrics: no registerer")
	}
	const ns, sub = "portcullis", "api"
	labels := []string{"api", "operation", "application"}
	latLabels := labels[:2]
	if opts.LatencyByApplication {
		latLabels = labels
	}
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	u := &Usage{
		cat:   opts.Catalog,
		byApp: opts.LatencyByApplication,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests to managed APIs by API (name:version), operation (METHOD /template) and application; " +
				"_none when the request named none, _other when the catalog in force has no such name."}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failed requests by API, operation, application and error type (AUTH, THROTTLED, TARGET_CONNECTIVITY, OTHER)."},
			append(labels[:3:3], "error_type")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help: "Whole-request latency seen by the proxy (first byte in to last byte out).", Buckets: buckets}, latLabels),
		backend: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "backend_duration_seconds",
			Help: "Upstream latency (first byte sent upstream to last byte received).", Buckets: buckets}, latLabels),
	}
	for _, c := range []prometheus.Collector{u.requests, u.errors, u.latency, u.backend} {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register usage metrics: %w", err)
		}
	}
	return u, nil
}

// Name is "usage".
func (u *Usage) Name() string { return "usage" }

// Export counts the batch.
func (u *Usage) Export(_ context.Context, events []Event) error {
	var snap *catalog.Snapshot
	if u.cat != nil {
		snap = u.cat.Snapshot()
	}
	for i := range events {
		e := &events[i]
		api, op, app := Labels(snap, e)
		u.requests.WithLabelValues(api, op, app).Inc()
		if e.ErrorType != ErrorNone {
			u.errors.WithLabelValues(api, op, app, e.ErrorType.String()).Inc()
		}
		if e.ResponseLatency > 0 || e.BackendLatency > 0 {
			lv := []string{api, op, app}
			if !u.byApp {
				lv = lv[:2]
			}
			if e.ResponseLatency > 0 {
				u.latency.WithLabelValues(lv...).Observe(e.ResponseLatency.Seconds())
			}
			if e.BackendLatency > 0 {
				u.backend.WithLabelValues(lv...).Observe(e.BackendLatency.Seconds())
			}
		}
	}
	return nil
}

// Shutdown does nothing: the metrics stay registered for a last scrape.
func (u *Usage) Shutdown(context.Context) error { return nil }

// Labels returns the api, operation and application label values of e: a
// name the catalog snap has, LabelNone when e names none, LabelOther when
// snap (nil: any catalog) does not have it.
func Labels(snap *catalog.Snapshot, e *Event) (api, operation, application string) {
	api, operation, application = LabelNone, LabelNone, LabelNone
	var capi *catalog.CompiledAPI
	if e.APIName != "" {
		api = LabelOther
		if snap != nil {
			if a, ok := snap.API(e.APIName); ok && a.Version == e.APIVersion {
				capi, api = a, a.ID
			}
		}
	}
	if e.APIResourceTemplate != "" {
		operation = LabelOther
		if capi != nil {
			for _, op := range capi.Operations {
				if op.Method == e.APIMethod && op.Template == e.APIResourceTemplate {
					operation = op.Name
					break
				}
			}
		}
	}
	if e.ApplicationID != "" {
		application = LabelOther
		if snap != nil {
			if a, ok := snap.Application(e.ApplicationID); ok {
				application = a.Name
			}
		}
	}
	return api, operation, application
}
