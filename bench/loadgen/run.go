package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// numCodes is one past the largest gRPC code; a status carrying a code
// outside [0, numCodes) is counted as Unknown.
const numCodes = int(codes.Unauthenticated) + 1

// Result is what one run of a target measured.
//
// Every completed call counts in Calls, Throughput and the latency
// figures, failed ones included, as ghz counts them, so results compare
// with ghz's; a run with Errors is not a fair comparison with one without,
// and reports show the errors beside the numbers for that reason.
type Result struct {
	// Calls is the number of calls made, warm-up excluded.
	Calls uint64
	// Errors counts failed calls by gRPC code (never codes.OK).
	Errors map[codes.Code]uint64
	// Classes counts successful calls by their Classifier name; empty
	// without a Classifier.
	Classes map[string]uint64
	// Elapsed is wall time from the first call's start to the last's end.
	Elapsed time.Duration
	// Throughput is Calls per second of Elapsed.
	Throughput float64
	// P50, P90, P99 and Max summarise Latency.
	P50, P90, P99, Max time.Duration
	// Latency holds every call's latency, for other quantiles.
	Latency *Histogram
}

// ErrorCount is the number of failed calls.
func (r Result) ErrorCount() uint64 {
	var n uint64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// merge adds o's calls to r; Elapsed adds up, so the merged Throughput is
// the mean rate over all the time spent running.
func (r *Result) merge(o Result) {
	r.Calls += o.Calls
	r.Elapsed += o.Elapsed
	if r.Latency == nil {
		r.Latency = new(Histogram)
	}
	if o.Latency != nil {
		r.Latency.Merge(o.Latency)
	}
	for c, n := range o.Errors {
		if r.Errors == nil {
			r.Errors = make(map[codes.Code]uint64)
		}
		r.Errors[c] += n
	}
	for k, n := range o.Classes {
		if r.Classes == nil {
			r.Classes = make(map[string]uint64)
		}
		r.Classes[k] += n
	}
	r.summarise()
}

// summarise fills the derived fields from Calls, Elapsed and Latency.
func (r *Result) summarise() {
	r.Throughput = 0
	if r.Elapsed > 0 {
		r.Throughput = float64(r.Calls) / r.Elapsed.Seconds()
	}
	if r.Latency != nil {
		r.P50 = r.Latency.Quantile(0.50)
		r.P90 = r.Latency.Quantile(0.90)
		r.P99 = r.Latency.Quantile(0.99)
		r.Max = r.Latency.Max()
	}
}

// Client is a target with its connections open, so that a benchmark can
// run it many times (Interleave's rounds) without redialling. Its methods
// must not be called concurrently.
type Client struct {
	target  Target
	conns   []*grpc.ClientConn
	workers []*worker
	warm    bool
}

// worker is one caller's private tally, reused across runs.
type worker struct {
	hist    Histogram
	calls   uint64
	errors  [numCodes]uint64
	classes map[string]uint64
}

func (w *worker) reset() {
	w.hist.Reset()
	w.calls = 0
	w.errors = [numCodes]uint64{}
	clear(w.classes)
}

// Dial validates t, opens its connections and waits until every one is
// ready, so that connection setup is never part of a measured run.
func Dial(ctx context.Context, t Target) (*Client, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, defaultIfZero(t.DialTimeout, DefaultDialTimeout))
	defer cancel()
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, t.DialOptions...)
	c := &Client{target: t}
	for i := range t.conns() {
		conn, err := grpc.NewClient(t.Addr, opts...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("dial %s (%s): %w", t.Name, t.Addr, err)
		}
		c.conns = append(c.conns, conn)
		if err := waitReady(ctx, conn); err != nil {
			c.Close()
			return nil, fmt.Errorf("dial %s (%s): connection %d: %w", t.Name, t.Addr, i, err)
		}
	}
	c.workers = make([]*worker, t.concurrency())
	for i := range c.workers {
		c.workers[i] = &worker{classes: make(map[string]uint64)}
	}
	return c, nil
}

func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return errors.New("connection shut down")
		case connectivity.Idle:
			conn.Connect()
		}
		if !conn.WaitForStateChange(ctx, s) {
			return fmt.Errorf("not ready, last state %s: %w", s, ctx.Err())
		}
	}
}

// Close closes the connections.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	c.conns = nil
	return errors.Join(errs...)
}

// Target is the target c was dialled for.
func (c *Client) Target() Target { return c.target }

// Warmup makes the target's warm-up calls, once: later calls do nothing.
func (c *Client) Warmup(ctx context.Context) error {
	if c.warm || c.target.Warmup == 0 {
		c.warm = true
		return nil
	}
	c.warm = true
	if _, err := c.run(ctx, c.target.Warmup); err != nil {
		return fmt.Errorf("warm up %s: %w", c.target.Name, err)
	}
	return nil
}

// Run makes the target's Requests calls and measures them, warming up
// first if Warmup has not run. A failed call is a result, not an error;
// the error is for a run that could not finish (ctx ended, a Caller could
// not be made), and comes with what was measured until then.
func (c *Client) Run(ctx context.Context) (Result, error) {
	if err := c.Warmup(ctx); err != nil {
		return Result{}, err
	}
	res, err := c.run(ctx, c.target.Requests)
	if err != nil {
		return res, fmt.Errorf("run %s: %w", c.target.Name, err)
	}
	return res, nil
}

// Run dials t, runs it once (after its warm-up) and closes it.
func Run(ctx context.Context, t Target) (Result, error) {
	c, err := Dial(ctx, t)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	return c.Run(ctx)
}

// run makes n calls spread over the workers and merges their tallies.
func (c *Client) run(ctx context.Context, n int) (Result, error) {
	if len(c.conns) == 0 {
		return Result{}, errors.New("client is closed")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	callers := make([]Caller, len(c.workers))
	var errs []error
	for i := range callers {
		caller, err := c.target.NewCaller(ctx, c.conns[i%len(c.conns)])
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
			break
		}
		callers[i] = caller
	}
	if len(errs) > 0 {
		for _, caller := range callers {
			if caller != nil {
				errs = append(errs, caller.Close())
			}
		}
		return Result{}, errors.Join(errs...)
	}

	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		total = int64(n)
	)
	start := time.Now()
	for i, w := range c.workers {
		w.reset()
		wg.Go(func() { w.loop(ctx, callers[i], &c.target, &next, total) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	for i, caller := range callers {
		if err := caller.Close(); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
		}
	}
	res := c.collect(elapsed)
	if err := ctx.Err(); err != nil {
		// Only the caller's context can end the run early; its cause is
		// what the caller wants to see.
		errs = append(errs, context.Cause(ctx))
	}
	return res, errors.Join(errs...)
}

// loop is a worker: it claims call numbers until n are claimed or ctx
// ends. It allocates nothing itself, so the run's allocations are gRPC's.
func (w *worker) loop(ctx context.Context, caller Caller, t *Target, next *atomic.Int64, n int64) {
	done := ctx.Done()
	msgs := t.Messages
	for {
		i := next.Add(1) - 1
		if i >= n {
			return
		}
		select {
		case <-done:
			return
		default:
		}
		req := msgs[i%int64(len(msgs))]
		callCtx, cancel := ctx, context.CancelFunc(nil)
		if t.Timeout > 0 {
			callCtx, cancel = context.WithTimeout(ctx, t.Timeout)
		}
		began := time.Now()
		resp, err := caller.Call(callCtx, req)
		w.hist.Record(time.Since(began))
		if cancel != nil {
			cancel()
		}
		w.calls++
		switch {
		case err != nil:
			code := status.Code(err)
			if int(code) >= numCodes || code == codes.OK {
				code = codes.Unknown
			}
			w.errors[code]++
		case t.Classify != nil:
			w.classes[t.Classify(resp)]++
		}
	}
}

// collect merges the workers' tallies into a Result.
func (c *Client) collect(elapsed time.Duration) Result {
	res := Result{Elapsed: elapsed, Latency: new(Histogram)}
	for _, w := range c.workers {
		res.Calls += w.calls
		res.Latency.Merge(&w.hist)
		for code, n := range w.errors {
			if n == 0 {
				continue
			}
			if res.Errors == nil {
				res.Errors = make(map[codes.Code]uint64)
			}
			res.Errors[codes.Code(code)] += n
		}
		for k, n := range w.classes {
			if res.Classes == nil {
				res.Classes = make(map[string]uint64)
			}
			res.Classes[k] += n
		}
	}
	res.summarise()
	return res
}
