package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// base is a fixed instant a minute into an hour, so that hour-long windows
// used by the tests never roll over while they run.
var base = time.Date(2026, 3, 14, 15, 1, 0, 0, time.UTC)

func newStore(t testing.TB, client redis.UniversalClient, opts Options) *Store {
	t.Helper()
	s := New(client, opts)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// model is the reference: quota.Step over a map that never expires keys.
// Redis expires a key only after the request time has passed its ExpireAt
// (the tests' clock runs at least as fast as the wall clock), and by then
// the key's value no longer affects any answer, so the two must agree.
type model map[string]int64

func (m model) apply(now time.Time, checks []quota.Check) []quota.Result {
	ops := quota.Plan(now, checks)
	allowed, judged, writes := quota.Step(ops, func(k string) int64 { return m[k] })
	for k, v := range writes {
		m[k] = v
	}
	res := make([]quota.Result, len(ops))
	for i := range ops {
		res[i] = ops[i].Result(judged[i], allowed)
	}
	return res
}

var testLimits = []quota.Limit{
	{Requests: 3, Period: time.Second, Algorithm: quota.FixedWindow},
	{Requests: 5, Period: 2 * time.Second, Algorithm: quota.SlidingWindow},
	{Requests: 2, Period: 700 * time.Millisecond, Algorithm: quota.SlidingWindow},
	{Requests: 4, Period: time.Second, Algorithm: quota.TokenBucket},
	{Requests: 3, Period: 1300 * time.Millisecond, Algorithm: quota.TokenBucket},
	{Requests: 6, Monthly: true, Location: mustLoc("Europe/Paris"), Algorithm: quota.FixedWindow},
}

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return l
}

func randomChecks(r *rand.Rand, tags []string) []quota.Check {
	n := 1 + r.IntN(4)
	cs := make([]quota.Check, n)
	for i := range cs {
		lim := testLimits[r.IntN(len(testLimits))]
		if r.IntN(5) == 0 {
			lim.Requests++ // an override: same counter and period, another limit
		}
		cs[i] = quota.Check{
			Key:     fmt.Sprintf("k%d", r.IntN(3)),
			Tag:     tags[r.IntN(len(tags))],
			Limit:   lim,
			Hits:    uint64(r.IntN(4)),
			Enforce: r.IntN(5) != 0,
		}
	}
	return cs
}

// differential drives a store and the model with the same random requests
// and fails on the first answer that differs.
func differential(t *testing.T, s quota.Store, tags []string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	m := model{}
	start := time.Now()
	var offset time.Duration
	ctx := context.Background()
	for i := range 400 {
		offset += time.Duration(r.IntN(400)) * time.Millisecond
		now := base.Add(time.Since(start) + offset)
		checks := randomChecks(r, tags)
		got, err := s.Apply(ctx, now, checks)
		if err != nil {
			t.Fatalf("request %d: Apply: %v", i, err)
		}
		want := m.apply(now, checks)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("request %d at %s, checks %+v: results differ from quota.Step (-want +got):\n%s", i, now, checks, diff)
		}
	}
}

func TestScriptAgreesWithStep(t *testing.T) {
	srv := redistest.Start(t)
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			s := newStore(t, srv.Client(t), Options{Prefix: fmt.Sprintf("diff%d:", seed)})
			differential(t, s, []string{"", "a", "b"}, seed)
		})
	}
}

func testClusterDifferential(t *testing.T, cl *redistest.Cluster) {
	reg := prometheus.NewRegistry()
	s := newStore(t, cl.Client(t), Options{Prefix: "differential:", Registerer: reg})
	// Five tags spread a request's checks over several slots, so denials
	// go through the refund script; the model charges nothing for them.
	differential(t, s, []string{"", "a", "b", "c", "d"}, 11)
	if n := counterValue(t, reg, "portcullis_redisstore_refunds_total", "ok"); n == 0 {
		t.Fatal("no refund ran: the test did not exercise multi-slot denials")
	}
}

func TestDeniedRequestChargesNothing(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client(t), Options{})
	ctx := context.Background()
	quotaLim := quota.Limit{Requests: 100, Period: time.Hour}
	burst := quota.Limit{Requests: 2, Period: time.Hour, Algorithm: quota.TokenBucket}
	req := []quota.Check{
		{Key: "app", Limit: quotaLim, Hits: 1, Enforce: true},
		{Key: "app", Limit: burst, Hits: 1, Enforce: true},
	}
	for i := range 2 {
		res, err := s.Apply(ctx, base, req)
		if err != nil || !quota.Allowed(req, res) {
			t.Fatalf("request %d: allowed=%v err=%v, want allowed", i, err == nil && quota.Allowed(req, res), err)
		}
	}
	for i := range 3 {
		res, err := s.Apply(ctx, base, req)
		if err != nil {
			t.Fatalf("denied request %d: %v", i, err)
		}
		if quota.Allowed(req, res) || !res[1].Over {
			t.Fatalf("denied request %d: %+v, want the burst over", i, res)
		}
		if res[0].Remaining != 98 {
			t.Fatalf("denied request %d: quota remaining %d, want 98 (denials charge nothing)", i, res[0].Remaining)
		}
	}
}

func TestEmptyRequestNeedsNoRedis(t *testing.T) {
	s := newStore(t, redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Options{})
	res, err := s.Apply(context.Background(), base, nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("Apply(nil) = %v, %v; want no results, no error", res, err)
	}
}

func TestInvalidLimitIsAnErrorNotAPanic(t *testing.T) {
	s := newStore(t, redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Options{})
	tests := []struct {
		name  string
		limit quota.Limit
		want  string
	}{
		{"zero-request token bucket", quota.Limit{Period: time.Second, Algorithm: quota.TokenBucket}, "check 0"},
		{"zero period", quota.Limit{Requests: 1}, "shorter than 1ms"},
		{"monthly token bucket", quota.Limit{Requests: 1, Monthly: true, Algorithm: quota.TokenBucket}, "calendar month"},
		{"unknown algorithm", quota.Limit{Requests: 1, Period: time.Second, Algorithm: 9}, "check 0"},
	}
	t.Run("too many hits", func(t *testing.T) {
		_, err := s.Apply(context.Background(), base, []quota.Check{{Key: "k", Limit: testLimits[0], Hits: quota.MaxRequests + 1}})
		if err == nil || errors.Is(err, quota.ErrUnavailable) {
			t.Fatalf("err = %v, want an error that is not ErrUnavailable", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Apply(context.Background(), base, []quota.Check{{Key: "k", Limit: tt.limit, Hits: 1}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if errors.Is(err, quota.ErrUnavailable) {
				t.Fatalf("err = %v wraps ErrUnavailable; a bad limit is not a store failure", err)
			}
		})
	}
}

// commandStats returns calls and failed_calls of cmd from INFO commandstats.
func commandStats(t testing.TB, c redis.UniversalClient, cmd string) (calls, failed int64) {
	t.Helper()
	ctx := context.Background()
	var infos []string
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			s, err := n.Info(ctx, "commandstats").Result()
			mu.Lock()
			infos = append(infos, s)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatalf("INFO commandstats: %v", err)
		}
	} else {
		s, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatalf("INFO commandstats: %v", err)
		}
		infos = append(infos, s)
	}
	for _, info := range infos {
		for line := range strings.SplitSeq(info, "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
			if !ok {
				continue
			}
			for kv := range strings.SplitSeq(rest, ",") {
				var v int64
				if _, err := fmt.Sscanf(kv, "calls=%d", &v); err == nil {
					calls += v
				}
				if _, err := fmt.Sscanf(kv, "failed_calls=%d", &v); err == nil {
					failed += v
				}
			}
		}
	}
	return calls, failed
}

func resetStats(t testing.TB, c redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	if cc, ok := c.(*redis.ClusterClient); ok {
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return n.ConfigResetStat(ctx).Err()
		}); err != nil {
			t.Fatalf("CONFIG RESETSTAT: %v", err)
		}
		return
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
}

func histogram(t testing.TB, reg *prometheus.Registry, name string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

func counterValue(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabelValue(m, label) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func hasLabelValue(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// hammer runs callers goroutines that each make perCaller requests with
// their own fresh checks, and returns how many were allowed.
func hammer(t *testing.T, stores []*Store, callers, perCaller int, checks func(caller, i int) []quota.Check, now func() time.Time) int64 {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			s := stores[c%len(stores)]
			for i := range perCaller {
				cs := checks(c, i)
				res, err := s.Apply(context.Background(), now(), cs)
				if err != nil {
					errs <- err
					return
				}
				if quota.Allowed(cs, res) {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	return allowed.Load()
}

func TestAtMostOneEvalshaPerRequestAndBatchesUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, client, Options{Registerer: reg})
	// Load the script, then count from zero.
	if _, err := s.Apply(context.Background(), base, []quota.Check{{Key: "warm", Limit: testLimits[0], Hits: 1}}); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	resetStats(t, client)
	batches0, requests0 := histogram(t, reg, "portcullis_redisstore_batch_size")
	scripts0, scripted0 := histogram(t, reg, "portcullis_redisstore_script_batch_size")

	const callers, per = 64, 40
	four := func(c, i int) []quota.Check {
		k := fmt.Sprintf("c%d", c)
		return []quota.Check{
			{Key: k, Tag: "x", Limit: testLimits[0], Hits: 1, Enforce: true},
			{Key: k, Tag: "y", Limit: testLimits[1], Hits: 1, Enforce: true},
			{Key: k + "b", Limit: testLimits[3], Hits: 1, Enforce: true},
			{Key: "shared", Limit: quota.Limit{Requests: 1 << 30, Period: time.Hour}, Hits: 1},
		}
	}
	hammer(t, []*Store{s}, callers, per, four, func() time.Time { return base })

	calls, failed := commandStats(t, client, "evalsha")
	batches, requests := histogram(t, reg, "portcullis_redisstore_batch_size")
	batches -= batches0
	requests -= requests0
	scripts, scripted := histogram(t, reg, "portcullis_redisstore_script_batch_size")
	scripts -= scripts0
	scripted -= scripted0
	t.Logf("%d requests in %d pipelines (%.1f requests per round trip) and %d script calls (%.1f requests per call)",
		int(requests), batches, requests/float64(batches), calls, scripted/float64(scripts))
	if calls > callers*per || failed != 0 {
		t.Fatalf("evalsha calls=%d failed=%d, want at most %d (one per request of 4 checks) and 0 failed", calls, failed, callers*per)
	}
	if int64(scripts) != calls || int(scripted) != callers*per {
		t.Fatalf("script_batch_size counted %d calls of %v requests; Redis ran %d calls for %d requests", scripts, scripted, calls, callers*per)
	}
	if int(requests) != callers*per || requests/float64(batches) <= 1 {
		t.Fatalf("%v requests in %d pipelines (avg %.2f); want %d requests and avg > 1", requests, batches, requests/float64(batches), callers*per)
	}
	if calls >= callers*per {
		t.Fatalf("%d script calls for %d concurrent requests: no two shared a call", calls, callers*per)
	}
}

func TestAccuracyAcrossTwoStoresSharingRedis(t *testing.T) {
	srv := redistest.Start(t)
	stores := []*Store{
		newStore(t, srv.Client(t), Options{}),
		newStore(t, srv.Client(t), Options{}),
	}
	const n = 100
	start := time.Now()
	now := func() time.Time { return base.Add(time.Since(start)) }
	tests := []struct {
		name  string
		limit quota.Limit
		exact bool
	}{
		{"fixed window admits exactly N", quota.Limit{Requests: n, Period: time.Hour}, true},
		{"sliding window admits at most N", quota.Limit{Requests: n, Period: time.Hour, Algorithm: quota.SlidingWindow}, false},
		{"token bucket admits at most N", quota.Limit{Requests: n, Period: time.Hour, Algorithm: quota.TokenBucket}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "acc-" + tt.limit.Algorithm.String()
			got := hammer(t, stores, 64, 5, func(int, int) []quota.Check {
				return []quota.Check{{Key: key, Tag: "t", Limit: tt.limit, Hits: 1, Enforce: true}}
			}, now)
			if got > n || (tt.exact && got != n) {
				t.Fatalf("admitted %d of 320 requests, want %s %d", got, map[bool]string{true: "exactly", false: "at most"}[tt.exact], n)
			}
			// A token bucket refills 1 per 36s and a sliding window carries
			// nothing from the previous hour, so each admits N here too.
			if got < n-1 {
				t.Fatalf("admitted %d, want about %d: the store lost charges", got, n)
			}
		})
	}
}

func TestRecoversAfterScriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := newStore(t, client, Options{})
	ctx := context.Background()
	req := []quota.Check{{Key: "flush", Limit: quota.Limit{Requests: 3, Period: time.Hour}, Hits: 1, Enforce: true}}
	if _, err := s.Apply(ctx, base, req); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	res, err := s.Apply(ctx, base, req)
	if err != nil {
		t.Fatalf("Apply after SCRIPT FLUSH: %v", err)
	}
	if res[0].Remaining != 1 {
		t.Fatalf("remaining %d after two requests, want 1", res[0].Remaining)
	}
}

func TestCorruptKeyIsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := newStore(t, client, Options{Prefix: "p:"})
	ctx := context.Background()
	c := quota.Check{Key: "k", Tag: "t", Limit: quota.Limit{Requests: 3, Period: time.Hour}, Hits: 1}
	key := "p:" + quota.Plan(base, []quota.Check{c})[0].Key
	if err := client.Set(ctx, key, "not a number", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	_, err := s.Apply(ctx, base, []quota.Check{c})
	if !errors.Is(err, quota.ErrUnavailable) || !strings.Contains(err.Error(), "does not hold an integer") {
		t.Fatalf("err = %v, want ErrUnavailable naming the bad key", err)
	}
}

func TestClosedStoreFailsFast(t *testing.T) {
	srv := redistest.Start(t)
	s := New(srv.Client(t), Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.Apply(context.Background(), base, []quota.Check{{Key: "k", Limit: testLimits[0], Hits: 1}})
	if !errors.Is(err, quota.ErrUnavailable) {
		t.Fatalf("Apply after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
