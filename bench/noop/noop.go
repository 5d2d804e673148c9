package noop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// RateLimit answers every ShouldRateLimit with OK and one OK status per
// descriptor: the smallest answer Envoy accepts for the request, allocated
// afresh as a real server must.
type RateLimit struct {
	rlsv3.UnimplementedRateLimitServiceServer
}

var _ rlsv3.RateLimitServiceServer = RateLimit{}

// ShouldRateLimit allows the request.
func (RateLimit) ShouldRateLimit(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	statuses := make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(req.GetDescriptors()))
	for i := range statuses {
		statuses[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: statuses}, nil
}

// Authorization answers every Check with OK and an empty OkHttpResponse.
type Authorization struct {
	authv3.UnimplementedAuthorizationServer
}

var _ authv3.AuthorizationServer = Authorization{}

// Check allows the request.
func (Authorization) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

// AccessLog drains StreamAccessLogs streams, counting the messages so a
// benchmark can check that what it sent arrived.
type AccessLog struct {
	alsv3.UnimplementedAccessLogServiceServer
	received atomic.Uint64
}

var _ alsv3.AccessLogServiceServer = (*AccessLog)(nil)

// StreamAccessLogs reads until the client half-closes, decoding every
// message into one reused message, and answers with an empty response.
func (a *AccessLog) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	msg := new(alsv3.StreamAccessLogsMessage)
	for {
		err := stream.RecvMsg(msg)
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		a.received.Add(1)
	}
}

// Received is the number of access-log messages read so far.
func (a *AccessLog) Received() uint64 { return a.received.Load() }

// Register adds the three services to s and returns the access-log
// service, whose count a caller may want.
func Register(s grpc.ServiceRegistrar) *AccessLog {
	als := new(AccessLog)
	rlsv3.RegisterRateLimitServiceServer(s, RateLimit{})
	authv3.RegisterAuthorizationServer(s, Authorization{})
	alsv3.RegisterAccessLogServiceServer(s, als)
	return als
}

// Server is a gRPC server with the three no-op services, plus health and
// reflection as Portcullis's servers have (so tools like ghz and grpcurl
// find the methods without .proto files), serving on its own listener.
type Server struct {
	grpc  *grpc.Server
	lis   net.Listener
	als   *AccessLog
	serve chan error

	stopOnce sync.Once
	stopErr  error
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves in the
// background until Stop.
func Start(ctx context.Context, addr string, opts ...grpc.ServerOption) (*Server, error) {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("noop: listen on %s: %w", addr, err)
	}
	gs := grpc.NewServer(opts...)
	s := &Server{grpc: gs, lis: lis, als: Register(gs), serve: make(chan error, 1)}
	healthpb.RegisterHealthServer(gs, health.NewServer())
	reflection.Register(gs)
	go func() { s.serve <- gs.Serve(lis) }()
	return s, nil
}

// Addr is the address the server listens on, with the port chosen.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// AccessLog is the server's access-log service.
func (s *Server) AccessLog() *AccessLog { return s.als }

// Stop lets in-flight calls finish until ctx ends, then closes every
// connection, and returns what Serve returned if it failed. Later calls
// return the same.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		<-stopped
	}
	if err := <-s.serve; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("noop: serve: %w", err)
	}
	return nil
}
