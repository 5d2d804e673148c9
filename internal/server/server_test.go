package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
)

const deadline = 10 * time.Second

// testService is a gRPC service whose calls block until the test says so.
type testService struct {
	started chan struct{}  // one send per call that began
	release chan struct{}  // closed to let Wait calls return
	cut     chan error     // the context error a Wait call saw when cut
	srv     func() *Server // for Follow to watch Draining
}

func newTestService() *testService {
	return &testService{started: make(chan struct{}, 10), release: make(chan struct{}), cut: make(chan error, 10)}
}

const testServiceName = "portcullis.test.Blocking"

func (ts *testService) desc() *grpc.ServiceDesc {
	unary := func(name string, h func(context.Context) error) grpc.MethodDesc {
		return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, _ any) (any, error) {
				if err := h(ctx); err != nil {
					return nil, err
				}
				return &emptypb.Empty{}, nil
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + testServiceName + "/" + name}, call)
		}}
	}
	return &grpc.ServiceDesc{
		ServiceName: testServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary("Wait", func(ctx context.Context) error {
				ts.started <- struct{}{}
				select {
				case <-ts.release:
					return nil
				case <-ctx.Done():
					ts.cut <- ctx.Err()
					return ctx.Err()
				}
			}),
			unary("Panic", func(context.Context) error { panic("handler bug") }),
		},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Follow",
			ServerStreams: true,
			// Follow sends one message and then ends cleanly when the
			// server starts draining, as a long-lived stream should.
			Handler: func(_ any, stream grpc.ServerStream) error {
				if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
					return err
				}
				if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
					return err
				}
				select {
				case <-ts.srv().Draining():
					return nil
				case <-stream.Context().Done():
					return stream.Context().Err()
				}
			},
		}},
	}
}

type running struct {
	srv    *Server
	svc    *testService
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returns
	err    error         // Serve's result, once done is closed
}

// start builds a Server on ephemeral ports with the test service, serves it
// and stops it when the test ends.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	if opts.Config.GRPCAddr == "" {
		grace := opts.Config.ShutdownGrace
		tlsCfg := opts.Config.TLS
		opts.Config = config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownGrace: grace, TLS: tlsCfg}
		if opts.Config.ShutdownGrace == 0 {
			opts.Config.ShutdownGrace = deadline
		}
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	svc := newTestService()
	svc.srv = func() *Server { return srv }
	srv.GRPC().RegisterService(svc.desc(), svc)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = srv.Serve(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(2 * deadline):
			t.Error("Serve did not return after cancel")
		}
	})
	return r
}

// stopped cancels Serve and returns its result.
func (r *running) stopped(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(2 * deadline):
		t.Fatal("Serve did not return after cancel")
		return nil
	}
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func healthStatus(t *testing.T, conn *grpc.ClientConn, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health Check(%q): %v", service, err)
	}
	return resp.GetStatus()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within %v", what, deadline)
		}
	}
}

func invoke(ctx context.Context, conn *grpc.ClientConn, method string) error {
	return conn.Invoke(ctx, "/"+testServiceName+"/"+method, &emptypb.Empty{}, &emptypb.Empty{})
}

func TestHealthStartsNotServingAndFollowsTheBinary(t *testing.T) {
	r := start(t, Options{})
	conn := dial(t, r.srv.GRPCAddr(), nil)
	base := "http://" + r.srv.HTTPAddr()

	if got := healthStatus(t, conn, ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health before SetServing = %v, want NOT_SERVING", got)
	}
	if code, _ := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before SetServing = %d, want 503", code)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200: the process is alive", code)
	}

	r.srv.SetServing("", true)
	r.srv.SetServing("envoy.service.auth.v3.Authorization", true)
	if got := healthStatus(t, conn, ""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after SetServing = %v, want SERVING", got)
	}
	if got := healthStatus(t, conn, "envoy.service.auth.v3.Authorization"); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("per-service health = %v, want SERVING", got)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after SetServing = %d %q, want 200", code, body)
	}

	r.srv.SetServing("", false)
	if code, _ := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after SetServing(false) = %d, want 503", code)
	}
}

func TestReflectionListsTheRegisteredServices(t *testing.T) {
	r := start(t, Options{})
	conn := dial(t, r.srv.GRPCAddr(), nil)
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
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
	for _, want := range []string{"grpc.health.v1.Health", testServiceName} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, want %s among them", names, want)
		}
	}
}

func TestMetricsCountEveryRPCByMethodAndCode(t *testing.T) {
	reg := telemetry.NewRegistry()
	r := start(t, Options{Registry: reg})
	conn := dial(t, r.srv.GRPCAddr(), nil)
	healthStatus(t, conn, "")
	healthStatus(t, conn, "")
	err := invoke(t.Context(), conn, "Panic")
	if status.Code(err) != codes.Internal {
		t.Errorf("a panicking handler answered %v, want Internal", err)
	}
	// The process survived the panic.
	healthStatus(t, conn, "")

	code, body := httpGet(t, "http://"+r.srv.HTTPAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 3`,
		`grpc_server_handled_total{grpc_code="Internal",grpc_method="Panic",grpc_service="portcullis.test.Blocking",grpc_type="unary"} 1`,
		`grpc_server_handling_seconds_count{grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 3`,
		`grpc_server_in_flight{grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHandleHTTPMountsTheBinarysHandlers(t *testing.T) {
	srv, err := New(Options{Config: config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.HandleHTTP("GET /.well-known/jwks.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	if code, body := httpGet(t, "http://"+srv.HTTPAddr()+"/.well-known/jwks.json"); code != http.StatusOK || body != `{"keys":[]}` {
		t.Errorf("mounted handler answered %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+srv.HTTPAddr()+"/nothing-here"); code != http.StatusNotFound {
		t.Errorf("unknown path answered %d, want 404", code)
	}
}

func TestDrainReportsNotReadyThenLetsInFlightCallsFinish(t *testing.T) {
	srv, err := New(Options{Config: config.Server{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		DrainDelay: time.Hour, ShutdownGrace: time.Hour,
	}})
	if err != nil {
		t.Fatal(err)
	}
	endDelay := make(chan time.Time)
	srv.drainWait = func(time.Duration) <-chan time.Time { return endDelay }
	svc := newTestService()
	svc.srv = func() *Server { return srv }
	srv.GRPC().RegisterService(svc.desc(), svc)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	srv.SetServing("", true)

	conn := dial(t, srv.GRPCAddr(), nil)
	callDone := make(chan error, 1)
	go func() { callDone <- invoke(context.Background(), conn, "Wait") }()
	<-svc.started

	cancel()
	eventually(t, "/readyz reports 503 once draining starts", func() bool {
		code, _ := httpGet(t, "http://"+srv.HTTPAddr()+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	// During the drain delay the server still answers.
	if got := healthStatus(t, conn, ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health while draining = %v, want NOT_SERVING", got)
	}
	srv.SetServing("", true) // a late SetServing must not undo the drain
	if got := healthStatus(t, conn, ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after a late SetServing = %v, want NOT_SERVING", got)
	}
	select {
	case <-srv.Draining():
		t.Fatal("Draining closed before the drain delay ended")
	default:
	}

	close(endDelay)
	select {
	case <-srv.Draining():
	case <-time.After(deadline):
		t.Fatal("Draining not closed after the drain delay")
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a call in flight and grace left", err)
	default:
	}
	close(svc.release)
	if err := <-callDone; err != nil {
		t.Errorf("in-flight call = %v, want success within grace", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after a clean drain", err)
		}
	case <-time.After(deadline):
		t.Fatal("Serve did not return once the in-flight call finished")
	}
}

func TestGraceCutsCallsThatOverrunIt(t *testing.T) {
	r := start(t, Options{Config: config.Server{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownGrace: 50 * time.Millisecond,
	}})
	conn := dial(t, r.srv.GRPCAddr(), nil)
	callDone := make(chan error, 1)
	go func() { callDone <- invoke(context.Background(), conn, "Wait") }()
	<-r.svc.started

	began := time.Now()
	if err := r.stopped(t); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if took := time.Since(began); took < 50*time.Millisecond {
		t.Errorf("Serve returned after %v, before the grace period", took)
	}
	select {
	case err := <-r.svc.cut:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler context ended with %v, want canceled", err)
		}
	case <-time.After(deadline):
		t.Fatal("handler was not cut")
	}
	if err := <-callDone; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Errorf("cut call = %v, want Unavailable or Canceled", err)
	}
}

func TestLongLivedStreamEndsCleanlyOnDraining(t *testing.T) {
	r := start(t, Options{}) // grace far longer than the test's deadline
	conn := dial(t, r.srv.GRPCAddr(), nil)
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+testServiceName+"/Follow")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
		t.Fatalf("first message: %v", err)
	}
	r.cancel()
	if err := stream.RecvMsg(new(emptypb.Empty)); err != io.EOF {
		t.Errorf("stream after drain = %v, want a clean end (io.EOF)", err)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Serve = %v, want nil", r.err)
		}
	case <-time.After(deadline / 2):
		t.Fatal("Serve waited for the grace period although the stream had ended")
	}
}

// writeServerCert issues a server certificate into dir and returns the TLS
// config part naming the files.
func writeServerCert(t *testing.T, pki *testPKI, dir string, serial int64, mutual bool) config.TLS {
	t.Helper()
	certPEM, keyPEM := pki.issue(t, serial, true)
	cfg := config.TLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	writeAtomically(t, cfg.KeyFile, keyPEM)
	writeAtomically(t, cfg.CertFile, certPEM)
	if mutual {
		cfg.ClientCAFile = filepath.Join(dir, "ca.crt")
		writeAtomically(t, cfg.ClientCAFile, pki.caPEM)
	}
	return cfg
}

func TestTLSAndMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name       string
		mutual     bool
		clientCert bool
		plaintext  bool
		wantOK     bool
	}{
		{name: "TLS client", wantOK: true},
		{name: "plaintext client against TLS", plaintext: true},
		{name: "mutual TLS client with a certificate", mutual: true, clientCert: true, wantOK: true},
		{name: "mutual TLS client without a certificate", mutual: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsCfg := writeServerCert(t, pki, t.TempDir(), 2, tt.mutual)
			r := start(t, Options{Config: config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownGrace: deadline, TLS: tlsCfg}})
			var creds credentials.TransportCredentials
			if !tt.plaintext {
				cc := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
				if tt.clientCert {
					cc.Certificates = []tls.Certificate{pki.clientCert(t)}
				}
				creds = credentials.NewTLS(cc)
			}
			conn := dial(t, r.srv.GRPCAddr(), creds)
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if tt.wantOK && err != nil {
				t.Fatalf("Check over TLS: %v", err)
			}
			if !tt.wantOK && status.Code(err) != codes.Unavailable {
				t.Fatalf("Check = %v, want Unavailable (handshake refused)", err)
			}
		})
	}
}

func TestTLSCertificateIsReloadedWhenItsFilesChange(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	tlsCfg := writeServerCert(t, pki, dir, 2, false)
	r := start(t, Options{Config: config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownGrace: deadline, TLS: tlsCfg}})

	serial := func() int64 {
		d := tls.Dialer{Config: &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}}
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", r.srv.GRPCAddr())
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 2 {
		t.Fatalf("serving certificate serial %d, want 2", got)
	}
	writeServerCert(t, pki, dir, 3, false)
	eventually(t, "the rotated certificate is served", func() bool { return serial() == 3 })
}

func TestNewFailsClearly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.Server
		want string
	}{
		{"invalid config", config.Server{GRPCAddr: "nope", HTTPAddr: ":0"}, "grpcAddr"},
		{"gRPC port in use", config.Server{GRPCAddr: busy.Addr().String(), HTTPAddr: "127.0.0.1:0"}, "listen for gRPC on " + busy.Addr().String()},
		{"HTTP port in use", config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: busy.Addr().String()}, "listen for HTTP on " + busy.Addr().String()},
		{"missing certificate", config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			TLS: config.TLS{CertFile: filepath.Join(dir, "none.crt"), KeyFile: filepath.Join(dir, "none.key")}}, "load TLS key pair"},
		{"unparsable client CA", config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			TLS: func() config.TLS {
				c := writeServerCert(t, newTestPKI(t), t.TempDir(), 2, false)
				c.ClientCAFile = garbage
				return c
			}()}, "no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(Options{Config: tt.cfg})
			if err == nil {
				srv.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCloseWithoutServeReleasesThePorts(t *testing.T) {
	srv, err := New(Options{Config: config.Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{srv.GRPCAddr(), srv.HTTPAddr()}
	srv.Close()
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("port %s still held after Close: %v", a, err)
			continue
		}
		l.Close()
	}
	if err := srv.Serve(t.Context()); err == nil {
		t.Error("Serve after Close succeeded")
	}
}

func TestTracingRecordsRPCsButNotHealthChecks(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r := start(t, Options{TracerProvider: tp})
	conn := dial(t, r.srv.GRPCAddr(), nil)
	healthStatus(t, conn, "")
	close(r.svc.release)
	if err := invoke(t.Context(), conn, "Wait"); err != nil {
		t.Fatal(err)
	}
	var names []string
	eventually(t, "the RPC's span ends", func() bool {
		names = names[:0]
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		return len(names) > 0
	})
	if len(names) != 1 || names[0] != testServiceName+"/Wait" {
		t.Errorf("spans %v, want only %s/Wait", names, testServiceName)
	}
}
