package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// batchRequest is one Apply's arguments.
type batchRequest struct {
	ctx    context.Context
	now    time.Time
	checks []quota.Check
}

// applyBatch forces reqs into one batch, in this order, as a worker that
// found them all queued would send them, and returns each request's answer
// as Apply would.
func applyBatch(t *testing.T, s *Store, reqs []batchRequest) ([][]quota.Result, []error) {
	t.Helper()
	jobs := make([]*job, len(reqs))
	for i, r := range reqs {
		for k := range r.checks {
			if err := r.checks[k].Validate(); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		ops := quota.Plan(r.now, r.checks)
		s.physicalKeys(ops, r.checks)
		jobs[i] = s.newJob(r.ctx, ops)
	}
	s.run(newBatcher(), jobs)
	res := make([][]quota.Result, len(reqs))
	errs := make([]error, len(reqs))
	for i, j := range jobs {
		select {
		case out := <-j.done:
			res[i], errs[i] = s.finish(j, out)
		default:
			t.Fatalf("request %d of the batch got no answer", i)
		}
	}
	return res, errs
}

// batchDifferential sends random batches of requests on a few shared
// counters with tight limits, so that a batch mixes admitted and denied
// requests on the same keys, and requires exactly the answers that
// quota.Step gives applied request by request in batch order. oneTag gives
// each request a single tag (one Cluster slot), where a request's checks
// would otherwise spread over several.
func batchDifferential(t *testing.T, s *Store, reg *prometheus.Registry, tags []string, oneTag bool, batches, size int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 17))
	m := model{}
	start := time.Now()
	var offset time.Duration
	var allowed, denied, mixed int
	calls0, _ := histogram(t, reg, "portcullis_redisstore_script_batch_size")
	for b := range batches {
		offset += time.Duration(r.IntN(300)) * time.Millisecond
		at := base.Add(time.Since(start) + offset)
		reqs := make([]batchRequest, 1+r.IntN(size))
		for i := range reqs {
			checks := randomChecks(r, tags)
			if oneTag {
				tag := tags[r.IntN(len(tags))]
				for k := range checks {
					checks[k].Tag = tag
				}
			}
			// Callers' clocks differ a little, in either direction.
			reqs[i] = batchRequest{ctx: context.Background(), now: at.Add(time.Duration(r.IntN(5000)) * time.Microsecond), checks: checks}
		}
		got, errs := applyBatch(t, s, reqs)
		var a, d int
		for i, req := range reqs {
			if errs[i] != nil {
				t.Fatalf("batch %d request %d: %v", b, i, errs[i])
			}
			want := m.apply(req.now, req.checks)
			if diff := cmp.Diff(want, got[i]); diff != "" {
				t.Fatalf("batch %d request %d of %d at %s, checks %+v: results differ from quota.Step request by request (-want +got):\n%s",
					b, i, len(reqs), req.now, req.checks, diff)
			}
			if quota.Allowed(req.checks, want) {
				a++
			} else {
				d++
			}
		}
		allowed += a
		denied += d
		if a > 0 && d > 0 {
			mixed++
		}
	}
	calls, requests := histogram(t, reg, "portcullis_redisstore_script_batch_size")
	t.Logf("%d batches (%d mixing admitted and denied requests): %d admitted, %d denied; %d script calls for %v requests",
		batches, mixed, allowed, denied, calls-calls0, requests)
	if mixed == 0 || allowed == 0 || denied == 0 {
		t.Fatal("no batch mixed admitted and denied requests: the test exercised nothing")
	}
}

func TestBatchAgreesWithStepRequestByRequest(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		name    string
		tags    []string
		batches int
		size    int
	}{
		{"small batches on three counters", []string{"", "a"}, 300, 8},
		{"batches past one script call's ops", []string{"", "a", "b"}, 6, 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := newStore(t, srv.Client(t), Options{Prefix: fmt.Sprintf("batch%d:", i), Registerer: reg})
			batchDifferential(t, s, reg, tt.tags, false, tt.batches, tt.size, uint64(i+1))
			if calls, _ := histogram(t, reg, "portcullis_redisstore_script_batch_size"); tt.size*5/2 > maxOpsPerCall && calls <= uint64(tt.batches) {
				t.Fatalf("%d script calls for %d batches of up to %d requests: no batch was split", calls, tt.batches, tt.size)
			}
		})
	}
}

func testClusterBatch(t *testing.T, cl *redistest.Cluster) {
	reg := prometheus.NewRegistry()
	s := newStore(t, cl.Client(t), Options{Prefix: "batch:", Registerer: reg})
	// Four tags over three masters: a batch has several units in one
	// slot and several calls, on several nodes.
	batchDifferential(t, s, reg, []string{"a", "b", "c", "d"}, true, 200, 12, 5)
}

func TestBatchFailsOnlyTheRequestsThatReadACorruptKey(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := newStore(t, client, Options{Prefix: "corrupt:"})
	ctx := context.Background()
	lim := quota.Limit{Requests: 10, Period: time.Hour}
	good := quota.Check{Key: "good", Tag: "t", Limit: lim, Hits: 1, Enforce: true}
	bad := quota.Check{Key: "bad", Tag: "t", Limit: lim, Hits: 1, Enforce: true}
	ops := quota.Plan(base, []quota.Check{bad})
	s.physicalKeys(ops, []quota.Check{bad})
	tests := []struct {
		name  string
		value string
	}{
		{"text", "garbage"},
		{"fraction", "1.5"},
		{"exponent", "1e3"},
		{"too long", "12345678901234567"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := client.Set(ctx, ops[0].Key, tt.value, time.Minute).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			before := storedCount(t, client, s, base, good)
			res, errs := applyBatch(t, s, []batchRequest{
				{ctx, base, []quota.Check{good}},
				{ctx, base, []quota.Check{good, bad}},
				{ctx, base, []quota.Check{good}},
			})
			for _, i := range []int{0, 2} {
				if errs[i] != nil || res[i][0].Over {
					t.Fatalf("request %d, which never reads the bad key: %v %+v, want admitted", i, errs[i], res[i])
				}
			}
			if !errors.Is(errs[1], quota.ErrUnavailable) || !strings.Contains(errs[1].Error(), "does not hold an integer") {
				t.Fatalf("request 1 = %v, want ErrUnavailable naming the bad key", errs[1])
			}
			if got := storedCount(t, client, s, base, good); got != before+2 {
				t.Fatalf("good counter went from %d to %d, want +2: the failed request charged", before, got)
			}
			if v := client.Get(ctx, ops[0].Key).Val(); v != tt.value {
				t.Fatalf("bad key now holds %q, want %q untouched", v, tt.value)
			}
		})
	}
}

func TestBatchDropsACallerThatLeft(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, client, Options{Prefix: "left:", Registerer: reg})
	ctx := context.Background()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	c := quota.Check{Key: "k", Tag: "t", Limit: quota.Limit{Requests: 10, Period: time.Hour}, Hits: 1, Enforce: true}
	res, errs := applyBatch(t, s, []batchRequest{{ctx, base, []quota.Check{c}}, {gone, base, []quota.Check{c}}, {ctx, base, []quota.Check{c}}})
	if !errors.Is(errs[1], quota.ErrUnavailable) || !errors.Is(errs[1], context.Canceled) {
		t.Fatalf("the cancelled caller got %v, want ErrUnavailable and context.Canceled", errs[1])
	}
	if errs[0] != nil || errs[2] != nil || res[0][0].Remaining != 9 || res[2][0].Remaining != 8 {
		t.Fatalf("the others: %v %v, %+v %+v; want remaining 9 then 8", errs[0], errs[2], res[0], res[2])
	}
	if got := storedCount(t, client, s, base, c); got != 2 {
		t.Fatalf("counter %d, want 2: the caller that left was charged", got)
	}
	if calls, requests := histogram(t, reg, "portcullis_redisstore_script_batch_size"); calls != 1 || requests != 2 {
		t.Fatalf("%d script calls for %v requests, want 1 call for the 2 live ones", calls, requests)
	}
}

func TestBatchWritesEachKeyOnceWithItsLastChargesExpiry(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := newStore(t, client, Options{Prefix: "ttl:"})
	ctx := context.Background()
	fixed := quota.Check{Key: "f", Tag: "t", Limit: quota.Limit{Requests: 100, Period: time.Minute}, Hits: 1, Enforce: true}
	bucket := quota.Check{Key: "b", Tag: "t", Limit: quota.Limit{Requests: 60, Period: time.Minute, Algorithm: quota.TokenBucket}, Hits: 1, Enforce: true}
	t0 := base.Truncate(time.Minute).Add(10 * time.Second)
	// Three requests, their clocks 0, 5 and 2 s past t0.
	reqs := []batchRequest{
		{ctx, t0, []quota.Check{fixed, bucket}},
		{ctx, t0.Add(5 * time.Second), []quota.Check{fixed, bucket}},
		{ctx, t0.Add(2 * time.Second), []quota.Check{fixed, bucket}},
	}
	resetStats(t, client)
	if _, errs := applyBatch(t, s, reqs); errors.Join(errs...) != nil {
		t.Fatalf("batch: %v", errors.Join(errs...))
	}
	if calls, _ := commandStats(t, client, "set"); calls != 2 {
		t.Fatalf("%d SET calls for two keys, want 2", calls)
	}
	tests := []struct {
		name  string
		check quota.Check
		want  time.Duration
	}{
		// The window ends 48s after the last charge's clock.
		{"fixed window", fixed, 48*time.Second + expiryGrace},
		// Three tokens of 1s: a TAT of t0+7s, 5s after the last charge's
		// clock, plus ExpireAt's 1ms.
		{"token bucket", bucket, 5*time.Second + time.Millisecond + expiryGrace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := quota.Plan(t0, []quota.Check{tt.check})
			s.physicalKeys(ops, []quota.Check{tt.check})
			got, err := client.PTTL(ctx, ops[0].Key).Result()
			if err != nil {
				t.Fatalf("PTTL: %v", err)
			}
			// PTTL counts down on Redis's clock from the write.
			if got > tt.want || got < tt.want-time.Second {
				t.Fatalf("PTTL %s, want %s less the time since the write", got, tt.want)
			}
		})
	}
}

func TestExistingWindowCountersKeepTheirExpiry(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := newStore(t, client, Options{Prefix: "keep:"})
	ctx := context.Background()
	fixed := quota.Check{Key: "f", Tag: "t", Limit: quota.Limit{Requests: 100, Period: time.Minute}, Hits: 1, Enforce: true}
	t0 := base.Truncate(time.Minute)
	for i, now := range []time.Time{t0, t0.Add(30 * time.Second)} {
		if _, err := s.Apply(ctx, now, []quota.Check{fixed}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	ops := quota.Plan(t0, []quota.Check{fixed})
	s.physicalKeys(ops, []quota.Check{fixed})
	// The second charge added to the counter without touching the expiry
	// the first one set: a window's end does not move.
	got, err := client.PTTL(ctx, ops[0].Key).Result()
	if err != nil {
		t.Fatalf("PTTL: %v", err)
	}
	if want := time.Minute + expiryGrace; got > want || got < want-time.Second {
		t.Fatalf("PTTL %s, want %s less the time since the first write", got, want)
	}
	if n := storedCount(t, client, s, t0, fixed); n != 2 {
		t.Fatalf("counter %d, want 2", n)
	}
}

// A request of thousands of checks takes the script's paths for large
// calls: MGET in chunks, tables grown rather than preallocated.
func TestHugeRequestAgreesWithStep(t *testing.T) {
	s := newStore(t, redistest.Start(t).Client(t), Options{Prefix: "huge:"})
	m := model{}
	ctx := context.Background()
	checks := make([]quota.Check, 2500)
	for i := range checks {
		// Sliding windows read two keys each: 5000 keys, and 2500 of them
		// charged; every tenth check repeats an earlier counter.
		key := fmt.Sprint("k", i)
		if i%10 == 9 {
			key = fmt.Sprint("k", i-1)
		}
		checks[i] = quota.Check{Key: key, Tag: "t", Limit: quota.Limit{Requests: 3, Period: time.Hour, Algorithm: quota.SlidingWindow}, Hits: 1, Enforce: true}
	}
	for i := range 3 {
		now := base.Add(time.Duration(i) * time.Millisecond)
		got, err := s.Apply(ctx, now, checks)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := m.apply(now, checks)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("request %d: results differ from quota.Step (-want +got):\n%s", i, diff)
		}
		if quota.Allowed(checks, want) != (i < 1) {
			t.Fatalf("request %d: allowed=%v; want only the first admitted (repeated counters reach 3 on the second)", i, quota.Allowed(checks, want))
		}
	}
}
