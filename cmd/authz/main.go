// Command authz is Portcullis's Envoy external-authorization service: API
// keys, JWT and introspected OAuth tokens checked against the API catalog,
// applications and subscriptions, answered over ext_authz gRPC (and its
// HTTP mode for Envoy's HTTP protocol and nginx auth_request), with the
// dynamic metadata the rate-limit service counts by. On the same gRPC port
// it takes Envoy's access-log stream and turns each finished request into
// a usage event: Prometheus usage metrics always, and the -analytics sink
// when one is set.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/daemon"
	"github.com/portcullis-dev/portcullis/internal/server"
	"github.com/portcullis-dev/portcullis/internal/watch"
	"github.com/portcullis-dev/portcullis/pkg/accesslog"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/extauthz"
)

// emitterCloseTimeout bounds the final flush of queued events on shutdown;
// a sink that cannot take them by then loses them rather than holding the
// process past its termination grace.
const emitterCloseTimeout = 10 * time.Second

func main() {
	daemon.Main("authz", func(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer) error {
		return run(ctx, args, lookup, os.Stdout, stderr)
	})
}

// run takes stdout for -analytics jsonl:-, so that tests can read it.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	a, err := newApp(ctx, args, lookup, stdout, stderr)
	if err != nil {
		return err
	}
	return a.serve(ctx)
}

// app is the wired binary; tests build it on ":0" ports and call serve.
type app struct {
	cfg        Config
	log        *slog.Logger
	srv        *server.Server
	base       *daemon.Base[Config]
	catalog    *catalog.Source // nil when no catalog is configured
	watcher    *watch.Watcher  // the catalog's; nil with the catalog
	applied    *catalog.Snapshot
	authorizer *authz.Authorizer
	verifiers  *verifiers
	emitter    *analytics.Emitter
	stopIdP    context.CancelFunc
}

func newApp(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) (_ *app, err error) {
	fs := flag.NewFlagSet("authz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := defaults()
	file := fs.String("config", "", "YAML config `file` (optional; watched, the log level applies live)")
	grpcAddr := fs.String("grpc-addr", d.Server.GRPCAddr, "gRPC listen `address` for Envoy's ext_authz")
	httpAddr := fs.String("http-addr", d.Server.HTTPAddr, "HTTP listen `address`: ext_authz HTTP mode, /metrics, /healthz, /readyz")
	catalogPath := fs.String("catalog", d.Catalog, "catalog file or directory `path`; empty serves an empty catalog")
	sink := fs.String("analytics", d.Analytics, "usage-event `sink` besides the usage metrics: off, jsonl:FILE, jsonl:- (stdout), otlp-grpc:HOST:PORT or otlp-http:URL")
	decisions := fs.Bool("analytics-decisions", d.AnalyticsDecisions, "emit an event per decision, where Envoy's access log is not streamed to authz (both count each request twice)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	src := config.Source[Config]{
		File:     *file,
		Lookup:   lookup,
		Defaults: defaults,
		Override: func(c *Config) {
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "grpc-addr":
					c.Server.GRPCAddr = *grpcAddr
				case "http-addr":
					c.Server.HTTPAddr = *httpAddr
				case "catalog":
					c.Catalog = *catalogPath
				case "analytics":
					c.Analytics = *sink
				case "analytics-decisions":
					c.AnalyticsDecisions = *decisions
				}
			})
		},
	}

	a := &app{}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if a.base, a.cfg, err = daemon.Start(ctx, src, stderr, "portcullis-authz", func(c Config) daemon.Parts {
		return daemon.Parts{Log: c.Log, Tracing: c.Tracing}
	}); err != nil {
		return nil, err
	}
	a.log = a.base.Log
	reg, tp := a.base.Registry, a.base.Tracer

	if a.authorizer, err = authz.New(authz.Options{
		Realm:           a.cfg.Authz.Realm,
		TrustedHops:     a.cfg.Authz.TrustedHops,
		IdentityHeaders: a.cfg.Authz.IdentityHeaders.authz(),
		AllowUnmanaged:  a.cfg.Authz.AllowUnmanaged,
		Logger:          a.log,
		Registerer:      reg,
	}); err != nil {
		return nil, err
	}
	// Key fetches outlive any one request (a refresh started by one token
	// serves the next ones), so they are bounded by the process, not by
	// the request that started them.
	idpCtx, stopIdP := context.WithCancel(context.WithoutCancel(ctx))
	a.stopIdP = stopIdP
	a.base.OnClose(func() error { stopIdP(); return nil })
	a.verifiers = &verifiers{ctx: idpCtx, timeout: a.cfg.IdP.Timeout, entries: a.cfg.IdP.CacheEntries, reg: reg, log: a.log}

	if a.cfg.Catalog != "" {
		// Watch before the first load, so that a change made in between
		// is not missed.
		if a.watcher, err = watch.New([]string{a.cfg.Catalog}, watch.Options{Logger: a.log}); err != nil {
			return nil, fmt.Errorf("watch catalog: %w", err)
		}
		a.base.OnClose(a.watcher.Close)
		if a.catalog, err = catalog.NewSource(catalog.SourceOptions{Path: a.cfg.Catalog, Logger: a.log, Registerer: reg}); err != nil {
			return nil, err
		}
		if err := a.catalog.Load(ctx); err != nil {
			return nil, err
		}
		if err := a.apply(a.catalog.Snapshot()); err != nil {
			return nil, err
		}
	} else {
		empty, err := catalog.Build(nil)
		if err != nil {
			return nil, fmt.Errorf("build the empty catalog: %w", err)
		}
		if err := a.apply(empty); err != nil {
			return nil, err
		}
		a.log.Warn("no catalog configured: every request is unmanaged (-catalog PATH)")
	}

	if a.emitter, err = a.newEmitter(ctx, stdout, reg); err != nil {
		return nil, err
	}
	var decider extauthz.Decider = a.authorizer
	if a.cfg.AnalyticsDecisions {
		decider = analytics.RecordDecisions(a.authorizer, a.emitter, analytics.DecisionOptions{TrustedHops: a.cfg.Authz.TrustedHops})
	}

	mode, _ := extauthz.ParseUnavailableMode(a.cfg.Authz.IdPUnavailable) // validated
	svc, err := extauthz.New(decider, extauthz.Options{
		Unavailable:          mode,
		HTTPPrefix:           a.cfg.HTTP.Prefix,
		HTTPClientAddrHeader: a.cfg.HTTP.ClientAddressHeader,
		Logger:               a.log,
		Registerer:           reg,
	})
	if err != nil {
		return nil, err
	}
	if a.srv, err = server.New(server.Options{Config: a.cfg.Server, Logger: a.log, Registry: reg, TracerProvider: tp}); err != nil {
		return nil, err
	}
	authv3.RegisterAuthorizationServer(a.srv.GRPC(), svc)
	a.srv.HandleHTTP(a.cfg.HTTP.Prefix, svc)
	a.srv.HandleHTTP(a.cfg.HTTP.Prefix+"/", svc)

	alsOpts := accesslog.Options{
		Sink:        a.emitter,
		TrustedHops: a.cfg.Authz.TrustedHops,
		Draining:    a.srv.Draining(),
		Logger:      a.log,
		Registerer:  reg,
	}
	if a.catalog != nil { // not a typed nil in the interface
		alsOpts.Catalog = a.catalog
	}
	als, err := accesslog.New(alsOpts)
	if err != nil {
		return nil, err
	}
	alsv3.RegisterAccessLogServiceServer(a.srv.GRPC(), als)
	return a, nil
}

// newEmitter starts the emitter every usage event goes through: to the
// usage metrics always, and to the -analytics sink when one is set. Its
// closer flushes the queue; closers run after the server has drained, so
// the last requests' events are in it.
func (a *app) newEmitter(ctx context.Context, stdout io.Writer, reg prometheus.Registerer) (*analytics.Emitter, error) {
	usageOpts := analytics.UsageOptions{Registerer: reg}
	if a.catalog != nil { // not a typed nil in the interface
		usageOpts.Catalog = a.catalog
	}
	usage, err := analytics.NewUsage(usageOpts)
	if err != nil {
		return nil, err
	}
	sinks := []analytics.Sink{usage}
	spec, _ := analytics.ParseSink(a.cfg.Analytics) // validated
	if spec.Kind != analytics.SinkOff {
		s, err := analytics.OpenSink(ctx, spec, analytics.SinkOptions{Stdout: stdout, ServiceName: "portcullis-authz"})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	em, err := analytics.NewEmitter(analytics.EmitterOptions{Sinks: sinks, Logger: a.log, Registerer: reg})
	if err != nil {
		for _, s := range sinks {
			_ = s.Shutdown(ctx) // the start failed already; that error is the one to report
		}
		return nil, err
	}
	a.base.OnClose(func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emitterCloseTimeout)
		defer cancel()
		if err := em.Close(ctx); err != nil {
			return fmt.Errorf("flush analytics events: %w", err)
		}
		return nil
	})
	a.log.Info("analytics", slog.String("sink", spec.String()), slog.Bool("decision_events", a.cfg.AnalyticsDecisions))
	return em, nil
}

// apply builds the verifiers for snap and puts both in force. On failure
// the catalog and verifiers in force stay.
func (a *app) apply(snap *catalog.Snapshot) error {
	v, err := a.verifiers.build(snap)
	if err != nil {
		return err
	}
	if err := a.authorizer.Update(snap, v); err != nil {
		return err
	}
	a.applied = snap
	return nil
}

// serve runs until ctx is cancelled, then drains and releases everything.
func (a *app) serve(ctx context.Context) error {
	defer a.close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.srv.Serve(ctx) })
	g.Go(func() error {
		return a.base.Reloader.Run(ctx, func(c Config) {
			a.base.Level.Set(c.Log.SlogLevel())
			a.log.Info("config reloaded; log level applied, other changes need a restart")
		})
	})
	if a.catalog != nil {
		// OnUpdate's calls are serialised, and the first is with the
		// snapshot newApp applied.
		a.catalog.OnUpdate(func(s *catalog.Snapshot) {
			if s == a.applied {
				return
			}
			if err := a.apply(s); err != nil {
				a.log.Error("verifiers for the new catalog could not be built; the catalog in force keeps serving",
					slog.String("error", err.Error()))
			}
		})
		g.Go(func() error { return a.catalog.Run(ctx, a.watcher) })
	}
	a.srv.SetServing("", true)
	a.srv.SetServing(authv3.Authorization_ServiceDesc.ServiceName, true)
	a.srv.SetServing(alsv3.AccessLogService_ServiceDesc.ServiceName, true)
	a.log.Info("authz serving", slog.String("grpc", a.srv.GRPCAddr()), slog.String("http", a.srv.HTTPAddr()),
		slog.String("http_mode", a.cfg.HTTP.Prefix))
	return g.Wait()
}

func (a *app) close() {
	if a.base != nil {
		a.base.Close()
	}
	if a.srv != nil {
		a.srv.Close()
	}
}
