// Package daemon is what every Portcullis binary does around its own
// wiring: turn SIGTERM into a cancelled context, load the layered config
// with a reloader, build the logger, the metrics registry and the tracer
// from it, and close what was opened in reverse order. cmd/authz and
// cmd/ratelimit build their parts on the Base it returns, so the two
// binaries behave alike before and after their own work.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
)

// Main runs a binary's run function with a context cancelled by SIGTERM or
// an interrupt, and exits 1 with the error on failure: the one exit point.
func Main(name string, run func(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer) error) {
	// The live heap is small (catalog, rules, counters) and every request
	// allocates its response, so the default GOGC=100 spent a tenth of the
	// CPU on collection under load. 400 trades a few MB for that; GOGC and
	// GOMEMLIMIT set by the operator still win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Base is what a binary builds its parts on.
type Base[T any] struct {
	Log      *slog.Logger
	Level    *slog.LevelVar // the reloader's apply sets it, so the level applies live
	Registry *prometheus.Registry
	Tracer   trace.TracerProvider // nil when tracing is off
	Reloader *config.Reloader[T]
	closers  []func() error
}

// Parts are the config parts Start needs from a binary's config.
type Parts struct {
	Log     config.Log
	Tracing config.Tracing
}

// Start loads src (watching its file), then builds the logger, registry and
// tracer for service. On error everything opened so far is closed.
func Start[T any](ctx context.Context, src config.Source[T], stderr io.Writer, service string, parts func(T) Parts) (_ *Base[T], cfg T, err error) {
	b := &Base[T]{Level: new(slog.LevelVar)}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	bootLog, err := telemetry.NewLogger(stderr, config.DefaultLog(), b.Level)
	if err != nil {
		return nil, cfg, err
	}
	if b.Reloader, cfg, err = config.NewReloader(src, bootLog); err != nil {
		return nil, cfg, err
	}
	b.OnClose(b.Reloader.Close)
	p := parts(cfg)
	if b.Log, err = telemetry.NewLogger(stderr, p.Log, b.Level); err != nil {
		return nil, cfg, err
	}
	b.Registry = telemetry.NewRegistry()
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, p.Tracing, telemetry.Service{Name: service})
	if err != nil {
		return nil, cfg, err
	}
	b.Tracer = tp
	b.OnClose(func() error { return shutdown(context.Background()) })
	return b, cfg, nil
}

// OnClose registers fn to run at Close, after everything registered later.
func (b *Base[T]) OnClose(fn func() error) { b.closers = append(b.closers, fn) }

// Close runs the registered closers in reverse order, logging failures.
func (b *Base[T]) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		if err := b.closers[i](); err != nil && b.Log != nil {
			b.Log.Warn("close", slog.String("error", err.Error()))
		}
	}
	b.closers = nil
}
