package quotatest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// differentialSteps is the length of each random request stream.
const differentialSteps = 1500

// testDifferential replays seeded random request streams against the store
// and the reference. The fixed seeds make failures reproducible; one fresh
// seed per run widens the search and is printed when it finds a difference.
func testDifferential(t *testing.T, f *fixture) {
	seeds := []uint64{1, 2, 3, rand.Uint64()}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			g := *f
			g.t = t
			g.prefix = fmt.Sprintf("%s%d:", f.prefix, seed)
			differential(t, &g, seed)
		})
	}
}

func differential(t *testing.T, f *fixture, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatalf("load Europe/London: %v", err)
	}
	limits := randomLimits(rng, london)
	keys := []string{"a", "b", "c"}
	ref := newReference()
	clock := streamClock{offset: time.Until(windowStart(time.Hour))}
	for step := range differentialSteps {
		now := clock.next(rng, limits[rng.IntN(len(limits))])
		checks := make([]quota.Check, 1+rng.IntN(4))
		for i := range checks {
			checks[i] = f.check(keys[rng.IntN(len(keys))], limits[rng.IntN(len(limits))], randomHits(rng))
			checks[i].Enforce = rng.IntN(8) != 0
		}
		want := ref.apply(now, checks)
		got := f.apply(now, checks...)
		for i := range want {
			if !same(got[i], want[i]) {
				t.Fatalf("seed %d step %d at %s, %s: result %d\n got %s\nwant %s (reference)",
					seed, step, now.Format(time.RFC3339Nano), describe(checks), i, format(got[i]), format(want[i]))
			}
		}
	}
}

// randomLimits draws a small pool so that requests collide on counters:
// every algorithm, periods from 1s to an hour (never shorter, so that a
// store expiring on the real clock outlives the suite's virtual time),
// calendar months, fractional token intervals, and overrides that differ
// only in Requests and so share a counter (now and then a zero that denies
// outright).
func randomLimits(rng *rand.Rand, loc *time.Location) []quota.Limit {
	periods := []time.Duration{time.Second, 7 * time.Second, time.Minute, time.Hour}
	var limits []quota.Limit
	for range 6 {
		l := quota.Limit{
			Requests:  1 + uint64(rng.IntN(9)),
			Period:    periods[rng.IntN(len(periods))],
			Algorithm: quota.Algorithm(rng.IntN(3)),
		}
		if l.Algorithm == quota.FixedWindow && rng.IntN(4) == 0 {
			l.Monthly, l.Period = true, 0
			if rng.IntN(2) == 0 {
				l.Location = loc
			}
		}
		limits = append(limits, l)
		if rng.IntN(3) == 0 {
			o := l
			o.Requests = 1 + uint64(rng.IntN(20))
			if l.Algorithm != quota.TokenBucket && rng.IntN(6) == 0 {
				o.Requests = 0 // deny outright, on the same counter
			}
			limits = append(limits, o)
		}
	}
	return limits
}

// streamClock gives the random stream its instants: the real clock plus an
// offset that only grows, so that between any two requests the stream's
// time advances at least as much as real time does. A store that expires
// keys on its own clock after ExpireAt-Now (Redis PX) then never drops a
// key the stream still needs, however slowly the requests go. The price is
// that no two requests of the stream share an instant; the fixed cases
// cover that.
type streamClock struct {
	offset time.Duration
	last   time.Time
}

func (c *streamClock) next(rng *rand.Rand, l quota.Limit) time.Time {
	floor := time.Now().Round(0).Add(c.offset)
	if floor.Before(c.last) {
		floor = c.last // the wall clock stepped back
	}
	at := randomInstant(rng, floor, l)
	c.offset += at.Sub(floor)
	c.last = at
	return at
}

// randomInstant mostly keeps time still or moves it within a window, often
// lands within a few microseconds of l's next window boundary (where an
// early or late expiry would show), and now and then jumps past windows
// and months.
func randomInstant(rng *rand.Rand, now time.Time, l quota.Limit) time.Time {
	switch n := rng.IntN(100); {
	case n < 30:
		return now
	case n < 40:
		return now.Add(time.Duration(1+rng.IntN(3)) * time.Microsecond)
	case n < 55:
		if at := windowEnd(now, l).Add(time.Duration(rng.IntN(5)-2) * time.Microsecond); at.After(now) {
			return at
		}
		return now
	case n < 80:
		return now.Add(time.Duration(rng.Int64N(int64(2 * time.Second))))
	case n < 99:
		return now.Add(time.Duration(rng.Int64N(int64(2 * time.Minute))))
	default:
		return now.Add(time.Duration(rng.Int64N(int64(40 * 24 * time.Hour))))
	}
}

// windowEnd is the next instant after now at which l starts a new window:
// its own period boundary (for a token bucket, an arbitrary one), or local
// midnight on the next 1st.
func windowEnd(now time.Time, l quota.Limit) time.Time {
	if !l.Monthly {
		p := l.Period.Microseconds()
		return time.UnixMicro((now.UnixMicro()/p + 1) * p)
	}
	loc := l.Location
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
}

func randomHits(rng *rand.Rand) uint64 {
	switch n := rng.IntN(10); {
	case n == 0:
		return 0
	case n < 7:
		return 1
	default:
		return 2 + uint64(rng.IntN(5))
	}
}
