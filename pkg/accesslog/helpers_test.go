package accesslog_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/pkg/accesslog"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// Credentials the test requests carry, to look for in every output.
const (
	secretToken = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC50ZXN0IiwianRpIjoiUzNDUjNULXRva2VuIn0.U0lHTkFUVVJFLW5ldmVyLWxvZ2dlZA"
	secretKey   = "pc_live_k3y_S3CR3T_never_in_analytics_0123456789"
)

var secrets = []string{secretToken, secretKey, "S3CR3T", "UzNDUjNU", "U0lHTkFUVVJF", "eyJpc3Mi"}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s holds a credential (%q): %s", what, s, out)
		}
	}
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// events is an EventSink that hands each event to the test.
type events chan analytics.Event

func (c events) Emit(e analytics.Event) bool { c <- e; return true }

// next returns the next event, failing the test if none comes within a
// generous bound (the stream is local; this only guards a hang).
func (c events) next(t *testing.T) analytics.Event {
	t.Helper()
	select {
	case e := <-c:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return analytics.Event{}
	}
}

type fixedCatalog struct{ snap *catalog.Snapshot }

func (f fixedCatalog) Snapshot() *catalog.Snapshot { return f.snap }

func loadCatalog(t testing.TB) *catalog.Snapshot {
	t.Helper()
	snap, err := catalog.LoadPath(context.Background(), "testdata/catalog.yaml")
	if err != nil {
		t.Fatalf("load test catalog: %v", err)
	}
	return snap
}

// harness is a Service on a real gRPC server on a loopback port, and a
// client connected to it.
type harness struct {
	svc      *accesslog.Service
	client   alsv3.AccessLogServiceClient
	reg      *prometheus.Registry
	draining chan struct{}
	drain    func()
}

func start(t testing.TB, opts accesslog.Options) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), draining: make(chan struct{})}
	var once sync.Once
	h.drain = func() { once.Do(func() { close(h.draining) }) }
	opts.Registerer = h.reg
	if opts.Draining == nil {
		opts.Draining = h.draining
	}
	svc, err := accesslog.New(opts)
	if err != nil {
		t.Fatalf("accesslog.New: %v", err)
	}
	h.svc = svc
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	alsv3.RegisterAccessLogServiceServer(srv, svc)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		h.drain() // end open streams, as the binary does before stopping
		srv.GracefulStop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	h.client = alsv3.NewAccessLogServiceClient(conn)
	return h
}

// stream opens a stream whose first message names node.
type stream struct {
	t     testing.TB
	s     alsv3.AccessLogService_StreamAccessLogsClient
	node  string
	first bool
}

func (h *harness) open(t testing.TB, ctx context.Context, node string) *stream {
	t.Helper()
	s, err := h.client.StreamAccessLogs(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return &stream{t: t, s: s, node: node, first: true}
}

// send sends entries in one message, the node identifier on the first.
func (s *stream) send(entries ...*alsdata.HTTPAccessLogEntry) {
	s.t.Helper()
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries},
	}}
	if s.first {
		msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: s.node}, LogName: "portcullis-als"}
		s.first = false
	}
	if err := s.s.Send(msg); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// close half-closes the stream and waits for the server to end it, so
// everything sent has been handled when it returns.
func (s *stream) close() error {
	_, err := s.s.CloseAndRecv()
	return err
}

// metricValue is the value of the counter or gauge with the label pairs.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels ...string) (float64, bool) {
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
				if m.Counter != nil {
					return m.GetCounter().GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
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

// waitForMetric polls until the metric has the value, or fails after a
// deadline: for effects on the server side of a stream the client has
// already left.
func waitForMetric(t testing.TB, g prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got, _ := metricValue(t, g, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		<-tick.C
	}
}

// Entry builders: the fields Envoy's HTTP gRPC access logger fills.

func md(pairs ...string) *structpb.Struct {
	f := map[string]*structpb.Value{}
	for i := 0; i+1 < len(pairs); i += 2 {
		f[pairs[i]] = structpb.NewStringValue(pairs[i+1])
	}
	return &structpb.Struct{Fields: f}
}

func ms(v float64) *durationpb.Duration {
	return durationpb.New(time.Duration(v * float64(time.Millisecond)))
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// baseEntry is a GET /petstore/v1/pets/7 that carries a bearer token, an
// API key header and an API key in the query, and that authz allowed as
// acme-mobile's.
func baseEntry() *alsdata.HTTPAccessLogEntry {
	return &alsdata.HTTPAccessLogEntry{
		ProtocolVersion: alsdata.HTTPAccessLogEntry_HTTP11,
		CommonProperties: &alsdata.AccessLogCommon{
			DownstreamRemoteAddress:       sockAddr("10.0.0.1", 40000),
			DownstreamDirectRemoteAddress: sockAddr("10.0.0.1", 40000),
			DownstreamLocalAddress:        sockAddr("10.0.0.9", 8443),
			StartTime:                     timestamppb.New(t0),
			TimeToLastRxByte:              ms(0.1),
			TimeToFirstUpstreamTxByte:     ms(2.5),
			TimeToLastUpstreamTxByte:      ms(2.6),
			TimeToFirstUpstreamRxByte:     ms(10),
			TimeToLastUpstreamRxByte:      ms(12),
			TimeToFirstDownstreamTxByte:   ms(10.2),
			TimeToLastDownstreamTxByte:    ms(12.345),
			UpstreamRemoteAddress:         sockAddr("10.1.0.5", 8080),
			UpstreamCluster:               "outbound|8080||petstore.default.svc.cluster.local",
			ResponseFlags:                 &alsdata.ResponseFlags{},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				accesslog.AuthzNamespace: md(
					"api", "petstore:v1", "operation", "GET /pets/{id}", "application", "acme-mobile",
					"user", "user-42", "key_type", "PRODUCTION", "request_id", "req-from-authz",
					"subscription_counter", "acme-mobile:petstore:v1", "subscription_policy", "gold",
				),
			}},
			RouteName: "petstore",
		},
		Request: &alsdata.HTTPRequestProperties{
			RequestMethod:       corev3.RequestMethod_GET,
			Scheme:              "https",
			Authority:           "api.acme.example:8443",
			Path:                "/petstore/v1/pets/7?api_key=" + secretKey,
			OriginalPath:        "/petstore/v1/pets/7?api_key=" + secretKey,
			UserAgent:           "curl/8.5.0",
			Referer:             "https://app.acme.example/?token=" + secretToken,
			ForwardedFor:        "203.0.113.7, 10.0.0.1",
			RequestId:           "7b1c2e2a-5a4e-4b1e-9d6f-0c2f3b8e1a11",
			RequestHeadersBytes: 700,
			RequestBodyBytes:    112,
			RequestHeaders: map[string]string{
				"authorization": "Bearer " + secretToken,
				"x-api-key":     secretKey,
				"cookie":        "session=" + secretToken,
			},
		},
		Response: &alsdata.HTTPResponseProperties{
			ResponseCode:         wrapperspb.UInt32(200),
			ResponseCodeDetails:  "via_upstream",
			ResponseHeadersBytes: 180,
			ResponseBodyBytes:    51,
			ResponseHeaders:      map[string]string{"set-cookie": "session=" + secretToken},
		},
	}
}
