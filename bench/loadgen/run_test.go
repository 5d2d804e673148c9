package loadgen

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/bench/noop"
)

// testContext bounds a test that talks to a server, so a hang fails it.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startNoop serves bench/noop on a free loopback port for the test.
func startNoop(t testing.TB) *noop.Server {
	t.Helper()
	srv, err := noop.Start(t.Context(), "127.0.0.1:0")
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
	return srv
}

// scriptedRLS answers by domain, so a test can choose each call's outcome
// through the messages it cycles.
type scriptedRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
}

func (scriptedRLS) ShouldRateLimit(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	switch req.GetDomain() {
	case "unavailable":
		return nil, status.Error(codes.Unavailable, "store down")
	case "invalid":
		return nil, status.Error(codes.InvalidArgument, "bad descriptor")
	case "over":
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT}, nil
	default:
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil
	}
}

func startScripted(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	lis, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(gs, scriptedRLS{})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return lis.Addr().String()
}

func rlsTarget(addr string, requests int, domains ...string) Target {
	svc := RateLimitService()
	msgs := make([]proto.Message, len(domains))
	for i, d := range domains {
		r := ExampleRateLimitOne()
		r.Domain = d
		msgs[i] = r
	}
	return Target{
		Name:        "rls",
		Addr:        addr,
		Conns:       2,
		Concurrency: 8,
		Messages:    msgs,
		Requests:    requests,
		NewCaller:   svc.NewCaller,
		Classify:    svc.Classify,
	}
}

func TestRunCountsCallsOutcomesAndErrors(t *testing.T) {
	ctx := testContext(t)
	scripted := startScripted(t)
	plain := startNoop(t).Addr()

	tests := []struct {
		name        string
		target      Target
		wantCalls   uint64
		wantClasses map[string]uint64
		wantErrors  map[codes.Code]uint64
	}{
		{
			name:        "every call against the no-op server is OK",
			target:      rlsTarget(plain, 1000, "portcullis"),
			wantCalls:   1000,
			wantClasses: map[string]uint64{"OK": 1000},
		},
		{
			name:        "cycled messages give outcomes in their proportions",
			target:      rlsTarget(scripted, 2000, "portcullis", "over", "unavailable", "portcullis"),
			wantCalls:   2000,
			wantClasses: map[string]uint64{"OK": 1000, "OVER_LIMIT": 500},
			wantErrors:  map[codes.Code]uint64{codes.Unavailable: 500},
		},
		{
			name:       "errors are counted by their gRPC code",
			target:     rlsTarget(scripted, 1000, "invalid", "unavailable"),
			wantCalls:  1000,
			wantErrors: map[codes.Code]uint64{codes.InvalidArgument: 500, codes.Unavailable: 500},
		},
		{
			name: "a method the server lacks is Unimplemented",
			target: func() Target {
				tg := rlsTarget(plain, 500, "portcullis")
				tg.NewCaller = Unary("/no.Such/Method", func() proto.Message { return new(rlsv3.RateLimitResponse) })
				return tg
			}(),
			wantCalls:  500,
			wantErrors: map[codes.Code]uint64{codes.Unimplemented: 500},
		},
		{
			name: "more workers than calls still makes exactly the calls",
			target: func() Target {
				tg := rlsTarget(plain, 5, "portcullis")
				tg.Concurrency = 32
				return tg
			}(),
			wantCalls:   5,
			wantClasses: map[string]uint64{"OK": 5},
		},
		{
			name: "warm-up calls are not counted",
			target: func() Target {
				tg := rlsTarget(plain, 700, "portcullis")
				tg.Warmup = 300
				return tg
			}(),
			wantCalls:   700,
			wantClasses: map[string]uint64{"OK": 700},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(ctx, tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if res.Calls != tt.wantCalls {
				t.Errorf("Calls = %d, want %d", res.Calls, tt.wantCalls)
			}
			if diff := cmp.Diff(tt.wantClasses, res.Classes); diff != "" {
				t.Errorf("Classes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErrors, res.Errors); diff != "" {
				t.Errorf("Errors (-want +got):\n%s", diff)
			}
			if got := res.Latency.Count(); got != tt.wantCalls {
				t.Errorf("latency histogram holds %d calls, want %d", got, tt.wantCalls)
			}
			if res.Elapsed <= 0 || res.Throughput <= 0 {
				t.Errorf("Elapsed %v, Throughput %v: want both positive", res.Elapsed, res.Throughput)
			}
			if !(res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max && res.P50 > 0) {
				t.Errorf("quantiles out of order or zero: p50 %v p90 %v p99 %v max %v", res.P50, res.P90, res.P99, res.Max)
			}
		})
	}
}

func TestRunSpreadsWorkersOverConnections(t *testing.T) {
	ctx := testContext(t)
	addr := startNoop(t).Addr()
	var (
		mu    sync.Mutex
		conns = map[*grpc.ClientConn]int{}
	)
	tg := rlsTarget(addr, 100, "portcullis")
	tg.Conns, tg.Concurrency = 3, 6
	unary := tg.NewCaller
	tg.NewCaller = func(ctx context.Context, conn *grpc.ClientConn) (Caller, error) {
		mu.Lock()
		conns[conn]++
		mu.Unlock()
		return unary(ctx, conn)
	}
	if _, err := Run(ctx, tg); err != nil {
		t.Fatal(err)
	}
	if len(conns) != 3 {
		t.Fatalf("workers used %d connections, want 3", len(conns))
	}
	for _, n := range conns {
		if n != 2 {
			t.Errorf("connection carries %d workers, want 2 each: %v", n, conns)
		}
	}
}

func TestClientStreamSendsEveryMessageOnOneStreamPerWorker(t *testing.T) {
	ctx := testContext(t)
	srv := startNoop(t)
	svc := AccessLogService()
	tg := Target{
		Name:        "als",
		Addr:        srv.Addr(),
		Concurrency: 4,
		Messages:    []proto.Message{svc.NewRequest()},
		Requests:    2000,
		NewCaller:   svc.NewCaller,
	}
	res, err := Run(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 2000 || res.ErrorCount() != 0 {
		t.Errorf("Calls %d, errors %v; want 2000 and none", res.Calls, res.Errors)
	}
	// Close waited for each stream's response, so the server has read all.
	if got := srv.AccessLog().Received(); got != 2000 {
		t.Errorf("server received %d messages, want 2000", got)
	}
}

func TestDialFailsWithinItsTimeoutWhenNothingListens(t *testing.T) {
	ctx := testContext(t)
	// A port nothing listens on: one a server just released.
	dead := startNoop(t)
	deadAddr := dead.Addr()
	if err := dead.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	tg := rlsTarget(deadAddr, 10, "portcullis")
	tg.DialTimeout = 300 * time.Millisecond
	_, err := Run(ctx, tg)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("Run against a closed port: err = %v, want a dial error wrapping DeadlineExceeded", err)
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	ctx := testContext(t)
	addr := startNoop(t).Addr()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := errors.New("operator stopped the run")

	tg := rlsTarget(addr, 1_000_000_000, "portcullis")
	tg.Concurrency = 1 // one worker, so the call count below needs no lock
	unary := tg.NewCaller
	calls := 0
	tg.NewCaller = func(ctx context.Context, conn *grpc.ClientConn) (Caller, error) {
		inner, err := unary(ctx, conn)
		return callerFunc{call: func(ctx context.Context, req proto.Message) (proto.Message, error) {
			if calls++; calls == 100 {
				cancel(stop)
			}
			return inner.Call(ctx, req)
		}}, err
	}
	res, err := Run(runCtx, tg)
	if !errors.Is(err, stop) {
		t.Fatalf("Run after cancel: err = %v, want the cancel cause", err)
	}
	if res.Calls != 100 {
		t.Errorf("Calls = %d, want the run to stop right after call 100", res.Calls)
	}
	if res.Errors[codes.Canceled] != 1 {
		t.Errorf("Errors = %v, want the one call made after the cancel counted as Canceled", res.Errors)
	}
}

func TestTargetValidationNamesEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		want   []string
	}{
		{"a complete target is valid", rlsTarget("127.0.0.1:1", 1, "d"), nil},
		{"an empty target lists all that is missing", Target{Name: "x"}, []string{"addr is empty", "no messages", "requests 0", "no caller"}},
		{"negative counts are refused", func() Target {
			tg := rlsTarget("127.0.0.1:1", 1, "d")
			tg.Warmup, tg.Conns, tg.Concurrency = -1, -1, -1
			return tg
		}(), []string{"warmup -1", "conns -1", "concurrency -1"}},
		{"a nil message is refused", func() Target {
			tg := rlsTarget("127.0.0.1:1", 1, "d")
			tg.Messages = append(tg.Messages, nil)
			return tg
		}(), []string{"message 1 is nil"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestWorkersAllocateNothingPerCall checks the generator's own overhead:
// with a Caller that does not touch the network, a run of many calls
// allocates no more than a run of few.
func TestWorkersAllocateNothingPerCall(t *testing.T) {
	ctx := testContext(t)
	addr := startNoop(t).Addr()
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
	tg := rlsTarget(addr, 1, "portcullis")
	tg.NewCaller = func(context.Context, *grpc.ClientConn) (Caller, error) {
		return callerFunc{call: func(context.Context, proto.Message) (proto.Message, error) { return resp, nil }}, nil
	}
	c, err := Dial(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	allocs := func(n int) float64 {
		c.target.Requests = n
		return testing.AllocsPerRun(5, func() {
			if _, err := c.Run(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(100), allocs(100_000)
	if many-few > 8 {
		t.Errorf("a run of 100 calls allocates %.0f times, of 100000 calls %.0f: the per-call path allocates", few, many)
	}
}

type callerFunc struct {
	call func(ctx context.Context, req proto.Message) (proto.Message, error)
}

func (f callerFunc) Call(ctx context.Context, req proto.Message) (proto.Message, error) {
	return f.call(ctx, req)
}

func (callerFunc) Close() error { return nil }
