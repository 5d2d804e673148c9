package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-dev/portcullis/bench/noop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, when not nil, receives the addresses
// listened on (ports chosen) once every server is up.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addrs []string)) error {
	fs := flag.NewFlagSet("noop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrList := fs.String("addr", "127.0.0.1:18081", "comma-separated `HOST:PORT`s to serve on, one server each (port 0 picks a free port)")
	grace := fs.Duration("shutdown-timeout", 5*time.Second, "how long in-flight calls may finish after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *grace < 0 {
		return fmt.Errorf("-shutdown-timeout %s: must not be negative", *grace)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	var (
		servers []*noop.Server
		addrs   []string
	)
	stopAll := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *grace)
		defer cancel()
		var errs []error
		for _, s := range servers {
			errs = append(errs, s.Stop(sctx))
		}
		return errors.Join(errs...)
	}
	for _, addr := range strings.Split(*addrList, ",") {
		addr = strings.TrimSpace(addr)
		if addr == "" {
			continue
		}
		srv, err := noop.Start(ctx, addr)
		if err != nil {
			return errors.Join(err, stopAll())
		}
		servers = append(servers, srv)
		addrs = append(addrs, srv.Addr())
	}
	if len(servers) == 0 {
		return errors.New("-addr: no address given")
	}
	logger.Info("serving no-op rate-limit, ext_authz and access-log services", "addrs", addrs)
	if ready != nil {
		ready(addrs)
	}
	<-ctx.Done()
	logger.Info("stopping", "grace", grace.String())
	return stopAll()
}
