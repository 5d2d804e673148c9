package loadgen

import (
	"context"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// The generator's overhead, measured against the in-process no-op server:
// BenchmarkInvokeDirect is the floor (what a generated stub does, one call
// at a time on one connection); BenchmarkGeneratorOneWorker does the same
// calls through Run; the difference in ns/op and allocs/op is the
// generator's. BenchmarkGeneratorLoopOnly runs the worker loop around a
// Caller that does nothing, which is the generator's cost alone.

func benchTarget(b *testing.B, addr string) Target {
	tg := rlsTarget(addr, 1, "portcullis")
	tg.Conns, tg.Concurrency = 1, 1
	tg.Messages = []proto.Message{ExampleRateLimitFour()}
	return tg
}

func BenchmarkInvokeDirect(b *testing.B) {
	addr := startNoop(b).Addr()
	c, err := Dial(b.Context(), benchTarget(b, addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	conn, req := c.conns[0], ExampleRateLimitFour()
	b.ReportAllocs()
	for b.Loop() {
		resp := new(rlsv3.RateLimitResponse)
		if err := conn.Invoke(b.Context(), rlsv3.RateLimitService_ShouldRateLimit_FullMethodName, req, resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGeneratorOneWorker(b *testing.B) {
	addr := startNoop(b).Addr()
	runGenerator(b, benchTarget(b, addr))
}

func BenchmarkGeneratorLoopOnly(b *testing.B) {
	addr := startNoop(b).Addr()
	tg := benchTarget(b, addr)
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
	tg.NewCaller = func(context.Context, *grpc.ClientConn) (Caller, error) {
		return callerFunc{call: func(context.Context, proto.Message) (proto.Message, error) { return resp, nil }}, nil
	}
	runGenerator(b, tg)
}

// runGenerator makes b.N calls in one run, so setup is outside the timer.
func runGenerator(b *testing.B, tg Target) {
	c, err := Dial(b.Context(), tg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.target.Requests = b.N
	b.ReportAllocs()
	b.ResetTimer()
	res, err := c.Run(b.Context())
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Calls != uint64(b.N) || res.ErrorCount() != 0 {
		b.Fatalf("calls %d, errors %v; want %d and none", res.Calls, res.Errors, b.N)
	}
}
