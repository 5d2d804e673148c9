package suite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
	"github.com/portcullis-dev/portcullis/internal/redistest"
)

// benchCatalog has one policy per scope, with limits no run reaches, so the
// suite measures the allowed path: the one every request takes.
const benchCatalog = `apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits: [{requests: 1000000000, per: 1h, algorithm: sliding-window}]
  burst: {requests: 1000000000, per: 1s}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: app-plan}
spec:
  scope: application
  limits: [{requests: 1000000000, per: 1h, algorithm: token-bucket}]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: api-plan}
spec:
  scope: api
  limits: [{requests: 1000000000, per: 1m}]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: res-plan}
spec:
  scope: resource
  limits: [{requests: 1000000000, per: 1m}]
`

// requests builds n requests over distinct applications, with one
// descriptor (the subscription) or four (every scope), as Envoy would send
// them for DESIGN's contract.
func requests(n, descriptors int) []proto.Message {
	out := make([]proto.Message, n)
	for i := range out {
		app := fmt.Sprintf("app-%d", i)
		req := loadgen.RateLimitRequest("portcullis", loadgen.Descriptor("subscription", app+":petstore:v1", "gold", ""))
		if descriptors == 4 {
			req.Descriptors = append(req.Descriptors,
				loadgen.Descriptor("application", app+":user-1", "app-plan", ""),
				loadgen.Descriptor("api", "petstore:v1", "api-plan", "default"),
				loadgen.Descriptor("resource", "petstore:v1:GET /pets", "res-plan", "default"))
		}
		out[i] = req
	}
	return out
}

// BenchmarkRateLimitSuite compares ratelimit on the memory store and on a
// real Redis (1 and 4 descriptors) with a no-op RLS server, interleaved
// round by round, and reports Redis's own count of EVALSHA calls and our
// pipelines per request. Run it with `make bench`; -benchtime 1x is enough,
// each run does ROUNDS rounds of REQUESTS calls per target.
func BenchmarkRateLimitSuite(b *testing.B) {
	rounds := envInt("BENCH_ROUNDS", 5)
	perRound := envInt("BENCH_REQUESTS", 20000)
	concurrency := envInt("BENCH_CONCURRENCY", 64)

	bins := buildBinaries(b, "./cmd/ratelimit", "./bench/cmd/noop")
	rdb := redistest.Start(b)
	catDir := b.TempDir()
	if err := os.WriteFile(filepath.Join(catDir, "catalog.yaml"), []byte(benchCatalog), 0o644); err != nil {
		b.Fatal(err)
	}
	noopAddr := addr(b)
	startProcess(b, filepath.Join(bins, "noop"), noopAddr, nil, "-addr", noopAddr)
	env := []string{"PORTCULLIS_DRAIN_DELAY=0s", "PORTCULLIS_LOG_LEVEL=warn"}
	memAddr, memHTTP := addr(b), addr(b)
	startProcess(b, filepath.Join(bins, "ratelimit"), memAddr, env,
		"-grpc-addr", memAddr, "-http-addr", memHTTP, "-catalog", catDir)
	redisAddr, redisHTTP := addr(b), addr(b)
	startProcess(b, filepath.Join(bins, "ratelimit"), redisAddr, append(env, "PORTCULLIS_LIMITER_TIMEOUT=100ms"),
		"-grpc-addr", redisAddr, "-http-addr", redisHTTP, "-catalog", catDir, "-redis", "redis://"+rdb.Addr())

	one, four := requests(1024, 1), requests(1024, 4)
	target := func(name, addr string, msgs []proto.Message) loadgen.Target {
		return loadgen.Target{
			Name: name, Addr: addr, Messages: msgs, Requests: perRound, Warmup: 2000,
			Concurrency: concurrency, NewCaller: loadgen.RateLimitService().NewCaller,
			Classify: loadgen.ClassifyRateLimit,
		}
	}
	ctx := context.Background()
	client := rdb.Client(b)
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	rep1, err := loadgen.Interleave(ctx, rounds,
		target("no-op, 1 descriptor", noopAddr, one),
		target("memory store, 1 descriptor", memAddr, one),
		target("redis, 1 descriptor", redisAddr, one))
	if err != nil {
		b.Fatal(err)
	}
	stats1 := redisWork(b, client.Info(ctx, "commandstats").Val(), scrape(b, redisHTTP))
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	base4 := scrape(b, redisHTTP)
	rep4, err := loadgen.Interleave(ctx, rounds,
		target("no-op, 4 descriptors", noopAddr, four),
		target("redis, 4 descriptors", redisAddr, four))
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	stats4 := redisWork(b, client.Info(ctx, "commandstats").Val(), subtract(scrape(b, redisHTTP), base4))

	var out strings.Builder
	fmt.Fprintf(&out, "\nratelimit suite: %d rounds x %d calls per target, %d concurrent callers, interleaved\n", rounds, perRound, concurrency)
	_ = loadgen.WriteTable(&out, rep1)
	fmt.Fprintf(&out, "  redis, 1 descriptor: %s\n", stats1)
	_ = loadgen.WriteTable(&out, rep4)
	fmt.Fprintf(&out, "  redis, 4 descriptors: %s\n", stats4)
	fmt.Fprintf(&out, "floors: memory >= 0.85x, redis 1 descriptor >= 0.70x, redis 4 descriptors >= 0.60x (ratio to the no-op of the same run)\n")
	fmt.Fprint(os.Stdout, out.String())

	b.ReportMetric(rep1.Targets[1].PairedRatio, "mem/noop")
	b.ReportMetric(rep1.Targets[2].PairedRatio, "redis1/noop")
	b.ReportMetric(rep4.Targets[1].PairedRatio, "redis4/noop")
	for _, rep := range []loadgen.Report{rep1, rep4} {
		for _, t := range rep.Targets {
			if n := t.Merged.ErrorCount(); n > 0 {
				b.Errorf("%s: %d calls failed: %v", t.Name, n, t.Merged.Errors)
			}
			if over := t.Merged.Classes[rlsv3.RateLimitResponse_OVER_LIMIT.String()]; over > 0 {
				b.Errorf("%s: %d calls over limit; the suite measures the allowed path", t.Name, over)
			}
		}
	}
}

// storeCounters are what ratelimit's /metrics says about its Redis work.
type storeCounters struct{ requests, pipelines float64 }

func subtract(a, b storeCounters) storeCounters {
	return storeCounters{a.requests - b.requests, a.pipelines - b.pipelines}
}

var (
	batchSum   = regexp.MustCompile(`(?m)^portcullis_redisstore_batch_size_sum (\S+)$`)
	batchCount = regexp.MustCompile(`(?m)^portcullis_redisstore_batch_size_count (\S+)$`)
	evalsha    = regexp.MustCompile(`cmdstat_evalsha:calls=(\d+),.*rejected_calls=(\d+),failed_calls=(\d+)`)
)

func scrape(tb testing.TB, httpAddr string) storeCounters {
	tb.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	num := func(re *regexp.Regexp) float64 {
		m := re.FindSubmatch(body)
		if m == nil {
			tb.Fatalf("metric %s not found in /metrics", re)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	return storeCounters{requests: num(batchSum), pipelines: num(batchCount)}
}

// redisWork reports EVALSHA per request from Redis's INFO commandstats, and
// round trips (pipelines) per request from the store's batch histogram.
func redisWork(tb testing.TB, info string, c storeCounters) string {
	tb.Helper()
	m := evalsha.FindStringSubmatch(info)
	if m == nil || c.requests == 0 {
		tb.Fatalf("no evalsha in INFO commandstats or no requests counted:\n%s", info)
	}
	// A call that fails with NOSCRIPT (each connection's first, before the
	// store loads the script) is retried; count the calls that ran.
	calls, _ := strconv.ParseFloat(m[1], 64)
	rejected, _ := strconv.ParseFloat(m[2], 64)
	failed, _ := strconv.ParseFloat(m[3], 64)
	calls -= rejected + failed
	perReq := calls / c.requests
	rtt := c.pipelines / c.requests
	if perReq > 1.0001 {
		tb.Errorf("%.3f EVALSHA per request, want at most 1", perReq)
	}
	if rtt >= 1 {
		tb.Errorf("%.3f round trips per request, want fewer than 1 under concurrent load", rtt)
	}
	return fmt.Sprintf("INFO commandstats evalsha calls=%.0f for %.0f requests (%.3f per request); %.0f pipelines (%.3f round trips per request, mean batch %.1f)",
		calls, c.requests, perReq, c.pipelines, rtt, c.requests/c.pipelines)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
