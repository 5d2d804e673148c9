package quota

import (
	"math"
	"strconv"
	"time"
)

// Op is a Check made concrete at one instant: the physical keys a store reads
// and writes, and integer parameters in microseconds. The Redis Lua script
// receives exactly these fields and mirrors Over and Charge line for line;
// keep the two in step (the conformance suite checks they agree).
type Op struct {
	Alg     Algorithm
	Key     string // fixed: the window's counter; sliding: the current window's; token bucket: the TAT
	PrevKey string // sliding only: the previous window's counter
	Limit   int64
	Hits    int64
	Enforce bool
	Now     int64 // µs since the Unix epoch
	Start   int64 // fixed, sliding: the current window's start, µs
	Length  int64 // fixed, sliding: the window's length; token bucket: the period; µs
}

// State is what a store keeps for an Op: fixed window A=count; sliding
// window A=current count, B=previous count; token bucket A=theoretical
// arrival time in µs (0 when the key is absent).
type State struct{ A, B int64 }

// Plan turns checks into ops at now. Keys are "{tag}key|limitID|window", so
// that the limit and the window are part of the counter's identity and a
// request's keys with one tag share a Redis Cluster slot.
func Plan(now time.Time, checks []Check) []Op {
	ops := make([]Op, len(checks))
	us := now.UnixMicro()
	var scratch [160]byte
	for i, c := range checks {
		b := append(scratch[:0], '{')
		b = append(b, c.Tag...)
		b = append(b, '}')
		b = append(b, c.Key...)
		b = append(b, '|')
		b = c.Limit.appendID(b)
		o := Op{
			Alg:     c.Limit.Algorithm,
			Limit:   int64(c.Limit.Requests),
			Hits:    int64(c.Hits),
			Enforce: c.Enforce,
			Now:     us,
		}
		switch {
		case c.Limit.Monthly:
			s, e := c.Limit.monthBounds(now)
			o.Start, o.Length = s.UnixMicro(), e.UnixMicro()-s.UnixMicro()
			o.Key = string(strconv.AppendInt(append(b, '|'), o.Start, 10))
		case o.Alg == TokenBucket:
			o.Length = c.Limit.Period.Microseconds()
			o.Key = string(b)
		default:
			o.Length = c.Limit.Period.Microseconds()
			o.Start = us - mod(us, o.Length)
			b = append(b, '|')
			n := len(b)
			o.Key = string(strconv.AppendInt(b, o.Start/o.Length, 10))
			if o.Alg == SlidingWindow {
				o.PrevKey = string(strconv.AppendInt(b[:n], o.Start/o.Length-1, 10))
			}
		}
		ops[i] = o
	}
	return ops
}

// appendID appends ID's form of the limit to b without allocating.
func (l Limit) appendID(b []byte) []byte {
	b = append(b, "fst"[l.Algorithm%3])
	switch {
	case l.Monthly:
		return append(append(b, 'M'), l.loc().String()...)
	case l.Period%time.Millisecond != 0:
		// Milliseconds alone would give 1.5ms and 1ms one counter.
		return append(strconv.AppendInt(b, l.Period.Microseconds(), 10), "us"...)
	default:
		return strconv.AppendInt(b, l.Period.Milliseconds(), 10)
	}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// test is the number of hits the op is judged by: a zero-hit check asks
// whether one more hit would fit.
func (o Op) test() int64 { return max(o.Hits, 1) }

// slidingPrev is the previous window's weighted share, as the Lua script
// computes it: math.floor(prev * (length - elapsed) / length) in doubles.
func (o Op) slidingPrev(prev int64) int64 {
	elapsed := o.Now - o.Start
	return int64(math.Floor(float64(prev) * float64(o.Length-elapsed) / float64(o.Length)))
}

// interval is the token bucket's emission interval in µs, as a double.
func (o Op) interval() float64 { return float64(o.Length) / float64(o.Limit) }

// cost is what h hits add to the token bucket's TAT: whole µs, rounded down,
// as the Lua script computes it: math.floor(h * (length / limit)). Over and
// Charge use the same integer so that N single hits at one instant cost at
// most N*interval <= Length and a burst of N is always admitted; rounding to
// nearest instead lets the rounding pile up and cut the burst short (7 per
// minute admitted only 6). Rounding down over-admits by under 1µs per hit,
// and Validate keeps the interval at 1µs or more so that a hit never costs 0.
// One multiplication and no addition, so no platform may fuse it into an FMA
// and differ from the script.
func (o Op) cost(h int64) int64 { return int64(math.Floor(float64(h) * o.interval())) }

// Over reports whether the op's test hits do not fit in state s.
func (o Op) Over(s State) bool {
	switch o.Alg {
	case SlidingWindow:
		return o.slidingPrev(s.B)+s.A+o.test() > o.Limit
	case TokenBucket:
		return max(s.A, o.Now)-o.Now+o.cost(o.test()) > o.Length
	default:
		return s.A+o.test() > o.Limit
	}
}

// Charge returns s after the op's hits are counted.
func (o Op) Charge(s State) State {
	switch o.Alg {
	case TokenBucket:
		return State{A: max(s.A, o.Now) + o.cost(o.Hits)}
	default:
		return State{A: s.A + o.Hits, B: s.B}
	}
}

// ExpireAt is when the op's Key may be dropped after it holds s, µs.
func (o Op) ExpireAt(s State) int64 {
	switch o.Alg {
	case SlidingWindow:
		return o.Start + 2*o.Length
	case TokenBucket:
		return max(s.A, o.Now) + 1000
	default:
		return o.Start + o.Length
	}
}

// Result reports the op given the state it was judged on (before) and
// whether the request was charged.
func (o Op) Result(before State, charged bool) Result {
	r := Result{Over: o.Over(before), Limit: uint64(o.Limit)}
	after := before
	if charged {
		after = o.Charge(before)
	}
	switch o.Alg {
	case SlidingWindow:
		used := o.slidingPrev(after.B) + after.A
		r.Remaining = remaining(o.Limit, used)
		r.ResetAfter = us(o.Start + o.Length - o.Now)
		if r.Over {
			r.RetryAfter = o.slidingRetry(before)
		}
	case TokenBucket:
		// Remaining counts the single hits that Over would admit now.
		backlog := max(after.A-o.Now, 0)
		if room := o.Length - backlog; room > 0 {
			r.Remaining = uint64(min(room/max(o.cost(1), 1), o.Limit))
		}
		r.ResetAfter = us(backlog)
		if r.Over && o.test() <= o.Limit {
			r.RetryAfter = us(max(before.A, o.Now) - o.Now + o.cost(o.test()) - o.Length)
		}
	default:
		r.Remaining = remaining(o.Limit, after.A)
		r.ResetAfter = us(o.Start + o.Length - o.Now)
		if r.Over && o.test() <= o.Limit {
			r.RetryAfter = r.ResetAfter
		}
	}
	return r
}

// slidingRetry finds how long until the test hits fit, by stepping through
// the rest of this window and the next. The weighted share falls linearly,
// so the answer is solved directly, then nudged past rounding.
func (o Op) slidingRetry(s State) time.Duration {
	need := o.test()
	if need > o.Limit {
		return 0
	}
	// Within the current window: prev share must fall to Limit-cur-need.
	if room := o.Limit - s.A - need; room >= 0 && s.B > 0 {
		// floor(prev*(L-e)/L) <= room  <=  prev*(L-e)/L < room+1
		e := o.Length - int64(math.Floor(float64(room+1)*float64(o.Length)/float64(s.B)))
		return o.nudge(s, max(e, o.Now-o.Start))
	}
	// In the next window the current count becomes the previous one.
	next := Op{Alg: o.Alg, Limit: o.Limit, Hits: o.Hits, Start: o.Start + o.Length, Length: o.Length}
	room := o.Limit - need
	e := int64(0)
	if s.A > 0 {
		e = o.Length - int64(math.Floor(float64(room+1)*float64(o.Length)/float64(s.A)))
	}
	next.Now = next.Start + max(e, 0)
	// nudge measures from next.Now, so add the whole way there, not just to
	// the next window's start.
	return next.nudge(State{A: 0, B: s.A}, next.Now-next.Start) + us(next.Now-o.Now)
}

// nudge moves elapsed forward until the op fits, to absorb floating-point
// rounding, and returns the wait from o.Now.
func (o Op) nudge(s State, elapsed int64) time.Duration {
	probe := o
	for i := 0; i < 4; i++ {
		probe.Now = o.Start + elapsed
		if !probe.Over(s) {
			break
		}
		elapsed++
	}
	return us(o.Start + elapsed - o.Now)
}

func remaining(limit, used int64) uint64 {
	if used >= limit {
		return 0
	}
	return uint64(limit - used)
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// Step judges ops in order against states read before the request. A key
// that appears twice (two checks on one counter) sees the earlier check's
// tentative charge, as it would if the two were separate requests. It
// returns whether the request is allowed, the state each op was judged on,
// and the states to write when it is: nil when denied.
//
// Stores call Step under their lock (memstore) or mirror it in Lua
// (redisstore); it is the single definition of "one atomic step".
func Step(ops []Op, read func(key string) int64) (allowed bool, judged []State, writes map[string]int64) {
	pending := make(map[string]int64, len(ops)+1)
	get := func(k string) int64 {
		if v, ok := pending[k]; ok {
			return v
		}
		return read(k)
	}
	judged = make([]State, len(ops))
	allowed = true
	for i, o := range ops {
		s := State{A: get(o.Key)}
		if o.PrevKey != "" {
			s.B = get(o.PrevKey)
		}
		judged[i] = s
		if o.Over(s) && o.Enforce {
			allowed = false
		}
		pending[o.Key] = o.Charge(s).A
	}
	if !allowed {
		return false, judged, nil
	}
	return true, judged, pending
}
