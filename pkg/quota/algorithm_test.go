package quota

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// counters is a store in miniature, a map and Step with no expiry: what
// every store must behave like.
type counters map[string]int64

func (c counters) apply(now time.Time, checks ...Check) (bool, []Result) {
	ops := Plan(now, checks)
	allowed, judged, writes := Step(ops, func(k string) int64 { return c[k] })
	for k, v := range writes {
		c[k] = v
	}
	results := make([]Result, len(ops))
	for i := range ops {
		results[i] = ops[i].Result(judged[i], allowed)
	}
	return allowed, results
}

// over reports whether ch would be over at now, charging nothing.
func (c counters) over(now time.Time, ch Check) bool {
	o := Plan(now, []Check{ch})[0]
	return o.Over(State{A: c[o.Key], B: c[o.PrevKey]})
}

func (c counters) clone() counters {
	d := make(counters, len(c))
	for k, v := range c {
		d[k] = v
	}
	return d
}

func enforced(l Limit, hits uint64) Check {
	return Check{Key: "k", Tag: "t", Limit: l, Hits: hits, Enforce: true}
}

func ok(limit, remaining uint64, reset time.Duration) Result {
	return Result{Limit: limit, Remaining: remaining, ResetAfter: reset}
}

func over(limit, remaining uint64, reset, retry time.Duration) Result {
	return Result{Over: true, Limit: limit, Remaining: remaining, ResetAfter: reset, RetryAfter: retry}
}

// step is one request in a sequence driven by literal times.
type step struct {
	at   string // RFC 3339
	hits uint64
	want Result
}

func runSteps(t *testing.T, l Limit, steps []step) {
	t.Helper()
	c := counters{}
	for i, s := range steps {
		allowed, got := c.apply(utc(s.at), enforced(l, s.hits))
		if got[0] != s.want {
			t.Fatalf("step %d at %s, %d hits on %s:\n got %+v\nwant %+v", i, s.at, s.hits, l, got[0], s.want)
		}
		if allowed == s.want.Over {
			t.Fatalf("step %d at %s: allowed = %t with Over = %t", i, s.at, allowed, s.want.Over)
		}
	}
}

func TestPlanNamesCountersByLimitAndWindow(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	tests := []struct {
		name          string
		now           string
		limit         Limit
		key, prevKey  string
		start, length time.Duration // since the epoch; the window's length
	}{
		{
			name: "fixed windows align to the epoch", now: "2025-01-01T00:00:30Z",
			limit: Limit{Requests: 1, Period: time.Minute},
			key:   "{t}k|f60000|28928160", start: 1735689600 * time.Second, length: time.Minute,
		},
		{
			name: "a window length that does not divide a day", now: "2025-01-01T00:00:30Z",
			limit: Limit{Requests: 1, Period: 7 * time.Second},
			// 1735689630 = 7*247955661 + 3
			key: "{t}k|f7000|247955661", start: 1735689627 * time.Second, length: 7 * time.Second,
		},
		{
			name: "instants before the epoch round down", now: "1969-12-31T23:59:30Z",
			limit: Limit{Requests: 1, Period: time.Minute},
			key:   "{t}k|f60000|-1", start: -time.Minute, length: time.Minute,
		},
		{
			name: "a sliding window also names the previous window", now: "2025-01-01T00:00:00.5Z",
			limit: Limit{Requests: 1, Period: time.Second, Algorithm: SlidingWindow},
			key:   "{t}k|s1000|1735689600", prevKey: "{t}k|s1000|1735689599",
			start: 1735689600 * time.Second, length: time.Second,
		},
		{
			name: "a token bucket has one key for all time", now: "2025-01-01T00:00:30Z",
			limit: Limit{Requests: 1, Period: time.Minute, Algorithm: TokenBucket},
			key:   "{t}k|t60000", length: time.Minute,
		},
		{
			name: "a month starts at local midnight on the 1st", now: "2025-03-31T23:30:00Z", // 00:30 BST, 1 April
			limit: Limit{Requests: 1, Monthly: true, Location: london},
			key:   "{t}k|fMEurope/London|1743462000000000", start: 1743462000 * time.Second, length: 30 * 24 * time.Hour,
		},
		{
			name: "a month without a zone is UTC", now: "2024-02-29T12:00:00Z",
			limit: Limit{Requests: 1, Monthly: true},
			key:   "{t}k|fMUTC|1706745600000000", start: 1706745600 * time.Second, length: 29 * 24 * time.Hour,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := utc(tc.now)
			ops := Plan(now, []Check{{Key: "k", Tag: "t", Limit: tc.limit, Hits: 3, Enforce: true}})
			want := Op{
				Alg: tc.limit.Algorithm, Key: tc.key, PrevKey: tc.prevKey, Limit: 1, Hits: 3, Enforce: true,
				Now: now.UnixMicro(), Start: tc.start.Microseconds(), Length: tc.length.Microseconds(),
			}
			if len(ops) != 1 || ops[0] != want {
				t.Fatalf("Plan:\n got %+v\nwant %+v", ops, want)
			}
		})
	}
}

func TestFixedWindowAdmitsNThenDeniesUntilTheWindowEnds(t *testing.T) {
	runSteps(t, Limit{Requests: 3, Period: time.Minute}, []step{
		{"2025-06-01T12:00:10Z", 1, ok(3, 2, 50*time.Second)},
		{"2025-06-01T12:00:20Z", 1, ok(3, 1, 40*time.Second)},
		{"2025-06-01T12:00:20Z", 2, over(3, 1, 40*time.Second, 40*time.Second)},
		{"2025-06-01T12:00:30Z", 1, ok(3, 0, 30*time.Second)},
		{"2025-06-01T12:00:30Z", 0, over(3, 0, 30*time.Second, 30*time.Second)},
		{"2025-06-01T12:00:59.999999Z", 1, over(3, 0, time.Microsecond, time.Microsecond)},
		{"2025-06-01T12:01:00Z", 3, ok(3, 0, time.Minute)},
		{"2025-06-01T12:02:00Z", 4, over(3, 3, time.Minute, 0)},
		{"2025-06-01T12:02:00Z", 0, ok(3, 3, time.Minute)},
	})
}

// TestAZeroLimitDeniesEveryRequest: requests_per_unit: 0 in a rule file
// means "deny"; the request is over whatever the counter holds, can never
// succeed (RetryAfter 0), and a denied request charges nothing.
func TestAZeroLimitDeniesEveryRequest(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	tests := []struct {
		name  string
		limit Limit
		reset time.Duration // at 12:00:10 on 1 June 2025
	}{
		{"fixed window", Limit{Period: time.Minute}, 50 * time.Second},
		{"sliding window", Limit{Period: time.Minute, Algorithm: SlidingWindow}, 50 * time.Second},
		{"calendar month", Limit{Monthly: true, Location: london}, 29*24*time.Hour + 10*time.Hour + 59*time.Minute + 50*time.Second}, // June ends at 23:00 UTC in BST
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, tc.limit, []step{
				{"2025-06-01T12:00:10Z", 1, over(0, 0, tc.reset, 0)},
				{"2025-06-01T12:00:10Z", 0, over(0, 0, tc.reset, 0)},
				{"2025-06-01T12:00:10Z", 5, over(0, 0, tc.reset, 0)},
			})
		})
	}
	t.Run("a shadow check is over, counted, and denies nothing", func(t *testing.T) {
		c := counters{}
		ch := Check{Key: "k", Limit: Limit{Period: time.Minute}, Hits: 1}
		allowed, rs := c.apply(utc("2025-06-01T12:00:10Z"), ch)
		if !allowed || rs[0] != over(0, 0, 50*time.Second, 0) {
			t.Fatalf("shadow zero limit: allowed %t, %+v", allowed, rs[0])
		}
		if o := Plan(utc("2025-06-01T12:00:10Z"), []Check{ch})[0]; c[o.Key] != 1 {
			t.Fatalf("shadow zero limit counted %d hits, want 1", c[o.Key])
		}
	})
}

func TestMonthlyWindowFollowsTheLocalCalendar(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	l := Limit{Requests: 2, Monthly: true, Location: london}
	t.Run("across the spring DST change", func(t *testing.T) {
		runSteps(t, l, []step{
			// 23:59:59 BST on 31 March: still March.
			{"2025-03-31T22:59:59Z", 1, ok(2, 1, time.Second)},
			{"2025-03-31T22:59:59Z", 1, ok(2, 0, time.Second)},
			{"2025-03-31T22:59:59Z", 1, over(2, 0, time.Second, time.Second)},
			// Local midnight, 23:00 UTC: April, 30 days of BST.
			{"2025-03-31T23:00:00Z", 1, ok(2, 1, 30*24*time.Hour)},
			{"2025-04-30T22:59:59Z", 1, ok(2, 0, time.Second)},
		})
	})
	t.Run("March is an hour short", func(t *testing.T) {
		runSteps(t, l, []step{
			{"2025-03-01T00:00:00Z", 2, ok(2, 0, 31*24*time.Hour-time.Hour)},
			{"2025-03-30T00:59:59Z", 1, over(2, 0, 46*time.Hour+time.Second, 46*time.Hour+time.Second)},
			// After the change at 01:00 UTC the end is 23:00 UTC on the 31st.
			{"2025-03-30T01:00:00Z", 1, over(2, 0, 46*time.Hour, 46*time.Hour)},
		})
	})
	t.Run("October is an hour long", func(t *testing.T) {
		runSteps(t, l, []step{
			{"2025-09-30T23:00:00Z", 1, ok(2, 1, 31*24*time.Hour+time.Hour)},
			{"2025-10-31T23:59:59Z", 1, ok(2, 0, time.Second)},
			{"2025-11-01T00:00:00Z", 1, ok(2, 1, 30*24*time.Hour)},
		})
	})
	t.Run("February", func(t *testing.T) {
		runSteps(t, l, []step{
			{"2024-02-01T00:00:00Z", 1, ok(2, 1, 29*24*time.Hour)},
			{"2025-02-01T00:00:00Z", 1, ok(2, 1, 28*24*time.Hour)},
			{"2025-02-28T23:59:59Z", 2, over(2, 1, time.Second, time.Second)},
			{"2025-03-01T00:00:00Z", 2, ok(2, 0, 31*24*time.Hour-time.Hour)},
		})
	})
}

func TestSlidingWindowWeighsThePreviousWindow(t *testing.T) {
	runSteps(t, Limit{Requests: 10, Period: time.Minute, Algorithm: SlidingWindow}, []step{
		{"2025-06-01T12:00:00Z", 8, ok(10, 2, time.Minute)},
		// 15s in, 45/60 of 8 still count: 6.
		{"2025-06-01T12:01:15Z", 1, ok(10, 3, 45*time.Second)},
		// 6 + 1 + 4 > 10 until the share falls to 5, a microsecond later.
		{"2025-06-01T12:01:15Z", 4, over(10, 3, 45*time.Second, time.Microsecond)},
		{"2025-06-01T12:01:15.000001Z", 4, ok(10, 0, 45*time.Second-time.Microsecond)},
		// 5 + 5 + 1 > 10 until the share falls to 4, at 22.5s + 1µs.
		{"2025-06-01T12:01:15.000001Z", 1, over(10, 0, 45*time.Second-time.Microsecond, 7500*time.Millisecond)},
		{"2025-06-01T12:01:22.500001Z", 1, ok(10, 0, 37500*time.Millisecond-time.Microsecond)},
		// Half a window on, the 6 of that window weigh 3.
		{"2025-06-01T12:02:30Z", 1, ok(10, 6, 30*time.Second)},
		// 3 + 1 + 8 > 10 until the share falls to 1: 6*(60-e)/60 < 2, e > 40s.
		{"2025-06-01T12:02:30Z", 8, over(10, 6, 30*time.Second, 10*time.Second+time.Microsecond)},
		// 1 + 10 never fits in this window; in the next the 1 weighs
		// nothing a microsecond after it starts.
		{"2025-06-01T12:02:30Z", 10, over(10, 6, 30*time.Second, 30*time.Second+time.Microsecond)},
		// Two windows on, nothing is left; more than the limit never fits.
		{"2025-06-01T12:05:00Z", 11, over(10, 10, time.Minute, 0)},
	})
}

func TestTokenBucketAdmitsABurstThenOnePerInterval(t *testing.T) {
	runSteps(t, Limit{Requests: 5, Period: 10 * time.Second, Algorithm: TokenBucket}, []step{
		{"2025-06-01T12:00:00Z", 1, ok(5, 4, 2*time.Second)},
		{"2025-06-01T12:00:00Z", 1, ok(5, 3, 4*time.Second)},
		{"2025-06-01T12:00:00Z", 3, ok(5, 0, 10*time.Second)},
		{"2025-06-01T12:00:00Z", 1, over(5, 0, 10*time.Second, 2*time.Second)},
		{"2025-06-01T12:00:01.999999Z", 0, over(5, 0, 8*time.Second+time.Microsecond, time.Microsecond)},
		{"2025-06-01T12:00:02Z", 1, ok(5, 0, 10*time.Second)},
		{"2025-06-01T12:00:03Z", 1, over(5, 0, 9*time.Second, time.Second)},
		{"2025-06-01T12:00:09Z", 2, ok(5, 1, 7*time.Second)},
		{"2025-06-01T12:00:09Z", 2, over(5, 1, 7*time.Second, time.Second)},
		{"2025-06-01T12:00:09Z", 6, over(5, 1, 7*time.Second, 0)},
		{"2025-06-01T12:01:00Z", 0, ok(5, 5, 0)},
		{"2025-06-01T12:01:00Z", 5, ok(5, 0, 10*time.Second)},
	})
}

func TestTokenBucketAdmitsExactlyABurstOfN(t *testing.T) {
	now := utc("2025-06-01T12:00:00Z")
	type shape struct {
		n      uint64
		period time.Duration
	}
	shapes := []shape{
		{7, time.Minute}, {3, 2 * time.Second}, {10, time.Second}, {1, time.Millisecond},
		{999, time.Second}, {1000, time.Second}, {7, time.Hour}, {13, 366 * 24 * time.Hour},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		p := time.Duration(1+rng.Int64N(int64(time.Hour/time.Microsecond))) * time.Microsecond
		shapes = append(shapes, shape{1 + uint64(rng.IntN(300)), max(p, time.Millisecond)})
	}
	for _, s := range shapes {
		l := Limit{Requests: s.n, Period: s.period, Algorithm: TokenBucket}
		// Rounding each hit down to whole µs admits extra hits only when
		// the period in µs is under n(n+1); none of these shapes is.
		if uint64(s.period.Microseconds()) < s.n*(s.n+1) {
			continue
		}
		c := counters{}
		for i := range s.n {
			if allowed, r := c.apply(now, enforced(l, 1)); !allowed || r[0].Remaining != s.n-1-i {
				t.Fatalf("%s: hit %d at one instant: allowed %t, %+v; want allowed with %d remaining", l, i+1, allowed, r[0], s.n-1-i)
			}
		}
		if allowed, _ := c.apply(now, enforced(l, 1)); allowed {
			t.Fatalf("%s: hit %d at one instant allowed", l, s.n+1)
		}
		if allowed, _ := (counters{}).apply(now, enforced(l, s.n)); !allowed {
			t.Fatalf("%s: %d hits in one request denied", l, s.n)
		}
	}
}

func TestTokenBucketNeverChargesLessThanAMicrosecondPerHit(t *testing.T) {
	// The fastest valid bucket: one request per µs.
	l := Limit{Requests: 1000, Period: time.Millisecond, Algorithm: TokenBucket}
	now := utc("2025-06-01T12:00:00Z")
	c := counters{}
	admitted := 0
	for range 5000 {
		if allowed, _ := c.apply(now, enforced(l, 1)); allowed {
			admitted++
		}
	}
	if admitted != 1000 {
		t.Fatalf("%s admitted %d at one instant, want 1000", l, admitted)
	}
}

// TestRetryAfterIsTheFirstInstantThatFits drives random histories (shadow
// checks push counters past their limits too) and probes every Over
// result: at now+RetryAfter the same check fits, a microsecond earlier it
// does not. It also checks that Remaining is the number of single hits that
// still fit at that instant.
func TestRetryAfterIsTheFirstInstantThatFits(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	periods := []time.Duration{time.Millisecond, 7 * time.Millisecond, time.Second, 7 * time.Second, time.Minute}
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			l := Limit{
				Requests:  1 + uint64(rng.IntN(20)),
				Period:    periods[rng.IntN(len(periods))],
				Algorithm: Algorithm(rng.IntN(3)),
			}
			if l.Algorithm == FixedWindow && rng.IntN(5) == 0 {
				l.Monthly, l.Location, l.Period = true, london, 0
			}
			window := l.Window(utc("2025-01-01T00:00:00Z"))
			c := counters{}
			now := utc("2025-03-29T12:00:00Z").Add(time.Duration(rng.Int64N(int64(time.Hour))))
			for i := range 400 {
				switch n := rng.IntN(10); {
				case n < 4:
				case n < 8:
					now = now.Add(time.Duration(rng.Int64N(int64(window / 4))))
				default:
					now = now.Add(time.Duration(rng.Int64N(int64(window * 2))))
				}
				ch := enforced(l, uint64(rng.IntN(int(l.Requests)+2)))
				ch.Enforce = rng.IntN(6) != 0
				before := c.clone()
				_, rs := c.apply(now, ch)
				r := rs[0]
				probeRetry(t, i, before, now, ch, r)
				probeRemaining(t, i, c, now, l, r)
			}
		})
	}
}

func probeRetry(t *testing.T, i int, before counters, now time.Time, ch Check, r Result) {
	t.Helper()
	if r.Over != before.over(now, ch) {
		t.Fatalf("request %d at %s: Over = %t disagrees with the state", i, now.Format(time.RFC3339Nano), r.Over)
	}
	if !r.Over {
		if r.RetryAfter != 0 {
			t.Fatalf("request %d: RetryAfter %s on a request that fits", i, r.RetryAfter)
		}
		return
	}
	if max(ch.Hits, 1) > ch.Limit.Requests {
		if r.RetryAfter != 0 {
			t.Fatalf("request %d: %d hits never fit %s, but RetryAfter = %s", i, ch.Hits, ch.Limit, r.RetryAfter)
		}
		return
	}
	at := now.Add(r.RetryAfter)
	if r.RetryAfter <= 0 || before.over(at, ch) {
		t.Fatalf("request %d at %s, %d hits on %s, state %v: still over at RetryAfter %s",
			i, now.Format(time.RFC3339Nano), ch.Hits, ch.Limit, before, r.RetryAfter)
	}
	if !before.over(at.Add(-time.Microsecond), ch) {
		t.Fatalf("request %d at %s, %d hits on %s, state %v: RetryAfter %s, but it fits 1µs earlier",
			i, now.Format(time.RFC3339Nano), ch.Hits, ch.Limit, before, r.RetryAfter)
	}
}

func probeRemaining(t *testing.T, i int, after counters, now time.Time, l Limit, r Result) {
	t.Helper()
	probe := after.clone()
	fits := uint64(0)
	for fits <= l.Requests {
		if allowed, _ := probe.apply(now, enforced(l, 1)); !allowed {
			break
		}
		fits++
	}
	if r.Remaining != fits {
		t.Fatalf("request %d at %s on %s: Remaining = %d, but %d single hits fit", i, now.Format(time.RFC3339Nano), l, r.Remaining, fits)
	}
}

func TestStepIsOneAtomicStep(t *testing.T) {
	fixed := Limit{Requests: 3, Period: time.Hour}
	now := utc("2025-06-01T12:00:00Z")
	key := Plan(now, []Check{enforced(fixed, 1)})[0].Key
	other := Check{Key: "other", Tag: "t", Limit: Limit{Requests: 1, Period: time.Hour}, Enforce: true}
	otherKey := Plan(now, []Check{other})[0].Key
	shadow := func(c Check) Check { c.Enforce = false; return c }
	hits := func(c Check, n uint64) Check { c.Hits = n; return c }

	tests := []struct {
		name    string
		state   map[string]int64
		checks  []Check
		allowed bool
		judged  []State
		writes  map[string]int64
	}{
		{
			name:   "a fitting request charges every check",
			checks: []Check{enforced(fixed, 2), hits(other, 1)}, allowed: true,
			judged: []State{{}, {}}, writes: map[string]int64{key: 2, otherKey: 1},
		},
		{
			name: "one enforced check over denies and charges nothing", state: map[string]int64{otherKey: 1},
			checks: []Check{enforced(fixed, 2), hits(other, 1)}, allowed: false,
			judged: []State{{}, {A: 1}},
		},
		{
			name: "an unenforced check over is charged anyway", state: map[string]int64{key: 3},
			checks: []Check{shadow(enforced(fixed, 2))}, allowed: true,
			judged: []State{{A: 3}}, writes: map[string]int64{key: 5},
		},
		{
			name: "zero hits write the state back unchanged", state: map[string]int64{key: 2},
			checks: []Check{enforced(fixed, 0)}, allowed: true,
			judged: []State{{A: 2}}, writes: map[string]int64{key: 2},
		},
		{
			name: "a zero-hit check is judged as one hit", state: map[string]int64{key: 3},
			checks: []Check{enforced(fixed, 0)}, allowed: false,
			judged: []State{{A: 3}},
		},
		{
			name: "a duplicate key sees the earlier tentative charge", state: map[string]int64{key: 1},
			checks: []Check{enforced(fixed, 1), enforced(fixed, 1)}, allowed: true,
			judged: []State{{A: 1}, {A: 2}}, writes: map[string]int64{key: 3},
		},
		{
			name: "a duplicate key over denies both", state: map[string]int64{key: 2},
			checks: []Check{enforced(fixed, 1), enforced(fixed, 1)}, allowed: false,
			judged: []State{{A: 2}, {A: 3}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allowed, judged, writes := Step(Plan(now, tc.checks), func(k string) int64 { return tc.state[k] })
			if allowed != tc.allowed {
				t.Fatalf("allowed = %t, want %t", allowed, tc.allowed)
			}
			if fmt.Sprint(judged) != fmt.Sprint(tc.judged) {
				t.Fatalf("judged = %v, want %v", judged, tc.judged)
			}
			if fmt.Sprint(writes) != fmt.Sprint(tc.writes) {
				t.Fatalf("writes = %v, want %v", writes, tc.writes)
			}
		})
	}
}

func TestExpiryIsInvisible(t *testing.T) {
	// A store may drop a key once ExpireAt has passed; from then on, reading
	// it as absent must judge exactly as the kept value would.
	now := utc("2025-06-01T12:00:00.25Z")
	for _, l := range []Limit{
		{Requests: 5, Period: time.Second},
		{Requests: 5, Period: time.Second, Algorithm: SlidingWindow},
		{Requests: 5, Period: time.Second, Algorithm: TokenBucket},
	} {
		t.Run(l.Algorithm.String(), func(t *testing.T) {
			c := counters{}
			c.apply(now, enforced(l, 3))
			o := Plan(now, []Check{enforced(l, 3)})[0]
			expireAt := o.ExpireAt(State{A: c[o.Key]})
			later := time.UnixMicro(expireAt)
			for _, at := range []time.Time{later, later.Add(time.Microsecond), later.Add(time.Hour)} {
				kept, dropped := c.clone(), c.clone()
				delete(dropped, o.Key)
				_, want := kept.apply(at, enforced(l, 1))
				_, got := dropped.apply(at, enforced(l, 1))
				if got[0] != want[0] {
					t.Fatalf("at %s with the key dropped: %+v, kept: %+v", at.Format(time.RFC3339Nano), got[0], want[0])
				}
			}
		})
	}
}

func TestTokenBucketCostMatchesTheScript(t *testing.T) {
	// The Lua script computes math.floor(hits * (length / limit)) in doubles.
	tests := []struct {
		limit, length, hits, want int64
	}{
		{7, 60_000_000, 1, 8571428},
		{7, 60_000_000, 7, 60_000_000},
		{3, 2_000_000, 1, 666666},
		{3, 2_000_000, 2, 1333333},
		{1000, 1000, 1, 1},
		{5, 10_000_000, 0, 0},
	}
	for _, tc := range tests {
		t.Run(strconv.FormatInt(tc.limit, 10)+"/"+strconv.FormatInt(tc.length, 10)+"µs x"+strconv.FormatInt(tc.hits, 10), func(t *testing.T) {
			o := Op{Alg: TokenBucket, Limit: tc.limit, Length: tc.length}
			if got := o.cost(tc.hits); got != tc.want {
				t.Fatalf("cost(%d) = %d, want %d", tc.hits, got, tc.want)
			}
		})
	}
}
