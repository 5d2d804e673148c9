package accesslog_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/pkg/accesslog"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

const node = "router~10.0.0.5~gw-1.istio-system~istio-system.svc.cluster.local"

// allowedEvent is baseEntry's event.
func allowedEvent() analytics.Event {
	return analytics.Event{
		Source: analytics.SourceAccessLog, Timestamp: t0, CorrelationID: "7b1c2e2a-5a4e-4b1e-9d6f-0c2f3b8e1a11",
		APIName: "petstore", APIVersion: "v1", APIContext: "/petstore/v1", APIMethod: "GET", APIResourceTemplate: "/pets/{id}",
		ApplicationID: "acme-mobile", ApplicationName: "Acme Mobile", ApplicationOwner: "alice@acme.example",
		KeyType: "PRODUCTION", UserName: "user-42",
		ProxyResponseCode: 200, TargetResponseCode: 200,
		ResponseLatency: 12345 * time.Microsecond, BackendLatency: 9500 * time.Microsecond, RequestMediationLatency: 2500 * time.Microsecond,
		RequestBytes: 812, ResponseBytes: 231,
		UserIP: netip.MustParseAddr("203.0.113.7"), UserAgent: "curl/8.5.0", ServerAddress: "api.acme.example", ProxyNode: node,
	}
}

// local turns baseEntry into a local reply of Envoy's: no upstream
// timings, the given status and details.
func local(e *alsdata.HTTPAccessLogEntry, code uint32, details string) {
	cp := e.CommonProperties
	cp.TimeToFirstUpstreamTxByte, cp.TimeToLastUpstreamTxByte, cp.TimeToFirstUpstreamRxByte, cp.TimeToLastUpstreamRxByte = nil, nil, nil, nil
	cp.TimeToLastDownstreamTxByte = ms(1.5)
	cp.UpstreamRemoteAddress, cp.UpstreamCluster = nil, ""
	e.Response.ResponseCode = wrapperspb.UInt32(code)
	e.Response.ResponseCodeDetails = details
}

func localEvent(code int) analytics.Event {
	e := allowedEvent()
	e.ProxyResponseCode, e.TargetResponseCode = code, 0
	e.ResponseLatency, e.BackendLatency, e.RequestMediationLatency = 1500*time.Microsecond, 0, 0
	return e
}

func TestEntriesBecomeEventsFieldByField(t *testing.T) {
	tests := []struct {
		name  string
		entry func(*alsdata.HTTPAccessLogEntry)
		want  func(*analytics.Event)
	}{
		{
			name:  "a request allowed and answered by the upstream",
			entry: func(*alsdata.HTTPAccessLogEntry) {},
			want:  func(*analytics.Event) {},
		},
		{
			name: "a refusal by authz carries its reason and what authz knew",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 403, "ext_authz_denied")
				e.CommonProperties.ResponseFlags.UnauthorizedDetails = &alsdata.ResponseFlags_Unauthorized{Reason: alsdata.ResponseFlags_Unauthorized_EXTERNAL_SERVICE}
				e.CommonProperties.Metadata.FilterMetadata[accesslog.AuthzNamespace] = md(
					"error_code", "not_subscribed", "request_id", "req-from-authz", "api", "petstore:v1", "operation", "GET /pets/{id}", "application", "acme-mobile")
			},
			want: func(e *analytics.Event) {
				*e = localEvent(403)
				e.KeyType, e.UserName = "", ""
				e.ErrorType, e.ErrorCode = analytics.ErrorAuth, "not_subscribed"
			},
		},
		{
			name: "a missing credential names no application",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 401, "ext_authz_denied")
				e.CommonProperties.ResponseFlags.UnauthorizedDetails = &alsdata.ResponseFlags_Unauthorized{}
				e.CommonProperties.Metadata.FilterMetadata[accesslog.AuthzNamespace] = md(
					"error_code", "missing_credential", "api", "petstore:v1", "operation", "GET /pets/{id}")
			},
			want: func(e *analytics.Event) {
				*e = localEvent(401)
				e.ApplicationID, e.ApplicationName, e.ApplicationOwner, e.KeyType, e.UserName = "", "", "", "", ""
				e.ErrorType, e.ErrorCode = analytics.ErrorAuth, "missing_credential"
			},
		},
		{
			name: "a path no API serves is OTHER and takes the request's method",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 404, "ext_authz_denied")
				e.CommonProperties.ResponseFlags.UnauthorizedDetails = &alsdata.ResponseFlags_Unauthorized{}
				e.CommonProperties.Metadata.FilterMetadata[accesslog.AuthzNamespace] = md("error_code", "no_route")
				e.Request.RequestMethod = corev3.RequestMethod_DELETE
			},
			want: func(e *analytics.Event) {
				*e = localEvent(404)
				e.APIName, e.APIVersion, e.APIContext, e.APIResourceTemplate, e.APIMethod = "", "", "", "", "DELETE"
				e.ApplicationID, e.ApplicationName, e.ApplicationOwner, e.KeyType, e.UserName = "", "", "", "", ""
				e.ErrorType, e.ErrorCode = analytics.ErrorOther, "no_route"
			},
		},
		{
			name: "an ext_authz call that failed closed is authz_error",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 403, "ext_authz_error")
				e.CommonProperties.ResponseFlags.UnauthorizedDetails = &alsdata.ResponseFlags_Unauthorized{}
				delete(e.CommonProperties.Metadata.FilterMetadata, accesslog.AuthzNamespace)
			},
			want: func(e *analytics.Event) {
				*e = localEvent(403)
				e.APIName, e.APIVersion, e.APIContext, e.APIResourceTemplate = "", "", "", ""
				e.ApplicationID, e.ApplicationName, e.ApplicationOwner, e.KeyType, e.UserName = "", "", "", "", ""
				e.ErrorType, e.ErrorCode = analytics.ErrorAuth, analytics.CodeAuthzError
			},
		},
		{
			name: "a refusal without a code is authz_denied",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 403, "ext_authz_denied")
				e.CommonProperties.ResponseFlags.UnauthorizedDetails = &alsdata.ResponseFlags_Unauthorized{}
				delete(e.CommonProperties.Metadata.FilterMetadata, accesslog.AuthzNamespace)
			},
			want: func(e *analytics.Event) {
				*e = localEvent(403)
				e.APIName, e.APIVersion, e.APIContext, e.APIResourceTemplate = "", "", "", ""
				e.ApplicationID, e.ApplicationName, e.ApplicationOwner, e.KeyType, e.UserName = "", "", "", "", ""
				e.ErrorType, e.ErrorCode = analytics.ErrorAuth, analytics.CodeAuthzDenied
			},
		},
		{
			name: "throttled by the subscription's quota names the plan and limit",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 429, "request_rate_limited")
				e.CommonProperties.ResponseFlags.RateLimited = true
				e.CommonProperties.Metadata.FilterMetadata[accesslog.RateLimitNamespace] = md(
					"domain", "portcullis", "descriptor", "0", "rule", "gold", "policy_scope", "subscription", "policy", "gold",
					"limit", "5000/1m0s sliding-window", "limit_name", "1m0s")
			},
			want: func(e *analytics.Event) {
				*e = localEvent(429)
				e.ErrorType, e.ErrorSubtype, e.ErrorCode = analytics.ErrorThrottled, analytics.ThrottleSubscription, analytics.CodeThrottledSubscription
				e.ThrottledPolicy, e.ThrottledLimit = "gold", "1m0s"
			},
		},
		{
			name: "throttled by a burst limit is BURST whatever the level",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 429, "request_rate_limited")
				e.CommonProperties.ResponseFlags.RateLimited = true
				e.CommonProperties.Metadata.FilterMetadata[accesslog.RateLimitNamespace] = md(
					"rule", "gold", "policy_scope", "subscription", "policy", "gold", "limit", "50/1s fixed-window", "limit_name", "burst")
			},
			want: func(e *analytics.Event) {
				*e = localEvent(429)
				e.ErrorType, e.ErrorSubtype, e.ErrorCode = analytics.ErrorThrottled, analytics.ThrottleBurst, analytics.CodeThrottledBurst
				e.ThrottledPolicy, e.ThrottledLimit = "gold", "burst"
			},
		},
		{
			name: "throttled at each other level",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 429, "request_rate_limited")
				e.CommonProperties.ResponseFlags.RateLimited = true
				e.CommonProperties.Metadata.FilterMetadata[accesslog.RateLimitNamespace] = md(
					"rule", "petstore-writes", "policy_scope", "resource", "policy", "petstore-writes", "policy_group", "default", "limit_name", "default")
			},
			want: func(e *analytics.Event) {
				*e = localEvent(429)
				e.ErrorType, e.ErrorSubtype, e.ErrorCode = analytics.ErrorThrottled, analytics.ThrottleResource, analytics.CodeThrottledResource
				e.ThrottledPolicy, e.ThrottledLimit = "petstore-writes", "default"
			},
		},
		{
			name: "throttled by a rule file outside the catalog names the rule",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 429, "request_rate_limited")
				e.CommonProperties.ResponseFlags.RateLimited = true
				e.CommonProperties.Metadata.FilterMetadata[accesslog.RateLimitNamespace] = md("domain", "edge", "rule", "per-ip", "limit_name", "default")
			},
			want: func(e *analytics.Event) {
				*e = localEvent(429)
				e.ErrorType, e.ErrorSubtype, e.ErrorCode = analytics.ErrorThrottled, analytics.ThrottleUnknown, analytics.CodeThrottled
				e.ThrottledPolicy, e.ThrottledLimit = "per-ip", "default"
			},
		},
		{
			name: "throttled with no metadata",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 429, "request_rate_limited")
				e.CommonProperties.ResponseFlags.RateLimited = true
			},
			want: func(e *analytics.Event) {
				*e = localEvent(429)
				e.ErrorType, e.ErrorSubtype, e.ErrorCode = analytics.ErrorThrottled, analytics.ThrottleUnknown, analytics.CodeThrottled
			},
		},
		{
			name: "the rate-limit service failing closed is OTHER",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 500, "rate_limiter_error")
				e.CommonProperties.ResponseFlags.RateLimitServiceError = true
			},
			want: func(e *analytics.Event) {
				*e = localEvent(500)
				e.ErrorType, e.ErrorCode = analytics.ErrorOther, analytics.CodeRateLimitError
			},
		},
		{
			name: "an upstream that refuses connections is TARGET_CONNECTIVITY",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 503, "upstream_reset_before_response_started{remote_connection_failure}")
				e.CommonProperties.TimeToFirstUpstreamTxByte = nil
				e.CommonProperties.ResponseFlags.UpstreamConnectionFailure = true
			},
			want: func(e *analytics.Event) {
				*e = localEvent(503)
				e.ErrorType, e.ErrorCode = analytics.ErrorTargetConnectivity, analytics.CodeUpstreamConnectionFailure
			},
		},
		{
			name: "an upstream timeout keeps the time spent before it",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 504, "upstream_response_timeout")
				e.CommonProperties.TimeToFirstUpstreamTxByte = ms(2.5)
				e.CommonProperties.TimeToLastDownstreamTxByte = ms(15000)
				e.CommonProperties.ResponseFlags.UpstreamRequestTimeout = true
			},
			want: func(e *analytics.Event) {
				*e = localEvent(504)
				e.ResponseLatency, e.RequestMediationLatency = 15*time.Second, 2500*time.Microsecond
				e.ErrorType, e.ErrorCode = analytics.ErrorTargetConnectivity, analytics.CodeUpstreamTimeout
			},
		},
		{
			name: "no healthy upstream",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				local(e, 503, "no_healthy_upstream")
				e.CommonProperties.ResponseFlags.NoHealthyUpstream = true
			},
			want: func(e *analytics.Event) {
				*e = localEvent(503)
				e.ErrorType, e.ErrorCode = analytics.ErrorTargetConnectivity, analytics.CodeNoHealthyUpstream
			},
		},
		{
			name: "a 5xx from the upstream is OTHER target_5xx with the target's status",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.Response.ResponseCode = wrapperspb.UInt32(502)
			},
			want: func(e *analytics.Event) {
				e.ProxyResponseCode, e.TargetResponseCode = 502, 502
				e.ErrorType, e.ErrorCode = analytics.ErrorOther, analytics.CodeTarget5xx
			},
		},
		{
			name: "a 4xx from the upstream is no fault of the gateway",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.Response.ResponseCode = wrapperspb.UInt32(404)
			},
			want: func(e *analytics.Event) {
				e.ProxyResponseCode, e.TargetResponseCode = 404, 404
			},
		},
		{
			name: "a client that left before the response",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.CommonProperties.TimeToFirstUpstreamRxByte, e.CommonProperties.TimeToLastUpstreamRxByte = nil, nil
				e.CommonProperties.TimeToFirstDownstreamTxByte, e.CommonProperties.TimeToLastDownstreamTxByte = nil, nil
				e.CommonProperties.Duration = ms(3000)
				e.CommonProperties.ResponseFlags.DownstreamConnectionTermination = true
				e.Response = &alsdata.HTTPResponseProperties{}
			},
			want: func(e *analytics.Event) {
				e.ProxyResponseCode, e.TargetResponseCode = 0, 0
				e.ResponseLatency, e.BackendLatency, e.ResponseBytes = 3*time.Second, 0, 0
				e.ErrorType, e.ErrorCode = analytics.ErrorOther, analytics.CodeClientDisconnected
			},
		},
		{
			name: "an unmanaged request has only what Envoy saw",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.CommonProperties.Metadata = nil
				e.Request.RequestMethod = corev3.RequestMethod_POST
			},
			want: func(e *analytics.Event) {
				e.APIName, e.APIVersion, e.APIContext, e.APIResourceTemplate, e.APIMethod = "", "", "", "", "POST"
				e.ApplicationID, e.ApplicationName, e.ApplicationOwner, e.KeyType, e.UserName = "", "", "", "", ""
			},
		},
		{
			name: "the request id falls back to authz's",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.Request.RequestId = ""
			},
			want: func(e *analytics.Event) { e.CorrelationID = "req-from-authz" },
		},
		{
			name: "an application the catalog does not know keeps its name",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.CommonProperties.Metadata.FilterMetadata[accesslog.AuthzNamespace].Fields["application"] = structpb.NewStringValue("ghost-app")
			},
			want: func(e *analytics.Event) {
				e.ApplicationID, e.ApplicationName, e.ApplicationOwner = "ghost-app", "ghost-app", ""
			},
		},
		{
			name: "non-string metadata is ignored, as Envoy's rate-limit actions ignore it",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.CommonProperties.Metadata.FilterMetadata[accesslog.AuthzNamespace].Fields["user"] = structpb.NewNumberValue(42)
			},
			want: func(e *analytics.Event) { e.UserName = "" },
		},
		{
			name: "too few forwarded-for entries for the trusted hops: the remote address",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.Request.ForwardedFor = "10.0.0.1"
			},
			want: func(e *analytics.Event) { e.UserIP = netip.MustParseAddr("10.0.0.1") },
		},
		{
			name: "a pipe address and no forwarded-for: no client address",
			entry: func(e *alsdata.HTTPAccessLogEntry) {
				e.CommonProperties.DownstreamRemoteAddress = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/envoy.sock"}}}
				e.Request.ForwardedFor = ""
			},
			want: func(e *analytics.Event) { e.UserIP = netip.Addr{} },
		},
	}

	got := make(events, len(tests))
	h := start(t, accesslog.Options{Sink: got, Catalog: fixedCatalog{loadCatalog(t)}, TrustedHops: 1})
	s := h.open(t, context.Background(), node)
	for _, tt := range tests {
		e := baseEntry()
		tt.entry(e)
		s.send(e)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := got.next(t)
			want := allowedEvent()
			tt.want(&want)
			if diff := cmp.Diff(want, ev, cmpAddr); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			assertNoSecret(t, "event JSON", string(analytics.AppendJSON(nil, &ev)))
			assertNoSecret(t, "event attributes", fmt.Sprint(analytics.AppendAttributes(nil, &ev)))
			assertNoSecret(t, "event", fmt.Sprintf("%+v", ev))
		})
	}
	if err := s.close(); err != nil {
		t.Errorf("stream closed by the client ended with %v", err)
	}
	if n, _ := metricValue(t, h.reg, "portcullis_accesslog_entries_total", "node", node); n != float64(len(tests)) {
		t.Errorf("entries_total{node} = %v, want %d", n, len(tests))
	}
}

func TestEntriesThatAreNotAFinishedRequestYieldNoEvent(t *testing.T) {
	got := make(events, 10)
	h := start(t, accesslog.Options{Sink: got})
	s := h.open(t, context.Background(), "sidecar~10.0.0.7~app-1.default~default.svc.cluster.local")
	intermediate := baseEntry()
	//lint:ignore SA1019 older Envoys mark periodic entries only this way
	intermediate.CommonProperties.IntermediateLogEntry = true
	started := baseEntry()
	started.CommonProperties.AccessLogType = alsdata.AccessLogType_DownstreamStart
	upstream := baseEntry()
	upstream.CommonProperties.AccessLogType = alsdata.AccessLogType_UpstreamPoolReady
	finished := baseEntry()
	finished.CommonProperties.AccessLogType = alsdata.AccessLogType_DownstreamEnd
	s.send(intermediate, started, upstream, finished)
	if err := s.s.Send(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_TcpLogs{
		TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: []*alsdata.TCPAccessLogEntry{{}, {}}},
	}}); err != nil {
		t.Fatalf("send TCP entries: %v", err)
	}
	_ = s.close()

	if n := len(got); n != 1 {
		t.Fatalf("%d events, want 1 (the finished request)", n)
	}
	if ev := <-got; ev.CorrelationID != "7b1c2e2a-5a4e-4b1e-9d6f-0c2f3b8e1a11" {
		t.Errorf("event %+v", ev)
	}
	for reason, want := range map[string]float64{"intermediate": 1, "log_type": 2, "tcp": 2} {
		if n, _ := metricValue(t, h.reg, "portcullis_accesslog_entries_skipped_total", "reason", reason); n != want {
			t.Errorf("entries_skipped_total{%s} = %v, want %v", reason, n, want)
		}
	}
}

func TestEntriesAreCountedPerNodeUnderACap(t *testing.T) {
	now := t0
	got := make(events, 100)
	h := start(t, accesslog.Options{Sink: got, MaxNodes: 2, NodeIdle: time.Hour, Clock: func() time.Time { return now }})
	ctx := context.Background()

	send := func(s *stream, n int) {
		t.Helper()
		entries := make([]*alsdata.HTTPAccessLogEntry, n)
		for i := range entries {
			entries[i] = baseEntry()
		}
		s.send(entries...)
	}
	a := h.open(t, ctx, "node-a")
	send(a, 3)
	_ = a.close() // node-a has no stream open now
	b := h.open(t, ctx, "node-b")
	send(b, 2)
	for range 5 { // node-a's and node-b's: node-b holds its series before node-c asks
		got.next(t)
	}
	c := h.open(t, ctx, "node-c") // past the cap, node-a not yet idle
	send(c, 4)
	_ = c.close()
	noID := h.open(t, ctx, "")
	send(noID, 1)
	_ = noID.close()

	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"portcullis_accesslog_entries_total", []string{"node", "node-a"}, 3},
		{"portcullis_accesslog_entries_total", []string{"node", "_other"}, 4},
		{"portcullis_accesslog_entries_total", []string{"node", "_unknown"}, 1},
		{"portcullis_accesslog_node_streams_total", []string{"node", "node-a"}, 1},
		{"portcullis_accesslog_node_last_entry_timestamp_seconds", []string{"node", "node-a"}, float64(t0.UnixNano()) / 1e9},
	}
	for _, c := range checks {
		if got, _ := metricValue(t, h.reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := metricValue(t, h.reg, "portcullis_accesslog_entries_total", "node", "node-c"); ok {
		t.Error("node-c has series of its own past the cap")
	}

	now = t0.Add(2 * time.Hour) // node-a idle long enough; node-b's stream is still open
	d := h.open(t, ctx, "node-d")
	send(d, 5)
	_ = d.close()
	send(b, 1)
	_ = b.close()
	if got, _ := metricValue(t, h.reg, "portcullis_accesslog_entries_total", "node", "node-d"); got != 5 {
		t.Errorf("entries_total{node-d} = %v, want 5 (taking idle node-a's place)", got)
	}
	if _, ok := metricValue(t, h.reg, "portcullis_accesslog_entries_total", "node", "node-a"); ok {
		t.Error("idle node-a still has its series after giving them up")
	}
	if got, _ := metricValue(t, h.reg, "portcullis_accesslog_entries_total", "node", "node-b"); got != 3 {
		t.Errorf("entries_total{node-b} = %v, want 3 (an open stream keeps its series)", got)
	}
	if got, _ := metricValue(t, h.reg, "portcullis_accesslog_streams_closed_total", "reason", "eof"); got != 5 {
		t.Errorf("streams_closed_total{eof} = %v, want 5", got)
	}
	if n := len(got); n != 11 {
		t.Errorf("%d more events, want 11", n)
	}
}

func TestDrainingEndsStreamsSoEnvoyReconnectsElsewhere(t *testing.T) {
	got := make(events, 10)
	h := start(t, accesslog.Options{Sink: got})
	s := h.open(t, context.Background(), node)
	s.send(baseEntry())
	got.next(t) // the stream is up and being read

	h.drain()
	_, err := s.s.CloseAndRecv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
	}
	if v, _ := metricValue(t, h.reg, "portcullis_accesslog_streams_closed_total", "reason", "drain"); v != 1 {
		t.Errorf("streams_closed_total{drain} = %v, want 1", v)
	}
	waitForMetric(t, h.reg, 0, "portcullis_accesslog_streams_active")

	late := h.open(t, context.Background(), node)
	if _, err := late.s.CloseAndRecv(); status.Code(err) != codes.Unavailable {
		t.Errorf("a stream opened while draining ended with %v, want UNAVAILABLE", err)
	}
}

func TestAStreamEnvoyResetsIsCountedAsCancelled(t *testing.T) {
	got := make(events, 10)
	h := start(t, accesslog.Options{Sink: got})
	ctx, cancel := context.WithCancel(context.Background())
	s := h.open(t, ctx, node)
	s.send(baseEntry())
	got.next(t)
	cancel()
	waitForMetric(t, h.reg, 1, "portcullis_accesslog_streams_closed_total", "reason", "cancelled")
	waitForMetric(t, h.reg, 0, "portcullis_accesslog_streams_active")
}

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    accesslog.Options
		wantErr string
	}{
		{name: "no sink", opts: accesslog.Options{}, wantErr: "no event sink"},
		{name: "negative hops", opts: accesslog.Options{Sink: make(events), TrustedHops: -1}, wantErr: "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := accesslog.New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("metrics registered twice", func(t *testing.T) {
		h := start(t, accesslog.Options{Sink: make(events)})
		if _, err := accesslog.New(accesslog.Options{Sink: make(events), Registerer: h.reg}); err == nil ||
			!strings.Contains(err.Error(), "register access-log metrics") {
			t.Fatalf("New = %v, want a registration error", err)
		}
	})
}
