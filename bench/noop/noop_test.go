package noop

import (
	"context"
	"slices"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/testing/protocmp"
)

// dial starts a server on a free loopback port and connects to it.
func dial(t *testing.T) (*Server, *grpc.ClientConn) {
	t.Helper()
	srv, err := Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, conn
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func descriptors(n int) []*rlv3.RateLimitDescriptor {
	ds := make([]*rlv3.RateLimitDescriptor, n)
	for i := range ds {
		ds[i] = &rlv3.RateLimitDescriptor{Entries: []*rlv3.RateLimitDescriptor_Entry{{Key: "policy_scope", Value: "subscription"}}}
	}
	return ds
}

func okStatuses(n int) []*rlsv3.RateLimitResponse_DescriptorStatus {
	ss := make([]*rlsv3.RateLimitResponse_DescriptorStatus, n)
	for i := range ss {
		ss[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	return ss
}

func TestShouldRateLimitAllowsWithOneStatusPerDescriptor(t *testing.T) {
	ctx := testContext(t)
	_, conn := dial(t)
	client := rlsv3.NewRateLimitServiceClient(conn)
	for _, n := range []int{0, 1, 4} {
		t.Run(map[int]string{0: "no descriptors", 1: "one descriptor", 4: "four descriptors"}[n], func(t *testing.T) {
			resp, err := client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "portcullis", Descriptors: descriptors(n)})
			if err != nil {
				t.Fatal(err)
			}
			want := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: okStatuses(n)}
			if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAllowsWithAnOkHTTPResponse(t *testing.T) {
	ctx := testContext(t)
	_, conn := dial(t)
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() == nil || resp.GetStatus().GetCode() != 0 || resp.GetOkResponse() == nil {
		t.Errorf("Check() = %v, want status OK with an OkHttpResponse", resp)
	}
}

func TestStreamAccessLogsDrainsAndCounts(t *testing.T) {
	ctx := testContext(t)
	srv, conn := dial(t)
	client := alsv3.NewAccessLogServiceClient(conn)
	for range 2 {
		stream, err := client.StreamAccessLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := stream.Send(&alsv3.StreamAccessLogsMessage{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := stream.CloseAndRecv(); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.AccessLog().Received(); got != 6 {
		t.Errorf("Received() = %d, want 6 over two streams", got)
	}
}

func TestServerOffersHealthAndReflection(t *testing.T) {
	ctx := testContext(t)
	_, conn := dial(t)
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v; want SERVING", h, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{
		"envoy.service.ratelimit.v3.RateLimitService",
		"envoy.service.auth.v3.Authorization",
		"envoy.service.accesslog.v3.AccessLogService",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, want %s among them (ghz calls by reflection)", names, want)
		}
	}
}

func TestStopIsIdempotentAndStartRefusesABusyPort(t *testing.T) {
	ctx := testContext(t)
	srv, err := Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, srv.Addr()); err == nil {
		t.Error("Start on a port in use succeeded, want an error")
	}
	for i := range 2 {
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop #%d = %v, want nil", i+1, err)
		}
	}
}

// BenchmarkShouldRateLimit is the no-op's own cost per call, without the
// network: what the baseline spends besides gRPC.
func BenchmarkShouldRateLimit(b *testing.B) {
	req := &rlsv3.RateLimitRequest{Domain: "portcullis", Descriptors: descriptors(4)}
	var s RateLimit
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ShouldRateLimit(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
