package quotatest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London on machines without a zoneinfo database

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// Run tests the store that newStore returns against the quota contract.
// newStore is called once per subtest; it may return the same store each
// time (a shared Redis), because every subtest counts on keys with a fresh
// random prefix.
//
// Every instant the suite passes is at or after time.Now() (the random
// streams run a few years ahead), so a store may set expiry as an absolute
// time or as ExpireAt-Now on its own clock: the fixed cases leave seconds
// of margin, and the random streams never let their time run slower than
// the real clock. Expiry must be invisible: the reference never expires
// anything. The suite never sleeps; time advances only through the now
// argument.
//
// A Result with Unknown set (a store's local over-limit cache answered) is
// compared on Limit, and on Over only when it says Over.
func Run(t *testing.T, newStore func(t *testing.T) quota.Store) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newFixture(t, newStore(t)))
		})
	}
}

var cases = []struct {
	name string
	run  func(*testing.T, *fixture)
}{
	{"fixed window admits N then denies until the window ends", testFixedWindow},
	{"sliding window weighs the previous window", testSlidingWindow},
	{"token bucket admits a burst then one per interval", testTokenBucket},
	{"token bucket admits the whole burst when the interval is fractional", testTokenBucketFractional},
	{"calendar month resets at local midnight on the first", testMonthly},
	{"a denied request charges none of its checks", testAtomicity},
	{"zero hits judge one hit and charge nothing", testPeek},
	{"several hits are charged at once", testHits},
	{"unenforced checks report over but never deny", testShadow},
	{"duplicate keys see each other's charge", testDuplicateKeys},
	{"a limit override counts on the same counter", testOverride},
	{"limits of different periods on one key count separately", testBurstAndQuota},
	{"a zero limit denies every request and can never succeed", testZeroLimit},
	{"an empty request is allowed", testEmpty},
	{"an invalid check is an error that is not ErrUnavailable", testInvalid},
	{"a cancelled context is ErrUnavailable", testCancelled},
	{"random requests agree with the reference", testDifferential},
	{"concurrent requests never over-admit", testConcurrent},
}

// fixture holds one subtest's store and key prefix.
type fixture struct {
	t      *testing.T
	store  quota.Store
	prefix string
}

func newFixture(t *testing.T, s quota.Store) *fixture {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random key prefix: %v", err)
	}
	return &fixture{t: t, store: s, prefix: fmt.Sprintf("quotatest:%x:", b)}
}

// check is an enforced check of hits on the counter name.
func (f *fixture) check(name string, l quota.Limit, hits uint64) quota.Check {
	return quota.Check{Key: f.prefix + name, Tag: f.prefix, Limit: l, Hits: hits, Enforce: true}
}

func (f *fixture) apply(now time.Time, checks ...quota.Check) []quota.Result {
	f.t.Helper()
	got, err := f.store.Apply(f.t.Context(), now, checks)
	if err != nil {
		f.t.Fatalf("Apply(%s, %s): %v", now.Format(time.RFC3339Nano), describe(checks), err)
	}
	if len(got) != len(checks) {
		f.t.Fatalf("Apply(%s, %s) returned %d results, want %d", now.Format(time.RFC3339Nano), describe(checks), len(got), len(checks))
	}
	return got
}

// expect applies checks at now and requires exactly the want results.
func (f *fixture) expect(now time.Time, checks []quota.Check, want ...quota.Result) {
	f.t.Helper()
	got := f.apply(now, checks...)
	for i := range want {
		if !same(got[i], want[i]) {
			f.t.Fatalf("at %s, %s: result %d\n got %s\nwant %s",
				now.Format(time.RFC3339Nano), describe(checks), i, format(got[i]), format(want[i]))
		}
	}
}

// same compares results field by field. An Unknown result was not read, so
// it only promises its Limit, and Over only when no state could make it fit:
// a store may say Over only where the reference does.
func same(got, want quota.Result) bool {
	if got.Unknown {
		return got.Limit == want.Limit && (!got.Over || want.Over)
	}
	return got == want
}

func format(r quota.Result) string {
	return fmt.Sprintf("{Over:%t Limit:%d Remaining:%d ResetAfter:%s RetryAfter:%s Unknown:%t}",
		r.Over, r.Limit, r.Remaining, r.ResetAfter, r.RetryAfter, r.Unknown)
}

func describe(checks []quota.Check) string {
	parts := make([]string, len(checks))
	for i, c := range checks {
		parts[i] = fmt.Sprintf("{%s %s hits=%d enforce=%t}", c.Key, c.Limit, c.Hits, c.Enforce)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func ok(limit, remaining uint64, reset time.Duration) quota.Result {
	return quota.Result{Limit: limit, Remaining: remaining, ResetAfter: reset}
}

func over(limit, remaining uint64, reset, retry time.Duration) quota.Result {
	return quota.Result{Over: true, Limit: limit, Remaining: remaining, ResetAfter: reset, RetryAfter: retry}
}

// windowStart is the first start of an epoch-aligned window of period that
// is not before the real clock, so that stores keyed on real time keep the
// suite's counters alive.
func windowStart(period time.Duration) time.Time {
	p := period.Microseconds()
	return time.UnixMicro((time.Now().UnixMicro()/p + 1) * p)
}

func fixed(n uint64, period time.Duration) quota.Limit {
	return quota.Limit{Requests: n, Period: period, Algorithm: quota.FixedWindow}
}

func sliding(n uint64, period time.Duration) quota.Limit {
	return quota.Limit{Requests: n, Period: period, Algorithm: quota.SlidingWindow}
}

func bucket(n uint64, period time.Duration) quota.Limit {
	return quota.Limit{Requests: n, Period: period, Algorithm: quota.TokenBucket}
}

func testFixedWindow(t *testing.T, f *fixture) {
	l := fixed(3, time.Minute)
	t0 := windowStart(time.Minute)
	c := []quota.Check{f.check("a", l, 1)}
	f.expect(t0, c, ok(3, 2, 60*time.Second))
	f.expect(t0.Add(time.Second), c, ok(3, 1, 59*time.Second))
	f.expect(t0.Add(2*time.Second), c, ok(3, 0, 58*time.Second))
	f.expect(t0.Add(30*time.Second), c, over(3, 0, 30*time.Second, 30*time.Second))
	f.expect(t0.Add(time.Minute-time.Microsecond), c, over(3, 0, time.Microsecond, time.Microsecond))
	// The next window starts empty.
	f.expect(t0.Add(time.Minute), c, ok(3, 2, time.Minute))
	f.expect(t0.Add(time.Minute+time.Millisecond), c, ok(3, 1, time.Minute-time.Millisecond))
	// A window that was skipped entirely does not count.
	f.expect(t0.Add(5*time.Minute+time.Second), c, ok(3, 2, 59*time.Second))
}

func testSlidingWindow(t *testing.T, f *fixture) {
	l := sliding(10, time.Minute)
	t0 := windowStart(time.Minute)
	f.expect(t0, []quota.Check{f.check("a", l, 8)}, ok(10, 2, time.Minute))
	// 15s into the next window, 45/60 of the previous 8 still count: 6.
	t1 := t0.Add(75 * time.Second)
	f.expect(t1, []quota.Check{f.check("a", l, 1)}, ok(10, 3, 45*time.Second))
	// 6 + 1 + 4 > 10 until the weighted share drops below 6, 1µs later.
	four := []quota.Check{f.check("a", l, 4)}
	f.expect(t1, four, over(10, 3, 45*time.Second, time.Microsecond))
	f.expect(t1.Add(time.Microsecond), four, ok(10, 0, 45*time.Second-time.Microsecond))
	// 5 + 5 + 1 > 10 until the share drops below 5: at 22.5s + 1µs.
	one := []quota.Check{f.check("a", l, 1)}
	f.expect(t1.Add(time.Microsecond), one, over(10, 0, 45*time.Second-time.Microsecond, 7500*time.Millisecond))
	f.expect(t0.Add(82500*time.Millisecond), one, over(10, 0, 37500*time.Millisecond, time.Microsecond))
	f.expect(t0.Add(82500*time.Millisecond+time.Microsecond), one, ok(10, 0, 37500*time.Millisecond-time.Microsecond))
	// A full window later the 6 of this window weigh 6*(50/60) = 5.
	f.expect(t0.Add(130*time.Second), one, ok(10, 4, 50*time.Second))
	// Two windows later nothing is left.
	f.expect(t0.Add(240*time.Second), one, ok(10, 9, time.Minute))
	// More than the limit can never pass: RetryAfter 0.
	f.expect(t0.Add(240*time.Second), []quota.Check{f.check("a", l, 11)}, over(10, 9, time.Minute, 0))
}

func testTokenBucket(t *testing.T, f *fixture) {
	l := bucket(5, 10*time.Second) // one token every 2s
	t0 := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	c := []quota.Check{f.check("a", l, 1)}
	for i := range uint64(5) {
		f.expect(t0, c, ok(5, 4-i, time.Duration(i+1)*2*time.Second))
	}
	f.expect(t0, c, over(5, 0, 10*time.Second, 2*time.Second))
	f.expect(t0.Add(2*time.Second-time.Microsecond), c, over(5, 0, 8*time.Second+time.Microsecond, time.Microsecond))
	f.expect(t0.Add(2*time.Second), c, ok(5, 0, 10*time.Second))
	f.expect(t0.Add(3*time.Second), c, over(5, 0, 9*time.Second, time.Second))
	f.expect(t0.Add(9*time.Second), c, ok(5, 2, 5*time.Second))
	// Two tokens at once wait for two intervals' worth.
	two := []quota.Check{f.check("a", l, 2)}
	f.expect(t0.Add(9*time.Second), two, ok(5, 0, 9*time.Second))
	f.expect(t0.Add(9*time.Second), two, over(5, 0, 9*time.Second, 3*time.Second))
	// A full bucket after the backlog drains.
	f.expect(t0.Add(time.Minute), c, ok(5, 4, 2*time.Second))
	// More than the burst can never pass.
	f.expect(t0.Add(time.Minute), []quota.Check{f.check("a", l, 6)}, over(5, 4, 2*time.Second, 0))
}

func testTokenBucketFractional(t *testing.T, f *fixture) {
	// 7 per minute: the interval is 8571428.57µs, charged as 8571428µs.
	l := bucket(7, time.Minute)
	const interval = 8571428 * time.Microsecond
	t0 := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	c := []quota.Check{f.check("a", l, 1)}
	for i := range uint64(7) {
		f.expect(t0, c, ok(7, 6-i, time.Duration(i+1)*interval))
	}
	f.expect(t0, c, over(7, 0, 7*interval, 8*interval-time.Minute))
	f.expect(t0.Add(8*interval-time.Minute), c, ok(7, 0, time.Minute))
}

func testMonthly(t *testing.T, f *fixture) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatalf("load Europe/London: %v", err)
	}
	l := quota.Limit{Requests: 2, Monthly: true, Location: london, Algorithm: quota.FixedWindow}
	local := time.Now().In(london)
	start := time.Date(local.Year(), local.Month()+1, 1, 0, 0, 0, 0, london)
	end := start.AddDate(0, 1, 0)
	c := []quota.Check{f.check("a", l, 1)}
	before := start.Add(-time.Minute)
	f.expect(before, c, ok(2, 1, time.Minute))
	f.expect(before, c, ok(2, 0, time.Minute))
	f.expect(before, c, over(2, 0, time.Minute, time.Minute))
	f.expect(start.Add(-time.Microsecond), c, over(2, 0, time.Microsecond, time.Microsecond))
	// Local midnight on the 1st opens a new month whatever the UTC offset.
	f.expect(start, c, ok(2, 1, end.Sub(start)))
	mid := start.Add(15 * 24 * time.Hour)
	f.expect(mid, c, ok(2, 0, end.Sub(mid)))
	f.expect(mid, c, over(2, 0, end.Sub(mid), end.Sub(mid)))
	f.expect(end, c, ok(2, 1, end.AddDate(0, 1, 0).Sub(end)))
}

func testAtomicity(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	a := f.check("a", fixed(10, time.Hour), 1)
	b := f.check("b", fixed(1, time.Hour), 1)
	tb := f.check("tb", bucket(3, time.Hour), 1)
	sw := f.check("sw", sliding(5, time.Hour), 1)
	f.expect(t0, []quota.Check{a, tb, sw, b}, ok(10, 9, time.Hour), ok(3, 2, time.Hour/3), ok(5, 4, time.Hour), ok(1, 0, time.Hour))
	// b is over: nothing is charged, and the others report their state
	// as it stands, not over.
	for range 3 {
		f.expect(t0, []quota.Check{a, tb, sw, b},
			ok(10, 9, time.Hour), ok(3, 2, time.Hour/3), ok(5, 4, time.Hour), over(1, 0, time.Hour, time.Hour))
	}
	// Later requests see a, tb and sw charged once only.
	f.expect(t0, []quota.Check{a}, ok(10, 8, time.Hour))
	f.expect(t0, []quota.Check{tb}, ok(3, 1, 2*time.Hour/3))
	f.expect(t0, []quota.Check{sw}, ok(5, 3, time.Hour))
}

func testPeek(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	for _, l := range []quota.Limit{fixed(2, time.Hour), sliding(2, time.Hour), bucket(2, time.Hour)} {
		t.Run(l.Algorithm.String(), func(t *testing.T) {
			f := *f
			f.t = t
			peek := []quota.Check{f.check(l.Algorithm.String(), l, 0)}
			charge := []quota.Check{f.check(l.Algorithm.String(), l, 1)}
			f.expect(t0, peek, ok(2, 2, resetAfter(l, 0)))
			f.expect(t0, peek, ok(2, 2, resetAfter(l, 0)))
			f.expect(t0, charge, ok(2, 1, resetAfter(l, 1)))
			f.expect(t0, charge, ok(2, 0, resetAfter(l, 2)))
			r := f.apply(t0, peek...)[0]
			if !r.Over || r.Remaining != 0 || r.RetryAfter <= 0 {
				t.Fatalf("a peek at a full counter: got %s, want over with a RetryAfter", format(r))
			}
			if quota.Allowed(peek, []quota.Result{r}) {
				t.Fatal("an enforced peek at a full counter is allowed")
			}
		})
	}
}

// resetAfter is what ResetAfter reads at the start of an hour-long window
// after n single hits on a limit of 2 per hour.
func resetAfter(l quota.Limit, n int) time.Duration {
	if l.Algorithm == quota.TokenBucket {
		return time.Duration(n) * time.Hour / 2
	}
	return time.Hour
}

func testHits(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	l := fixed(10, time.Hour)
	f.expect(t0, []quota.Check{f.check("a", l, 4)}, ok(10, 6, time.Hour))
	f.expect(t0, []quota.Check{f.check("a", l, 6)}, ok(10, 0, time.Hour))
	f.expect(t0, []quota.Check{f.check("a", l, 1)}, over(10, 0, time.Hour, time.Hour))
	f.expect(t0, []quota.Check{f.check("b", l, 11)}, over(10, 10, time.Hour, 0))
	f.expect(t0, []quota.Check{f.check("b", l, 3)}, ok(10, 7, time.Hour))
	f.expect(t0, []quota.Check{f.check("b", l, 8)}, over(10, 7, time.Hour, time.Hour))
}

func testShadow(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	shadow := f.check("a", fixed(3, time.Hour), 2)
	shadow.Enforce = false
	f.expect(t0, []quota.Check{shadow}, ok(3, 1, time.Hour))
	r := f.apply(t0, shadow)
	if want := over(3, 0, time.Hour, time.Hour); !same(r[0], want) {
		t.Fatalf("shadow check over the limit: got %s, want %s", format(r[0]), format(want))
	}
	if !quota.Allowed([]quota.Check{shadow}, r) {
		t.Fatal("an unenforced check denied the request")
	}
	// It was charged: 4 counted, so even a peek is over now.
	f.expect(t0, []quota.Check{f.check("a", fixed(3, time.Hour), 0)}, over(3, 0, time.Hour, time.Hour))

	// An unenforced check in a request that an enforced one denies is not
	// charged either.
	s2 := f.check("s", fixed(3, time.Hour), 1)
	s2.Enforce = false
	deny := f.check("d", fixed(1, time.Hour), 2)
	f.expect(t0, []quota.Check{s2, deny}, ok(3, 3, time.Hour), over(1, 1, time.Hour, 0))
	f.expect(t0, []quota.Check{s2}, ok(3, 2, time.Hour))
}

func testDuplicateKeys(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	for _, l := range []quota.Limit{fixed(3, time.Hour), sliding(3, time.Hour), bucket(3, time.Hour)} {
		t.Run(l.Algorithm.String(), func(t *testing.T) {
			f := *f
			f.t = t
			c := f.check(l.Algorithm.String(), l, 1)
			reset := func(n int) time.Duration { return resetAfter(l, n) * 2 / 3 }
			if l.Algorithm != quota.TokenBucket {
				reset = func(int) time.Duration { return time.Hour }
			}
			f.expect(t0, []quota.Check{c, c}, ok(3, 2, reset(1)), ok(3, 1, reset(2)))
			// The second would be the fourth hit: denied, neither charged.
			r := f.apply(t0, c, c)
			if r[0].Over || !r[1].Over || quota.Allowed([]quota.Check{c, c}, r) {
				t.Fatalf("two hits with one left: got %s %s, want the second over", format(r[0]), format(r[1]))
			}
			f.expect(t0, []quota.Check{c}, ok(3, 0, reset(3)))
		})
	}
}

func testOverride(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	small := f.check("a", fixed(5, time.Hour), 5)
	large := f.check("a", fixed(10, time.Hour), 1)
	f.expect(t0, []quota.Check{small}, ok(5, 0, time.Hour))
	small.Hits = 1
	f.expect(t0, []quota.Check{small}, over(5, 0, time.Hour, time.Hour))
	f.expect(t0, []quota.Check{large}, ok(10, 4, time.Hour))
	f.expect(t0, []quota.Check{small}, over(5, 0, time.Hour, time.Hour))
}

func testBurstAndQuota(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	burst := f.check("a", fixed(2, 10*time.Second), 1)
	quotaCheck := f.check("a", fixed(3, time.Hour), 1)
	both := []quota.Check{burst, quotaCheck}
	ten := 10 * time.Second
	f.expect(t0, both, ok(2, 1, ten), ok(3, 2, time.Hour))
	f.expect(t0, both, ok(2, 0, ten), ok(3, 1, time.Hour))
	f.expect(t0, both, over(2, 0, ten, ten), ok(3, 1, time.Hour))
	t1 := t0.Add(ten)
	f.expect(t1, both, ok(2, 1, ten), ok(3, 0, time.Hour-ten))
	f.expect(t1, both, ok(2, 1, ten), over(3, 0, time.Hour-ten, time.Hour-ten))
}

// testZeroLimit: requests_per_unit: 0 denies outright. Every check on a
// zero limit is over whatever the counter holds, with RetryAfter 0; it
// denies the rest of the request like any enforced check; unenforced, it is
// still counted, on the counter its period and algorithm name.
func testZeroLimit(t *testing.T, f *fixture) {
	t0 := windowStart(time.Hour)
	for _, l := range []quota.Limit{fixed(0, time.Hour), sliding(0, time.Hour)} {
		t.Run(l.Algorithm.String(), func(t *testing.T) {
			f := *f
			f.t = t
			name := l.Algorithm.String()
			for _, hits := range []uint64{1, 0, 3} {
				f.expect(t0, []quota.Check{f.check(name, l, hits)}, over(0, 0, time.Hour, 0))
			}
			// It denies the whole request: the other check is not charged.
			other := f.check(name+"-other", fixed(10, time.Hour), 1)
			f.expect(t0, []quota.Check{other, f.check(name, l, 1)}, ok(10, 10, time.Hour), over(0, 0, time.Hour, 0))
			f.expect(t0, []quota.Check{other}, ok(10, 9, time.Hour))
			// Unenforced, it reports over, denies nothing and is counted: a
			// larger limit with the same period and algorithm shares its
			// counter and sees the hit.
			shadow := f.check(name+"-shadow", l, 1)
			shadow.Enforce = false
			r := f.apply(t0, shadow)
			if want := over(0, 0, time.Hour, 0); !same(r[0], want) || !quota.Allowed([]quota.Check{shadow}, r) {
				t.Fatalf("an unenforced zero limit: got %s (allowed %t), want %s and allowed",
					format(r[0]), quota.Allowed([]quota.Check{shadow}, r), format(want))
			}
			larger := l
			larger.Requests = 5
			f.expect(t0, []quota.Check{f.check(name+"-shadow", larger, 0)}, ok(5, 4, time.Hour))
		})
	}
	t.Run("calendar month", func(t *testing.T) {
		f := *f
		f.t = t
		l := quota.Limit{Monthly: true, Algorithm: quota.FixedWindow}
		now := time.Now().UTC().Truncate(time.Microsecond)
		end := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		f.expect(now, []quota.Check{f.check("month", l, 1)}, over(0, 0, end.Sub(now).Truncate(time.Microsecond), 0))
	})
}

func testEmpty(t *testing.T, f *fixture) {
	got, err := f.store.Apply(t.Context(), time.Now(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Apply with no checks = %v, %v; want no results and no error", got, err)
	}
}

func testInvalid(t *testing.T, f *fixture) {
	var checks []quota.Check
	for _, l := range []quota.Limit{
		{Requests: 0, Period: time.Second, Algorithm: quota.TokenBucket},
		{Requests: 1, Period: 0},
		{Requests: 1, Period: time.Second, Algorithm: quota.Algorithm(9)},
		{Requests: 1, Monthly: true, Algorithm: quota.TokenBucket},
	} {
		checks = append(checks, f.check("a", l, 1))
	}
	checks = append(checks, f.check("a", fixed(1, time.Second), quota.MaxRequests+1))
	for _, c := range checks {
		if c.Validate() == nil {
			t.Fatalf("%s is valid; the case needs an invalid check", describe([]quota.Check{c}))
		}
		_, err := f.store.Apply(t.Context(), time.Now(), []quota.Check{c})
		switch {
		case err == nil:
			t.Errorf("Apply(%s) = nil error, want one", describe([]quota.Check{c}))
		case errors.Is(err, quota.ErrUnavailable):
			// An invalid check is a bug to fix, not an outage to ride out
			// in the failure mode.
			t.Errorf("Apply(%s) = %v, which wraps ErrUnavailable", describe([]quota.Check{c}), err)
		}
	}
}

func testCancelled(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := f.store.Apply(ctx, time.Now(), []quota.Check{f.check("a", fixed(1, time.Hour), 1)})
	if !errors.Is(err, quota.ErrUnavailable) {
		t.Fatalf("Apply with a cancelled context = %v, want an error wrapping quota.ErrUnavailable", err)
	}
}

// testConcurrent hammers counters from 64 goroutines at one instant in a long
// period, where nothing refills: each algorithm admits exactly its limit, and
// a two-check request is charged on both counters or neither.
func testConcurrent(t *testing.T, f *fixture) {
	const (
		workers = 64
		each    = 8
		n       = 100
	)
	t0 := windowStart(time.Hour)
	for _, l := range []quota.Limit{fixed(n, time.Hour), sliding(n, time.Hour), bucket(n, time.Hour)} {
		t.Run(l.Algorithm.String(), func(t *testing.T) {
			f := *f
			f.t = t
			a := f.check(l.Algorithm.String()+"a", l, 1)
			b := f.check(l.Algorithm.String()+"b", fixed(1000, time.Hour), 1)
			var admitted atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					checks := []quota.Check{a, b}
					if w%2 == 0 {
						checks = []quota.Check{b, a}
					}
					for range each {
						r, err := f.store.Apply(t.Context(), t0, checks)
						if err != nil {
							t.Errorf("Apply: %v", err)
							return
						}
						if quota.Allowed(checks, r) {
							admitted.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if got := admitted.Load(); got != n {
				t.Fatalf("%d concurrent requests on %s admitted %d, want %d", workers*each, l, got, n)
			}
			// b was charged exactly once per admitted request.
			b.Hits = 0
			f.expect(t0, []quota.Check{b}, ok(1000, 1000-n, time.Hour))
		})
	}
}
