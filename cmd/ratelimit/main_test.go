package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-dev/portcullis/internal/poll"
	"github.com/portcullis-dev/portcullis/internal/redistest"
)

const edgeRules = `domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3}
`

const goldPolicy = `apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits:
    - {requests: %d, per: 1h}
`

// syncBuffer collects the binary's logs for assertions while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a ratelimit started through the real wiring on ":0" ports.
type running struct {
	app    *app
	logs   *syncBuffer
	client rlsv3.RateLimitServiceClient
	conn   *grpc.ClientConn
}

func env(extra map[string]string) func(string) (string, bool) {
	m := map[string]string{"PORTCULLIS_DRAIN_DELAY": "0s", "PORTCULLIS_SHUTDOWN_GRACE": "2s"}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func start(t *testing.T, lookup func(string) (string, bool), args ...string) *running {
	t.Helper()
	logs := &syncBuffer{}
	args = append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, args, lookup, logs)
	if err != nil {
		cancel()
		t.Fatalf("newApp: %v\nlogs:\n%s", err, logs)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	conn, err := grpc.NewClient(a.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return after cancel")
		}
	})
	r := &running{app: a, logs: logs, client: rlsv3.NewRateLimitServiceClient(conn), conn: conn}
	poll.Until(t, 5*time.Second, "health SERVING", func() bool {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{
			Service: rlsv3.RateLimitService_ServiceDesc.ServiceName})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	return r
}

func (r *running) ask(t *testing.T, domain string, kv ...string) rlsv3.RateLimitResponse_Code {
	t.Helper()
	resp, err := r.client.ShouldRateLimit(context.Background(), request(domain, kv...))
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp.GetOverallCode()
}

func request(domain string, kv ...string) *rlsv3.RateLimitRequest {
	d := &rlcommonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return &rlsv3.RateLimitRequest{Domain: domain, Descriptors: []*rlcommonv3.RateLimitDescriptor{d}}
}

func subscription(counter string) []string {
	return []string{"policy_scope", "subscription", "counter", counter, "policy", "gold"}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write beside and rename, as editors and ConfigMap updates do, so the
	// watcher never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func fixtureDirs(t *testing.T, goldLimit int) (rules, catalog string) {
	dir := t.TempDir()
	rules, catalog = filepath.Join(dir, "rules"), filepath.Join(dir, "catalog")
	writeFile(t, filepath.Join(rules, "edge.yaml"), edgeRules)
	writeFile(t, filepath.Join(catalog, "policies.yaml"), fmt.Sprintf(goldPolicy, goldLimit))
	return rules, catalog
}

func TestServesRuleFilesAndPoliciesOverGRPCWithMetrics(t *testing.T) {
	rules, cat := fixtureDirs(t, 2)
	r := start(t, env(nil), "-rules", rules, "-catalog", cat)
	for i := 0; i < 3; i++ {
		if c := r.ask(t, "edge", "remote_address", "10.1.1.1"); c != rlsv3.RateLimitResponse_OK {
			t.Fatalf("edge call %d: %v", i+1, c)
		}
	}
	if c := r.ask(t, "edge", "remote_address", "10.1.1.1"); c != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("edge 4th call: %v", c)
	}
	for i, want := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		if c := r.ask(t, "portcullis", subscription("app:petstore:v1")...); c != want {
			t.Fatalf("policy call %d: %v, want %v", i+1, c, want)
		}
	}
	resp, err := http.Get("http://" + r.app.srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`portcullis_ratelimit_over_limit_total{domain="edge",rule="edge.remote_address"} 1`,
		`portcullis_ratelimit_over_limit_total{domain="portcullis",rule="gold"} 1`,
		`portcullis_catalog_loads_total{result="success"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), "10.1.1.1") || strings.Contains(string(body), "app:petstore") {
		t.Errorf("/metrics carries a counter value")
	}
}

func TestAReloadThatFailsKeepsTheRulesInForce(t *testing.T) {
	rules, cat := fixtureDirs(t, 1000)
	r := start(t, env(nil), "-rules", rules, "-catalog", cat)
	writeFile(t, filepath.Join(rules, "edge.yaml"), edgeRules+"    bogus: true\n")
	poll.Until(t, 10*time.Second, "the failed reload to be logged", func() bool {
		return strings.Contains(r.logs.String(), "rules reload failed")
	})
	if !strings.Contains(r.logs.String(), "edge.yaml:5") {
		t.Errorf("reload error does not name file and line:\n%s", r.logs)
	}
	for i := 0; i < 3; i++ {
		r.ask(t, "edge", "remote_address", "10.2.2.2")
	}
	if c := r.ask(t, "edge", "remote_address", "10.2.2.2"); c != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("old rules not in force after a failed reload: %v", c)
	}
	// A broken catalog keeps the old policies too; a good one replaces them.
	writeFile(t, filepath.Join(cat, "policies.yaml"), "kind: Policy\nnonsense: [\n")
	poll.Until(t, 10*time.Second, "the failed catalog reload", func() bool {
		return strings.Contains(r.logs.String(), "catalog load failed")
	})
	if !strings.Contains(r.logs.String(), "policies.yaml") {
		t.Errorf("catalog reload error does not name the file:\n%s", r.logs)
	}
	if c := r.ask(t, "portcullis", subscription("a:b:v1")...); c != rlsv3.RateLimitResponse_OK {
		t.Fatalf("policy after failed catalog reload: %v", c)
	}
	writeFile(t, filepath.Join(cat, "policies.yaml"), fmt.Sprintf(goldPolicy, 1))
	poll.Until(t, 10*time.Second, "the new policy limit", func() bool {
		return r.ask(t, "portcullis", subscription("fresh:b:v1")...) == rlsv3.RateLimitResponse_OVER_LIMIT
	})
}

func TestBadInputAtStartupNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ratelimit.yaml")
	writeFile(t, cfg, "limiter:\n  timeout: 10ms\n  failureMode: sometimes\n")
	badRules := filepath.Join(dir, "rules")
	writeFile(t, filepath.Join(badRules, "x.yaml"), "domain: x\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")
	unknownField := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknownField, "server:\n  grpcAddr: \":1\"\n  colour: blue\n")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"invalid config value": {[]string{"-config", cfg}, "failureMode"},
		"unknown config field": {[]string{"-config", unknownField}, "unknown.yaml:3"},
		"bad rule file":        {[]string{"-rules", badRules}, "x.yaml:4"},
		"bad redis url":        {[]string{"-redis", "mysql://x"}, "scheme"},
		"stray argument":       {[]string{"extra"}, "unexpected arguments"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, tc.args...)
			_, err := newApp(context.Background(), args, env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Accuracy across replicas: 64 callers split over two ratelimit processes'
// wiring sharing one real Redis admit exactly the plan's limit.
func TestTwoReplicasOnOneRedisAdmitExactlyTheLimit(t *testing.T) {
	const limit = 100
	rdb := redistest.Start(t)
	rules, cat := fixtureDirs(t, limit)
	url := "redis://" + rdb.Addr()
	// A request whose store step misses its deadline is answered in the
	// failure mode; fail open would count it as admitted. This test is
	// about counting, so a deadline miss must show as an error instead.
	strict := env(map[string]string{"PORTCULLIS_LIMITER_TIMEOUT": "5s", "PORTCULLIS_LIMITER_FAILURE_MODE": "unavailable"})
	a := start(t, strict, "-rules", rules, "-catalog", cat, "-redis", url)
	b := start(t, strict, "-rules", rules, "-catalog", cat, "-redis", url)
	var ok, over atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(r *running) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				resp, err := r.client.ShouldRateLimit(context.Background(), request("portcullis", subscription("shared:api:v1")...))
				switch {
				case err != nil:
					t.Error(err)
				case resp.GetOverallCode() == rlsv3.RateLimitResponse_OK:
					ok.Add(1)
				default:
					over.Add(1)
				}
			}
		}([]*running{a, b}[i%2])
	}
	wg.Wait()
	if ok.Load() != limit || over.Load() != 320-limit {
		t.Fatalf("admitted %d and denied %d of 320, want exactly %d admitted", ok.Load(), over.Load(), limit)
	}
}

// Redis is killed under load: every call answers within its deadline in the
// configured mode, and limiting resumes within 2 s of Redis returning.
func TestRedisKilledMidLoadAnswersInModeAndRecovers(t *testing.T) {
	rdb := redistest.Start(t)
	rules, cat := fixtureDirs(t, 5)
	for _, mode := range []string{"open", "closed", "unavailable"} {
		t.Run(mode, func(t *testing.T) {
			r := start(t, env(map[string]string{"PORTCULLIS_LIMITER_FAILURE_MODE": mode, "PORTCULLIS_LIMITER_TIMEOUT": "20ms",
				"PORTCULLIS_REDIS_LOCAL_CACHE": "false"}),
				"-rules", rules, "-catalog", cat, "-redis", "redis://"+rdb.Addr())
			counter := "kill-" + mode + ":api:v1"
			if c := r.ask(t, "portcullis", subscription(counter)...); c != rlsv3.RateLimitResponse_OK {
				t.Fatalf("before kill: %v", c)
			}
			rdb.Kill()
			var slowest time.Duration
			for i := 0; i < 50; i++ {
				// The client gives up well before a hung store would answer,
				// so an answer at all shows the server kept its deadline.
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				began := time.Now()
				resp, err := r.client.ShouldRateLimit(ctx, request("portcullis", subscription(counter)...))
				slowest = max(slowest, time.Since(began))
				cancel()
				if strings.Contains(fmt.Sprint(err), "DeadlineExceeded") {
					t.Fatalf("call %d got no answer within 500ms while Redis was down", i)
				}
				switch mode {
				case "open":
					if err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || resp.GetDynamicMetadata().AsMap()["failure_mode"] != "open" {
						t.Fatalf("fail-open answer: %v %v", resp, err)
					}
				case "closed":
					if err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
						t.Fatalf("fail-closed answer: %v %v", resp, err)
					}
				case "unavailable":
					if err == nil || !strings.Contains(err.Error(), "Unavailable") {
						t.Fatalf("want UNAVAILABLE, got %v %v", resp, err)
					}
				}
			}
			t.Logf("%s: slowest answer while Redis was down: %v (store deadline 20ms)", mode, slowest)
			rdb.Restart()
			back := time.Now()
			fresh := "after-" + mode + ":api:v1"
			poll.Until(t, 2*time.Second, "limiting to resume", func() bool {
				resp, err := r.client.ShouldRateLimit(context.Background(), request("portcullis", subscription(fresh)...))
				return err == nil && resp.GetOverallCode() == rlsv3.RateLimitResponse_OK && resp.GetDynamicMetadata() == nil
			})
			for i := 0; i < 4; i++ {
				r.ask(t, "portcullis", subscription(fresh)...)
			}
			if c := r.ask(t, "portcullis", subscription(fresh)...); c != rlsv3.RateLimitResponse_OVER_LIMIT {
				t.Fatalf("limit of 5 not enforced after recovery: %v", c)
			}
			t.Logf("%s: limiting resumed %v after restart", mode, time.Since(back))
		})
	}
}
