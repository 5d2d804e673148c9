package quota

import (
	"testing"
	"time"
)

func FuzzParseAlgorithm(f *testing.F) {
	for _, s := range []string{"", "fixed-window", "sliding-window", "token-bucket", "leaky-bucket", "algorithm(3)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAlgorithm(s)
		if err != nil {
			return
		}
		if s != "" && a.String() != s {
			t.Fatalf("ParseAlgorithm(%q) = %v, which prints as %q", s, a, a.String())
		}
		if a > TokenBucket {
			t.Fatalf("ParseAlgorithm(%q) = %d, not a known algorithm", s, a)
		}
	})
}

// FuzzResult holds every algorithm to its promises from any stored state:
// Over agrees with the state, Remaining never exceeds the limit, and
// RetryAfter is the first instant the same check fits.
func FuzzResult(f *testing.F) {
	f.Add(uint8(0), uint16(3), uint32(60_000), uint16(1), int64(3), int64(0), uint32(10_000_000))
	f.Add(uint8(1), uint16(10), uint32(60_000), uint16(4), int64(1), int64(8), uint32(15_000_000))
	f.Add(uint8(1), uint16(18), uint32(1_000), uint16(13), int64(11), int64(0), uint32(335_785))
	f.Add(uint8(2), uint16(7), uint32(60_000), uint16(1), int64(59_999_996), int64(0), uint32(0))
	f.Add(uint8(2), uint16(5), uint32(10_000), uint16(0), int64(8_000_001), int64(0), uint32(1))
	f.Fuzz(func(t *testing.T, alg uint8, requests uint16, periodMs uint32, hits uint16, a, b int64, offset uint32) {
		l := Limit{Requests: uint64(requests), Period: time.Duration(periodMs) * time.Millisecond, Algorithm: Algorithm(alg % 3)}
		if l.Validate() != nil {
			return
		}
		now := time.UnixMicro(1_750_000_000_000_000 + int64(offset))
		ch := Check{Key: "k", Limit: l, Hits: uint64(hits), Enforce: true}
		o := Plan(now, []Check{ch})[0]
		c := counters{}
		switch o.Alg {
		case TokenBucket: // a TAT from now to far past the period
			if a = o.Now + mod(a, 3*o.Length); a > o.Now {
				c[o.Key] = a
			}
		case SlidingWindow:
			c[o.Key], c[o.PrevKey] = mod(a, 3*o.Limit+3), mod(b, 3*o.Limit+3)
		default:
			c[o.Key] = mod(a, 3*o.Limit+3)
		}
		_, rs := c.clone().apply(now, ch)
		r := rs[0]
		if r.Remaining > l.Requests || r.Limit != l.Requests {
			t.Fatalf("Remaining %d, Limit %d on %s", r.Remaining, r.Limit, l)
		}
		probeRetry(t, 0, c, now, ch, r)
	})
}
