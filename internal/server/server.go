package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
)

// streamWorkers is how many calls can run on pooled goroutines at once.
const streamWorkers = 256

// Options are a Server's dependencies.
type Options struct {
	// Config gives the listen addresses, drain timings and TLS files.
	Config config.Server

	// Logger receives lifecycle events and handler panics. Nil discards.
	Logger *slog.Logger

	// Registry receives the gRPC metrics and is served at /metrics; pass
	// the one the rest of the binary registers on. Nil uses a fresh one.
	Registry *prometheus.Registry

	// TracerProvider, when not nil, traces every RPC except health checks
	// (telemetry.NewTracerProvider returns nil when tracing is off).
	TracerProvider trace.TracerProvider

	// GRPCOptions are appended to the server's own, e.g. keepalive or
	// message size limits. Interceptors given here run inside the metrics
	// and panic-recovery interceptors.
	GRPCOptions []grpc.ServerOption
}

// Server is a gRPC server and its HTTP admin server. Register services on
// GRPC() and handlers with HandleHTTP before calling Serve.
type Server struct {
	cfg    config.Server
	log    *slog.Logger
	reg    *prometheus.Registry
	grpc   *grpc.Server
	health *health.Server
	mux    *http.ServeMux
	http   *http.Server
	certs  *certReloader // nil without TLS

	grpcLis, httpLis net.Listener

	draining  chan struct{}
	drainOnce sync.Once
	served    sync.Once

	// drainWait waits out the drain delay; tests replace it to end the
	// delay on their signal instead of the clock.
	drainWait func(time.Duration) <-chan time.Time
}

// New builds the servers and binds both listeners, so the addresses are
// known (and ":0" resolved) before Serve, and a port already in use fails
// here rather than later. Health starts NOT_SERVING: the binary calls
// SetServing once it has loaded what it needs to answer.
func New(opts Options) (*Server, error) {
	if err := errors.Join(opts.Config.Validate(), opts.Config.TLS.Validate()); err != nil {
		return nil, fmt.Errorf("new server: invalid config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	metrics, err := newRPCMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new server: register gRPC metrics: %w", err)
	}

	s := &Server{
		cfg:       opts.Config,
		log:       log,
		reg:       reg,
		health:    health.NewServer(),
		mux:       http.NewServeMux(),
		draining:  make(chan struct{}),
		drainWait: time.After,
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	gopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(metrics.unary, recoverUnary(log)),
		grpc.ChainStreamInterceptor(metrics.stream, recoverStream(log)),
	}
	if opts.TracerProvider != nil {
		gopts = append(gopts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(opts.TracerProvider),
			otelgrpc.WithPropagators(telemetry.Propagator()),
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics go to Prometheus
			otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
		)))
	}
	if opts.Config.TLS.Enabled() {
		certs, err := newCertReloader(opts.Config.TLS, log)
		if err != nil {
			return nil, fmt.Errorf("new server: %w", err)
		}
		s.certs = certs
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(certs.serverConfig())))
	}
	// A pool of stream workers serves each RPC on a goroutine whose stack
	// has already grown, instead of a fresh goroutine per call: under
	// Envoy's load of small unary calls that stack growth was a tenth of
	// the CPU. gRPC hands a stream to a worker only if one is idle, else
	// starts a goroutine, so the pool is sized for the calls Envoy keeps
	// in flight, not for the cores; an idle worker costs only its stack.
	gopts = append(gopts, grpc.NumStreamWorkers(streamWorkers))
	gopts = append(gopts, opts.GRPCOptions...)
	s.grpc = grpc.NewServer(gopts...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	// Profiles on the admin port only, which Envoy never routes to: the
	// way to see where a replica's CPU goes under production load.
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if s.grpcLis, err = net.Listen("tcp", opts.Config.GRPCAddr); err != nil {
		s.closeEarly()
		return nil, fmt.Errorf("new server: listen for gRPC on %s: %w", opts.Config.GRPCAddr, err)
	}
	if s.httpLis, err = net.Listen("tcp", opts.Config.HTTPAddr); err != nil {
		s.closeEarly()
		return nil, fmt.Errorf("new server: listen for HTTP on %s: %w", opts.Config.HTTPAddr, err)
	}
	return s, nil
}

// closeEarly releases what New acquired when New fails part way.
func (s *Server) closeEarly() {
	if s.grpcLis != nil {
		_ = s.grpcLis.Close()
	}
	if s.httpLis != nil {
		_ = s.httpLis.Close()
	}
	if s.certs != nil {
		s.certs.close()
	}
}

// Close releases the listeners of a Server that will not Serve, such as
// when start-up fails after New. After Serve it does nothing.
func (s *Server) Close() {
	s.served.Do(func() {
		s.grpc.Stop()
		s.closeEarly()
	})
}

// GRPC is the server to register the binary's services on, before Serve.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// HandleHTTP mounts h on the admin server, before Serve; the pattern is an
// http.ServeMux pattern ("GET /.well-known/jwks.json"). /metrics, /healthz
// and /readyz are taken.
func (s *Server) HandleHTTP(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// GRPCAddr is the bound gRPC address, with ":0" resolved.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound admin address, with ":0" resolved.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// SetServing sets the gRPC health status of service ("" is the whole
// server, which /readyz also reports). Once draining has begun every
// status stays NOT_SERVING.
func (s *Server) SetServing(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(service, st)
}

// Draining is closed when shutdown begins, for handlers of long-lived
// streams (the access-log stream from Envoy) to end them cleanly so the
// client reconnects elsewhere instead of being cut at the grace deadline.
func (s *Server) Draining() <-chan struct{} { return s.draining }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	resp, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Serve serves both listeners until ctx is done, then drains: health goes
// NOT_SERVING at once, the server keeps answering for DrainDelay so load
// balancers notice, then stops accepting and lets in-flight calls finish
// for up to ShutdownGrace before cutting them. It returns nil after a
// clean drain, or the error that stopped a listener. Serve may be called
// once.
func (s *Server) Serve(ctx context.Context) error {
	err := errors.New("server: Serve called twice")
	s.served.Do(func() { err = s.serve(ctx) })
	return err
}

func (s *Server) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	failed := make(chan error, 2)
	wg.Go(func() {
		if err := s.grpc.Serve(s.grpcLis); err != nil {
			failed <- fmt.Errorf("serve gRPC on %s: %w", s.GRPCAddr(), err)
		}
	})
	wg.Go(func() {
		if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("serve HTTP on %s: %w", s.HTTPAddr(), err)
		}
	})
	if s.certs != nil {
		wg.Go(func() { s.certs.run(ctx) })
	}
	s.log.Info("serving", slog.String("grpc_addr", s.GRPCAddr()), slog.String("http_addr", s.HTTPAddr()),
		slog.Bool("tls", s.certs != nil))

	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down: draining", slog.Duration("drain_delay", s.cfg.DrainDelay),
			slog.Duration("grace", s.cfg.ShutdownGrace))
		s.health.Shutdown()
		if s.cfg.DrainDelay > 0 {
			<-s.drainWait(s.cfg.DrainDelay)
		}
	case serveErr = <-failed:
		s.log.Error("listener failed; shutting down", slog.Any("error", serveErr))
		s.health.Shutdown()
	}
	s.drainOnce.Do(func() { close(s.draining) })
	s.stop()
	cancel()
	wg.Wait()
	return serveErr
}

// stop ends both servers, giving in-flight work ShutdownGrace.
func (s *Server) stop() {
	grace := s.cfg.ShutdownGrace
	deadline, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-deadline.Done():
			s.log.Warn("shutdown grace expired; cutting in-flight gRPC calls", slog.Duration("grace", grace))
			s.grpc.Stop()
			<-done
		}
	})
	wg.Go(func() {
		if err := s.http.Shutdown(deadline); err != nil {
			s.log.Warn("shutdown grace expired; closing HTTP connections", slog.Any("error", err))
			_ = s.http.Close()
		}
	})
	wg.Wait()
	s.log.Info("stopped")
}
