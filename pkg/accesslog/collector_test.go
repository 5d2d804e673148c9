package accesslog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/accesslog"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/analytics/collectortest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// TestAccessLogEntriesReachARealCollector is the whole analytics path:
// Envoy's entry over the access-log stream, the event, the Emitter, the
// OTLP exporter, and the Collector's OTLP receiver, over gRPC and HTTP.
func TestAccessLogEntriesReachARealCollector(t *testing.T) {
	coll := collectortest.Start(t)
	tests := []struct {
		name string
		flag string
	}{
		{name: "gRPC", flag: "otlp-grpc:" + coll.GRPCAddr()},
		{name: "HTTP", flag: "otlp-http:" + coll.HTTPURL()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(coll.Records())
			spec, err := analytics.ParseSink(tt.flag)
			if err != nil {
				t.Fatalf("ParseSink: %v", err)
			}
			sink, err := analytics.OpenSink(context.Background(), spec, analytics.SinkOptions{ServiceName: "portcullis-authz"})
			if err != nil {
				t.Fatalf("OpenSink: %v", err)
			}
			snap := loadCatalog(t)
			reg := prometheus.NewRegistry()
			usage, err := analytics.NewUsage(analytics.UsageOptions{Catalog: fixedCatalog{snap}, Registerer: reg})
			if err != nil {
				t.Fatalf("NewUsage: %v", err)
			}
			em, err := analytics.NewEmitter(analytics.EmitterOptions{Sinks: []analytics.Sink{sink, usage}, Registerer: reg})
			if err != nil {
				t.Fatalf("NewEmitter: %v", err)
			}
			h := start(t, accesslog.Options{Sink: em, Catalog: fixedCatalog{snap}, TrustedHops: 1})

			throttled := baseEntry()
			local(throttled, 429, "request_rate_limited")
			throttled.CommonProperties.ResponseFlags.RateLimited = true
			throttled.CommonProperties.Metadata.FilterMetadata[accesslog.RateLimitNamespace] = md(
				"rule", "gold", "policy_scope", "subscription", "policy", "gold", "limit_name", "burst")
			s := h.open(t, context.Background(), node)
			s.send(baseEntry(), throttled)
			if err := s.close(); err != nil {
				t.Fatalf("close stream: %v", err)
			}
			if err := em.Close(context.Background()); err != nil {
				t.Fatalf("flush the emitter: %v", err)
			}

			got := coll.Records()[before:]
			if len(got) != 2 {
				t.Fatalf("collector received %d records, want 2", len(got))
			}
			for i, r := range got {
				assertNoSecret(t, fmt.Sprintf("record %d", i), fmt.Sprintf("%+v", r))
				if r.EventName != "portcullis.api.request" || !r.Timestamp.Equal(t0) || r.Resource["service.name"] != "portcullis-authz" {
					t.Errorf("record %d: event %q at %v from %v", i, r.EventName, r.Timestamp, r.Resource)
				}
			}
			wantAllowed := map[string]any{
				"portcullis.event.source":                 "accesslog",
				"portcullis.correlation_id":               "7b1c2e2a-5a4e-4b1e-9d6f-0c2f3b8e1a11",
				"portcullis.api.name":                     "petstore",
				"portcullis.api.version":                  "v1",
				"portcullis.api.context":                  "/petstore/v1",
				"http.request.method":                     "GET",
				"portcullis.api.resource_template":        "/pets/{id}",
				"http.route":                              "/petstore/v1/pets/{id}",
				"portcullis.application.id":               "acme-mobile",
				"portcullis.application.name":             "Acme Mobile",
				"portcullis.application.owner":            "alice@acme.example",
				"portcullis.key_type":                     "PRODUCTION",
				"user.id":                                 "user-42",
				"http.response.status_code":               int64(200),
				"portcullis.target.status_code":           int64(200),
				"portcullis.latency.response_ms":          12.345,
				"portcullis.latency.backend_ms":           9.5,
				"portcullis.latency.request_mediation_ms": 2.5,
				"http.request.size":                       int64(812),
				"http.response.size":                      int64(231),
				"client.address":                          "203.0.113.7",
				"user_agent.original":                     "curl/8.5.0",
				"server.address":                          "api.acme.example",
				"portcullis.proxy.node":                   node,
			}
			if diff := cmp.Diff(wantAllowed, got[0].Attributes); diff != "" {
				t.Errorf("allowed request's attributes (-want +got):\n%s", diff)
			}
			if got[0].Body != "GET /petstore/v1/pets/{id} 200" || got[0].Severity != "INFO" {
				t.Errorf("allowed request: body %q severity %q", got[0].Body, got[0].Severity)
			}
			throttledWant := map[string]any{
				"portcullis.error.category":  "THROTTLED",
				"portcullis.error.subtype":   "BURST",
				"error.type":                 "throttled_burst",
				"portcullis.throttle.policy": "gold",
				"portcullis.throttle.limit":  "burst",
				"http.response.status_code":  int64(429),
			}
			for k, v := range throttledWant {
				if got[1].Attributes[k] != v {
					t.Errorf("throttled request's %s = %v, want %v", k, got[1].Attributes[k], v)
				}
			}
			if _, ok := got[1].Attributes["portcullis.target.status_code"]; ok {
				t.Error("a local reply has a target status")
			}
			if v, _ := metricValue(t, reg, "portcullis_api_errors_total", "api", "petstore:v1", "operation", "GET /pets/{id}",
				"application", "acme-mobile", "error_type", "THROTTLED"); v != 1 {
				t.Errorf("usage errors_total{THROTTLED} = %v, want 1", v)
			}
		})
	}
}

// Compile-time check that the analytics Emitter and catalog Source are what
// the service consumes.
var (
	_ accesslog.EventSink = (*analytics.Emitter)(nil)
	_ accesslog.Catalog   = (*catalog.Source)(nil)
)
