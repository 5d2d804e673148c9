package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// config is the command line, parsed.
type config struct {
	addr, baseline, service, requests, name string
	concurrency, requestCount, warmup       int
	conns, rounds                           int
	timeout, dialTimeout                    time.Duration
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:18081", "`HOST:PORT` of the server under test")
	fs.StringVar(&c.name, "name", "", "label of the server under test in the table (default: -addr)")
	fs.StringVar(&c.baseline, "baseline", "", "`HOST:PORT` of a baseline (such as bench/cmd/noop) to run in alternation with -addr and compare against")
	fs.StringVar(&c.service, "service", "rls", "the API to call: rls (ShouldRateLimit), authz (Check) or als (StreamAccessLogs)")
	fs.StringVar(&c.requests, "requests", "", "YAML or JSON `FILE` of request messages in protojson, cycled (default: the service's example request)")
	fs.IntVar(&c.concurrency, "c", loadgen.DefaultConcurrency, "concurrent callers")
	fs.IntVar(&c.requestCount, "n", 20000, "calls per round and target")
	fs.IntVar(&c.warmup, "warmup", 2000, "calls per target before the first round, not measured")
	fs.IntVar(&c.conns, "conns", loadgen.DefaultConns, "client connections per target")
	fs.IntVar(&c.rounds, "rounds", 1, "rounds; with -baseline, 5 or more make the ratio trustworthy on a shared machine")
	fs.DurationVar(&c.timeout, "timeout", 0, "deadline of each call (0: none)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", loadgen.DefaultDialTimeout, "how long to wait for the connections")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.name == "" {
		c.name = c.addr
	}
	return c, nil
}

// run loads the target (and the baseline) and prints the table on stdout.
// It fails when a target could not be run, or when every call to one
// failed, so that a script does not take a table of errors for a result.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	svc, err := loadgen.ServiceByName(cfg.service)
	if err != nil {
		return fmt.Errorf("-service: %w", err)
	}
	msgs, err := messages(cfg.requests, svc)
	if err != nil {
		return err
	}
	target := func(name, addr string) loadgen.Target {
		return loadgen.Target{
			Name:        name,
			Addr:        addr,
			Conns:       cfg.conns,
			Concurrency: cfg.concurrency,
			Messages:    msgs,
			Requests:    cfg.requestCount,
			Warmup:      cfg.warmup,
			NewCaller:   svc.NewCaller,
			Classify:    svc.Classify,
			Timeout:     cfg.timeout,
			DialTimeout: cfg.dialTimeout,
		}
	}
	var targets []loadgen.Target
	if cfg.baseline != "" {
		targets = append(targets, target("baseline "+cfg.baseline, cfg.baseline))
	}
	targets = append(targets, target(cfg.name, cfg.addr))

	rep, runErr := loadgen.Interleave(ctx, cfg.rounds, targets...)
	if len(rep.Targets) > 0 && rep.Rounds > 0 {
		if err := loadgen.WriteTable(stdout, rep); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if runErr != nil {
		return runErr
	}
	for _, t := range rep.Targets {
		if m := t.Merged; m.Calls > 0 && m.ErrorCount() == m.Calls {
			return fmt.Errorf("every call to %s failed", t.Name)
		}
	}
	return nil
}

// messages reads the request file, or builds the service's example.
func messages(file string, svc loadgen.Service) ([]proto.Message, error) {
	if file == "" {
		switch svc.Name {
		case "rls":
			return []proto.Message{loadgen.ExampleRateLimitOne()}, nil
		case "authz":
			return []proto.Message{loadgen.ExampleCheck()}, nil
		default:
			return nil, fmt.Errorf("-requests: service %s has no example request; give a file", svc.Name)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-requests: %w", err)
	}
	msgs, err := loadgen.ParseRequests(data, svc.NewRequest)
	if err != nil {
		return nil, fmt.Errorf("-requests %s: %w", file, err)
	}
	return msgs, nil
}
