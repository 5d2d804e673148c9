package analytics_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// fixed is a Catalog that always gives the same snapshot.
type fixed struct{ snap *catalog.Snapshot }

func (f fixed) Snapshot() *catalog.Snapshot { return f.snap }

func TestLabelsAreCatalogNamesOnly(t *testing.T) {
	snap := loadCatalog(t)
	known := analytics.Event{APIName: "petstore", APIVersion: "v1", APIMethod: "GET", APIResourceTemplate: "/pets/{id}", ApplicationID: "acme-mobile"}
	with := func(f func(*analytics.Event)) analytics.Event { e := known; f(&e); return e }
	tests := []struct {
		name                     string
		snap                     *catalog.Snapshot
		event                    analytics.Event
		wantAPI, wantOp, wantApp string
	}{
		{name: "catalog names", snap: snap, event: known, wantAPI: "petstore:v1", wantOp: "GET /pets/{id}", wantApp: "acme-mobile"},
		{name: "nothing named", snap: snap, event: analytics.Event{APIMethod: "GET"}, wantAPI: "_none", wantOp: "_none", wantApp: "_none"},
		{name: "an unknown API and so its operation", snap: snap, event: with(func(e *analytics.Event) { e.APIName = "/users/12345" }),
			wantAPI: "_other", wantOp: "_other", wantApp: "acme-mobile"},
		{name: "a version the catalog does not have", snap: snap, event: with(func(e *analytics.Event) { e.APIVersion = "v9" }),
			wantAPI: "_other", wantOp: "_other", wantApp: "acme-mobile"},
		{name: "an operation the API does not have", snap: snap, event: with(func(e *analytics.Event) { e.APIResourceTemplate = "/pets/12345" }),
			wantAPI: "petstore:v1", wantOp: "_other", wantApp: "acme-mobile"},
		{name: "a method the operation does not have", snap: snap, event: with(func(e *analytics.Event) { e.APIMethod = "DELETE" }),
			wantAPI: "petstore:v1", wantOp: "_other", wantApp: "acme-mobile"},
		{name: "an unknown application", snap: snap, event: with(func(e *analytics.Event) { e.ApplicationID = "user@example.com" }),
			wantAPI: "petstore:v1", wantOp: "GET /pets/{id}", wantApp: "_other"},
		{name: "no catalog at all", snap: nil, event: known, wantAPI: "_other", wantOp: "_other", wantApp: "_other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, op, app := analytics.Labels(tt.snap, &tt.event)
			if api != tt.wantAPI || op != tt.wantOp || app != tt.wantApp {
				t.Errorf("Labels = %q %q %q, want %q %q %q", api, op, app, tt.wantAPI, tt.wantOp, tt.wantApp)
			}
		})
	}
}

func TestUsageCountsRequestsErrorsAndLatencyByCatalogName(t *testing.T) {
	reg := prometheus.NewRegistry()
	u, err := analytics.NewUsage(analytics.UsageOptions{Catalog: fixed{loadCatalog(t)}, Registerer: reg})
	if err != nil {
		t.Fatalf("NewUsage: %v", err)
	}
	ok := analytics.Event{APIName: "petstore", APIVersion: "v1", APIMethod: "GET", APIResourceTemplate: "/pets/{id}",
		ApplicationID: "acme-mobile", UserName: "user-42", ResponseLatency: 20 * time.Millisecond, BackendLatency: 15 * time.Millisecond}
	throttled := ok
	throttled.ErrorType, throttled.ResponseLatency, throttled.BackendLatency = analytics.ErrorThrottled, time.Millisecond, 0
	stranger := ok
	stranger.ApplicationID, stranger.UserName = "mallory-"+secretKey, "someone-else"
	decision := analytics.Event{Source: analytics.SourceDecision, APIName: "petstore", APIVersion: "v1", APIMethod: "GET",
		APIResourceTemplate: "/pets", ErrorType: analytics.ErrorAuth, AuthzLatency: time.Millisecond}
	if err := u.Export(context.Background(), []analytics.Event{ok, ok, throttled, stranger, decision}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	checks := []struct {
		metric string
		labels []string
		want   float64
	}{
		{"portcullis_api_requests_total", []string{"api", "petstore:v1", "operation", "GET /pets/{id}", "application", "acme-mobile"}, 3},
		{"portcullis_api_requests_total", []string{"api", "petstore:v1", "operation", "GET /pets/{id}", "application", "_other"}, 1},
		{"portcullis_api_requests_total", []string{"api", "petstore:v1", "operation", "GET /pets", "application", "_none"}, 1},
		{"portcullis_api_errors_total", []string{"api", "petstore:v1", "operation", "GET /pets/{id}", "application", "acme-mobile", "error_type", "THROTTLED"}, 1},
		{"portcullis_api_errors_total", []string{"api", "petstore:v1", "operation", "GET /pets", "application", "_none", "error_type", "AUTH"}, 1},
		{"portcullis_api_request_duration_seconds", []string{"api", "petstore:v1", "operation", "GET /pets/{id}"}, 4},
		{"portcullis_api_backend_duration_seconds", []string{"api", "petstore:v1", "operation", "GET /pets/{id}"}, 3},
		{"portcullis_api_request_duration_seconds", []string{"api", "petstore:v1", "operation", "GET /pets"}, 0},
	}
	for _, c := range checks {
		if got := metricValue(t, reg, c.metric, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), "user") || strings.Contains(lp.GetValue(), "mallory") {
					t.Errorf("%s has label %s=%q from the request", mf.GetName(), lp.GetName(), lp.GetValue())
				}
				assertNoSecret(t, mf.GetName(), lp.GetValue())
			}
			if mf.GetName() == "portcullis_api_request_duration_seconds" && len(m.GetLabel()) != 2 {
				t.Errorf("latency histogram has labels %v, want api and operation only", m.GetLabel())
			}
		}
	}
}

func TestUsageLatencyByApplicationIsOptIn(t *testing.T) {
	reg := prometheus.NewRegistry()
	u, err := analytics.NewUsage(analytics.UsageOptions{Catalog: fixed{loadCatalog(t)}, Registerer: reg, LatencyByApplication: true})
	if err != nil {
		t.Fatalf("NewUsage: %v", err)
	}
	e := analytics.Event{APIName: "petstore", APIVersion: "v1", APIMethod: "GET", APIResourceTemplate: "/pets",
		ApplicationID: "acme-mobile", ResponseLatency: time.Millisecond}
	if err := u.Export(context.Background(), []analytics.Event{e}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if got := metricValue(t, reg, "portcullis_api_request_duration_seconds", "api", "petstore:v1", "operation", "GET /pets", "application", "acme-mobile"); got != 1 {
		t.Errorf("latency observations for the application = %v, want 1", got)
	}
}

func TestNewUsageRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		reg     func() prometheus.Registerer
		wantErr string
	}{
		{name: "no registerer", reg: func() prometheus.Registerer { return nil }, wantErr: "no registerer"},
		{name: "registered twice", reg: func() prometheus.Registerer {
			reg := prometheus.NewRegistry()
			if _, err := analytics.NewUsage(analytics.UsageOptions{Registerer: reg}); err != nil {
				t.Fatalf("first NewUsage: %v", err)
			}
			return reg
		}, wantErr: "register usage metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := analytics.NewUsage(analytics.UsageOptions{Registerer: tt.reg()})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewUsage = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
