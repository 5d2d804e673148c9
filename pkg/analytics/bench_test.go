package analytics_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/analytics/collectortest"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/extauthz"
)

// discard is the no-op sink the others are measured against.
type discard struct{}

func (discard) Name() string                                    { return "noop" }
func (discard) Export(context.Context, []analytics.Event) error { return nil }
func (discard) Shutdown(context.Context) error                  { return nil }

// BenchmarkEmit is the request path's cost of an event: one non-blocking
// queue send from every core at once. drops/op is the share refused
// because the (no-op) exporter could not keep up with the benchmark loop.
func BenchmarkEmit(b *testing.B) {
	e, err := analytics.NewEmitter(analytics.EmitterOptions{Sinks: []analytics.Sink{discard{}}, QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	ev := fullEvent()
	var dropped atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var d int64
		for pb.Next() {
			if !e.Emit(ev) {
				d++
			}
		}
		dropped.Add(d)
	})
	b.StopTimer()
	b.ReportMetric(float64(dropped.Load())/float64(b.N), "drops/op")
	if err := e.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	ev := fullEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = analytics.AppendJSON(buf[:0], &ev)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkSinkExport is each exporting sink's rate alone, batches of 512
// events (pkg/accesslog's BenchmarkStream has the whole path and the
// ratios to the no-op sink). The OTLP sinks export to the Collector's
// receiver in the same process, which shares the CPU with the exporter.
func BenchmarkSinkExport(b *testing.B) {
	coll := collectortest.StartCounting(b)
	open := func(flag string) func(b *testing.B) analytics.Sink {
		return func(b *testing.B) analytics.Sink {
			spec, err := analytics.ParseSink(flag)
			if err != nil {
				b.Fatal(err)
			}
			s, err := analytics.OpenSink(context.Background(), spec, analytics.SinkOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
	}
	sinks := []struct {
		name string
		open func(b *testing.B) analytics.Sink
	}{
		{"jsonl", func(*testing.B) analytics.Sink { return analytics.NewJSONLines(io.Discard) }},
		{"otlp-grpc", open("otlp-grpc:" + coll.GRPCAddr())},
		{"otlp-http", open("otlp-http:" + coll.HTTPURL())},
	}
	batch := make([]analytics.Event, 512)
	for i := range batch {
		batch[i] = fullEvent()
	}
	for _, s := range sinks {
		b.Run(s.name, func(b *testing.B) {
			sink := s.open(b)
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := sink.Export(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				n += len(batch)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			if err := sink.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkDecide is authz's decision with decision events off and on (a
// real Emitter to the usage metrics, as in production), the two
// interleaved call by call so that other load on the machine weighs on
// both alike. x-off-throughput is on's throughput over off's; the floor is
// 0.95.
func BenchmarkDecide(b *testing.B) {
	a := newAuthorizer(b)
	req := authz.Request{Host: "api.acme.example", Method: "GET", Path: "/petstore/v1/pets",
		Headers: map[string]string{"x-api-key": secretKey, "user-agent": "bench"}, SourceAddr: "10.0.0.1", RequestID: "r"}
	e := usageEmitter(b)
	on := analytics.RecordDecisions(a, e, analytics.DecisionOptions{})
	ctx := context.Background()
	interleaved(b, func(events bool) error {
		var err error
		if events {
			_, err = on.Decide(ctx, req)
		} else {
			_, err = a.Decide(ctx, req)
		}
		return err
	})
}

// usageEmitter is an Emitter to the usage metrics, closed when b ends.
func usageEmitter(b *testing.B) *analytics.Emitter {
	usage, err := analytics.NewUsage(analytics.UsageOptions{Catalog: fixed{loadCatalog(b)}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	e, err := analytics.NewEmitter(analytics.EmitterOptions{Sinks: []analytics.Sink{usage}, QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// interleaved runs op alternately without and with events from parallel
// goroutines, and reports each mode's time per call and their ratio.
func interleaved(b *testing.B, op func(events bool) error) {
	var spent [2]atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mode := 0
		for pb.Next() {
			start := time.Now()
			if err := op(mode == 1); err != nil {
				b.Error(err)
				return
			}
			spent[mode].Add(int64(time.Since(start)))
			mode ^= 1
		}
	})
	off, on := float64(spent[0].Load()), float64(spent[1].Load())
	half := float64(b.N) / 2
	b.ReportMetric(off/half, "ns/call-off")
	b.ReportMetric(on/half, "ns/call-on")
	if on > 0 {
		b.ReportMetric(off/on, "x-off-throughput")
	}
}

// BenchmarkCheck is BenchmarkDecide where authz's throughput is measured:
// Envoy's ext_authz Check over a real gRPC connection on loopback, with
// decision events off and on (to the usage metrics, as in production).
func BenchmarkCheck(b *testing.B) {
	a := newAuthorizer(b)
	e := usageEmitter(b)
	h := map[string]string{":authority": "api.acme.example", ":method": "GET", ":path": "/petstore/v1/pets",
		"x-request-id": "r", "x-api-key": secretKey, "user-agent": "bench"}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "192.0.2.10", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "r", Method: "GET", Path: "/petstore/v1/pets", Host: "api.acme.example", Headers: h, Protocol: "HTTP/1.1",
		}},
	}}
	ctx := context.Background()
	clients := [2]authv3.AuthorizationClient{
		serveCheck(b, a),
		serveCheck(b, analytics.RecordDecisions(a, e, analytics.DecisionOptions{})),
	}
	b.SetParallelism(8) // many checks in flight, as from an Envoy fleet
	interleaved(b, func(events bool) error {
		c := clients[0]
		if events {
			c = clients[1]
		}
		resp, err := c.Check(ctx, req)
		if err == nil && resp.GetStatus().GetCode() != 0 {
			err = fmt.Errorf("check refused: %v", resp.GetStatus())
		}
		return err
	})
}

// serveCheck serves ext_authz from d on a loopback port until b ends.
func serveCheck(b *testing.B, d analytics.Decider) authv3.AuthorizationClient {
	svc, err := extauthz.New(d, extauthz.Options{})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}
