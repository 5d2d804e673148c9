package analytics_test

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

// Credentials the tests put in requests, to look for in every output.
const (
	// secretToken is JWT-shaped, its payload {"iss":"https://idp.test","jti":"S3CR3T-token"}.
	secretToken = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC50ZXN0IiwianRpIjoiUzNDUjNULXRva2VuIn0.U0lHTkFUVVJFLW5ldmVyLWxvZ2dlZA"
	secretKey   = "pc_live_k3y_S3CR3T_never_in_analytics_0123456789"
)

var secrets = []string{secretToken, secretKey, "S3CR3T", "UzNDUjNU", "U0lHTkFUVVJF", "eyJpc3Mi"}

// assertNoSecret fails if out holds any test credential or a piece of one.
func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s holds a credential (%q): %s", what, s, out)
		}
	}
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// fullEvent has every field set.
func fullEvent() analytics.Event {
	return analytics.Event{
		Source:                  analytics.SourceAccessLog,
		Timestamp:               t0,
		CorrelationID:           "7b1c2e2a-5a4e-4b1e-9d6f-0c2f3b8e1a11",
		APIName:                 "petstore",
		APIVersion:              "v1",
		APIContext:              "/petstore/v1",
		APIMethod:               "GET",
		APIResourceTemplate:     "/pets/{id}",
		ApplicationID:           "acme-mobile",
		ApplicationName:         "Acme Mobile",
		ApplicationOwner:        "alice@acme.example",
		KeyType:                 "PRODUCTION",
		UserName:                "user-42",
		ProxyResponseCode:       429,
		TargetResponseCode:      0,
		ResponseLatency:         12345 * time.Microsecond,
		BackendLatency:          0,
		RequestMediationLatency: 2500 * time.Microsecond,
		AuthzLatency:            300 * time.Microsecond,
		RequestBytes:            812,
		ResponseBytes:           231,
		UserIP:                  netip.MustParseAddr("203.0.113.7"),
		UserAgent:               "curl/8.5.0",
		ServerAddress:           "api.acme.example",
		ProxyNode:               "router~10.0.0.5~gw-1.istio-system~istio-system.svc.cluster.local",
		ErrorType:               analytics.ErrorThrottled,
		ErrorSubtype:            analytics.ThrottleSubscription,
		ErrorCode:               analytics.CodeThrottledSubscription,
		ThrottledPolicy:         "gold",
		ThrottledLimit:          "1m0s",
	}
}

// recorder is a Sink that keeps what it is given and can be made to fail
// or to block.
type recorder struct {
	name string

	mu       sync.Mutex
	batches  [][]analytics.Event
	fail     error
	block    chan struct{} // when not nil, Export waits for it to close (or ctx)
	shutdown int
	sawCtx   []error // ctx.Err() at the end of each Export

	exported chan int // receives each batch's size, if not nil
}

func (r *recorder) Name() string {
	if r.name == "" {
		return "recorder"
	}
	return r.name
}

func (r *recorder) Export(ctx context.Context, events []analytics.Event) error {
	r.mu.Lock()
	block, fail := r.block, r.fail
	r.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, append([]analytics.Event(nil), events...))
	r.sawCtx = append(r.sawCtx, ctx.Err())
	r.mu.Unlock()
	if r.exported != nil {
		r.exported <- len(events)
	}
	return fail
}

func (r *recorder) Shutdown(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shutdown++
	return nil
}

func (r *recorder) events() []analytics.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []analytics.Event
	for _, b := range r.batches {
		out = append(out, b...)
	}
	return out
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, len(b))
	}
	return out
}

// metricValue is the value of the counter or gauge name with the given
// label pairs, 0 when the series does not exist.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	want := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		want[pairs[i]] = pairs[i+1]
	}
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
