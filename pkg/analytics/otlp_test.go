package analytics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/freeport"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/analytics/collectortest"
	"github.com/portcullis-dev/portcullis/pkg/authz"
)

// TestOTLPRecordsReachARealCollector sends events through the Emitter and
// the OTLP sink to the Collector's own OTLP receiver, over gRPC and over
// HTTP, and reads back what the receiver decoded.
func TestOTLPRecordsReachARealCollector(t *testing.T) {
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
			sink, err := analytics.OpenSink(context.Background(), spec,
				analytics.SinkOptions{ServiceName: "portcullis-authz", ServiceVersion: "1.2.3", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatalf("OpenSink: %v", err)
			}
			e, _ := newEmitter(t, analytics.EmitterOptions{Sinks: []analytics.Sink{sink}})

			throttled := fullEvent()
			// A decision on a request that carries a token and a key in its
			// query: neither may reach the collector.
			var decided analytics.Event
			d := analytics.RecordDecisions(newAuthorizer(t), sinkFunc(func(ev analytics.Event) bool { decided = ev; return true }),
				analytics.DecisionOptions{Clock: func() time.Time { return t0 }})
			if _, err := d.Decide(context.Background(), authz.Request{
				Host: "api.acme.example", Method: "GET", Path: "/petstore/v1/pets/7?api_key=" + secretKey,
				Headers:    map[string]string{"authorization": "Bearer " + secretToken, "user-agent": "acme-mobile/3.1"},
				SourceAddr: "192.0.2.1:4000", RequestID: "req-2",
			}); err != nil {
				t.Fatalf("Decide: %v", err)
			}
			e.Emit(throttled)
			e.Emit(decided)
			if err := e.Close(context.Background()); err != nil {
				t.Fatalf("Close (flush to the collector): %v", err)
			}

			got := coll.Records()[before:]
			if len(got) != 2 {
				t.Fatalf("collector received %d records, want 2: %+v", len(got), got)
			}
			for i, r := range got {
				if r.Resource["service.name"] != "portcullis-authz" || r.Resource["service.version"] != "1.2.3" {
					t.Errorf("record %d resource = %v", i, r.Resource)
				}
				if r.Scope != "github.com/portcullis-dev/portcullis/pkg/analytics" {
					t.Errorf("record %d scope = %q", i, r.Scope)
				}
				if r.ObservedTimestamp.IsZero() {
					t.Errorf("record %d has no observed timestamp", i)
				}
				assertNoSecret(t, fmt.Sprintf("record %d", i), fmt.Sprintf("%+v", r))
			}

			want := []collectortest.Record{
				{
					EventName: "portcullis.api.request", Timestamp: t0, Severity: "WARN", SeverityNumber: 13,
					Body: "GET /petstore/v1/pets/{id} 429 throttled_subscription",
					Attributes: map[string]any{
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
						"http.response.status_code":               int64(429),
						"portcullis.latency.response_ms":          12.345,
						"portcullis.latency.request_mediation_ms": 2.5,
						"portcullis.latency.authz_ms":             0.3,
						"http.request.size":                       int64(812),
						"http.response.size":                      int64(231),
						"client.address":                          "203.0.113.7",
						"user_agent.original":                     "curl/8.5.0",
						"server.address":                          "api.acme.example",
						"portcullis.proxy.node":                   "router~10.0.0.5~gw-1.istio-system~istio-system.svc.cluster.local",
						"portcullis.error.category":               "THROTTLED",
						"error.type":                              "throttled_subscription",
						"portcullis.error.subtype":                "SUBSCRIPTION",
						"portcullis.throttle.policy":              "gold",
						"portcullis.throttle.limit":               "1m0s",
					},
				},
				{
					EventName: "portcullis.authz.decision", Timestamp: t0, Severity: "INFO", SeverityNumber: 9,
					Body: "GET /petstore/v1/pets/{id} allowed",
					Attributes: map[string]any{
						"portcullis.event.source":          "decision",
						"portcullis.correlation_id":        "req-2",
						"portcullis.api.name":              "petstore",
						"portcullis.api.version":           "v1",
						"portcullis.api.context":           "/petstore/v1",
						"http.request.method":              "GET",
						"portcullis.api.resource_template": "/pets/{id}",
						"http.route":                       "/petstore/v1/pets/{id}",
						"portcullis.application.id":        "acme-mobile",
						"portcullis.application.name":      "Acme Mobile",
						"portcullis.application.owner":     "alice@acme.example",
						"portcullis.key_type":              "PRODUCTION",
						"user.id":                          "user-42",
						"client.address":                   "192.0.2.1",
						"user_agent.original":              "acme-mobile/3.1",
						"server.address":                   "api.acme.example",
					},
				},
			}
			ignore := cmpopts.IgnoreFields(collectortest.Record{}, "Resource", "Scope", "ObservedTimestamp")
			if diff := cmp.Diff(want, got, ignore); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOTLPExportToAnUnreachableCollectorFailsWithinItsTimeout(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Port(t)) // nothing listens
	tests := []struct {
		name string
		flag string
	}{
		{name: "gRPC", flag: "otlp-grpc:" + addr},
		{name: "HTTP", flag: "otlp-http:http://" + addr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := analytics.ParseSink(tt.flag)
			if err != nil {
				t.Fatalf("ParseSink: %v", err)
			}
			sink, err := analytics.OpenSink(context.Background(), spec, analytics.SinkOptions{Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatalf("OpenSink must not dial: %v", err)
			}
			start := time.Now()
			err = sink.Export(context.Background(), []analytics.Event{fullEvent()})
			if err == nil {
				t.Fatal("Export to nothing succeeded")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Export took %v, past its 300ms timeout", took)
			}
			if err := sink.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}
