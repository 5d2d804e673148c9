// Command ratelimit is Envoy's global rate-limit service for Portcullis:
// API-manager throttling policies in domain "portcullis" and
// envoyproxy/ratelimit rule files for every other domain, counted in Redis
// or, with no -redis, in an embedded memory store.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	_ "time/tzdata" // policies name time zones; images may have no zoneinfo

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/daemon"
	"github.com/portcullis-dev/portcullis/internal/server"
	"github.com/portcullis-dev/portcullis/internal/watch"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/memstore"
	"github.com/portcullis-dev/portcullis/pkg/quota/redisstore"
	"github.com/portcullis-dev/portcullis/pkg/rls"
)

func main() { daemon.Main("ratelimit", run) }

func run(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer) error {
	a, err := newApp(ctx, args, lookup, stderr)
	if err != nil {
		return err
	}
	return a.serve(ctx)
}

// app is the wired binary; tests build it on ":0" ports and call serve.
type app struct {
	cfg     Config
	log     *slog.Logger
	srv     *server.Server
	base    *daemon.Base[Config]
	rules   *ruleset
	catalog *catalog.Source
	store   quota.Store
}

func newApp(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer) (_ *app, err error) {
	fs := flag.NewFlagSet("ratelimit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := defaults()
	file := fs.String("config", "", "YAML config `file` (optional; watched and reloaded)")
	grpcAddr := fs.String("grpc-addr", d.Server.GRPCAddr, "gRPC listen `address` for Envoy")
	httpAddr := fs.String("http-addr", d.Server.HTTPAddr, "HTTP admin listen `address`: /metrics, /healthz, /readyz")
	rulesDir := fs.String("rules", d.Rules, "`directory` of envoyproxy/ratelimit rule files")
	catalogPath := fs.String("catalog", d.Catalog, "catalog file or directory `path` whose Policy documents serve domain portcullis")
	redisURL := fs.String("redis", d.Redis.URL, "Redis `URL` (redis://, rediss://, redis+sentinel://, redis+cluster://); empty: the memory store")
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
				case "rules":
					c.Rules = *rulesDir
				case "catalog":
					c.Catalog = *catalogPath
				case "redis":
					c.Redis.URL = *redisURL
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
	if a.base, a.cfg, err = daemon.Start(ctx, src, stderr, "portcullis-ratelimit", func(c Config) daemon.Parts {
		return daemon.Parts{Log: c.Log, Tracing: c.Tracing}
	}); err != nil {
		return nil, err
	}
	a.log = a.base.Log
	reg, tp := a.base.Registry, a.base.Tracer

	a.rules = &ruleset{dir: a.cfg.Rules, log: a.log}
	if err := a.rules.loadFiles(ctx); err != nil {
		return nil, err
	}
	if a.cfg.Catalog != "" {
		if a.catalog, err = catalog.NewSource(catalog.SourceOptions{Path: a.cfg.Catalog, Logger: a.log, Registerer: reg}); err != nil {
			return nil, err
		}
		if err := a.catalog.Load(ctx); err != nil {
			return nil, err
		}
		if err := a.rules.setCatalog(a.catalog.Snapshot()); err != nil {
			return nil, err
		}
	}

	if a.store, err = a.newStore(reg); err != nil {
		return nil, err
	}
	mode, _ := rls.ParseFailureMode(a.cfg.Limiter.FailureMode) // validated
	timeout := a.cfg.Limiter.Timeout
	if a.cfg.Redis.URL == "" {
		timeout = 0 // the memory store never blocks: no deadline to keep
	}
	svc := rls.New(a.rules, a.store, rls.Options{
		Timeout:        timeout,
		FailureMode:    mode,
		Shadow:         a.cfg.Limiter.Shadow,
		NearLimitRatio: a.cfg.Limiter.NearLimitRatio,
		Logger:         a.log,
		Registerer:     reg,
	})

	if a.srv, err = server.New(server.Options{Config: a.cfg.Server, Logger: a.log, Registry: reg, TracerProvider: tp}); err != nil {
		return nil, err
	}
	rlsv3.RegisterRateLimitServiceServer(a.srv.GRPC(), svc)
	return a, nil
}

// newStore picks the store: Redis when a URL is configured, else memory.
func (a *app) newStore(reg prometheus.Registerer) (quota.Store, error) {
	if a.cfg.Redis.URL == "" {
		return memstore.New(memstore.Options{MaxKeys: a.cfg.Memory.MaxKeys, Registerer: reg})
	}
	opts, err := redisstore.ParseURL(a.cfg.Redis.URL)
	if err != nil {
		return nil, err
	}
	// go-redis logs through a package-level logger; send its lines (dial
	// failures while Redis is down) into ours as structured warnings. Its
	// messages carry addresses, never the password. Set once: it is
	// go-redis's global, read by its goroutines.
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{a.log}) })
	client := redis.NewUniversalClient(opts)
	a.base.OnClose(client.Close)
	st := redisstore.New(client, redisstore.Options{
		Prefix:     a.cfg.Redis.Prefix,
		LocalCache: a.cfg.Redis.LocalCache,
		Registerer: reg,
		Logger:     a.log,
	})
	a.base.OnClose(st.Close)
	return st, nil
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
	if a.cfg.Rules != "" {
		w, err := watch.New([]string{a.cfg.Rules}, watch.Options{Logger: a.log})
		if err != nil {
			return fmt.Errorf("watch rules: %w", err)
		}
		a.base.OnClose(w.Close)
		g.Go(func() error {
			return w.Run(ctx, func() {
				if err := a.rules.loadFiles(ctx); err != nil {
					a.log.Error("rules reload failed; the rules in force keep serving", slog.String("error", err.Error()))
				}
			})
		})
	}
	if a.catalog != nil {
		w, err := watch.New([]string{a.cfg.Catalog}, watch.Options{Logger: a.log})
		if err != nil {
			return fmt.Errorf("watch catalog: %w", err)
		}
		a.base.OnClose(w.Close)
		a.catalog.OnUpdate(func(s *catalog.Snapshot) {
			if err := a.rules.setCatalog(s); err != nil {
				a.log.Error("policies from the new catalog do not compile; the rules in force keep serving", slog.String("error", err.Error()))
			}
		})
		g.Go(func() error { return a.catalog.Run(ctx, w) })
	}
	a.srv.SetServing("", true)
	a.srv.SetServing(rlsv3.RateLimitService_ServiceDesc.ServiceName, true)
	a.log.Info("ratelimit serving", slog.String("grpc", a.srv.GRPCAddr()), slog.String("http", a.srv.HTTPAddr()),
		slog.String("store", a.storeName()))
	return g.Wait()
}

func (a *app) storeName() string {
	if a.cfg.Redis.URL != "" {
		return "redis"
	}
	return "memory"
}

func (a *app) close() {
	if a.base != nil {
		a.base.Close()
	}
}

var redisLogOnce sync.Once

// redisLog adapts slog to go-redis's logger.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", slog.String("message", fmt.Sprintf(format, v...)))
}
