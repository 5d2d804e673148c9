package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Algorithm names a counting method. Each trades memory and precision
// differently; all three are offered because API-manager tiers are written
// against all three.
type Algorithm uint8

const (
	// FixedWindow counts hits in windows aligned to the epoch (or to the
	// calendar month): exact, one counter, but allows up to 2N across a
	// window boundary.
	FixedWindow Algorithm = iota
	// SlidingWindow weights the previous window's count by how much of it
	// still overlaps the sliding period: two counters, smooth at boundaries.
	SlidingWindow
	// TokenBucket is GCRA: one timestamp per key, a burst of up to N, then a
	// steady N per period.
	TokenBucket
)

var algorithmNames = [...]string{"fixed-window", "sliding-window", "token-bucket"}

func (a Algorithm) String() string {
	if int(a) < len(algorithmNames) {
		return algorithmNames[a]
	}
	return "algorithm(" + strconv.Itoa(int(a)) + ")"
}

// ParseAlgorithm accepts the names used in Policy documents; "" means FixedWindow.
func ParseAlgorithm(s string) (Algorithm, error) {
	if s == "" {
		return FixedWindow, nil
	}
	for i, n := range algorithmNames {
		if n == s {
			return Algorithm(i), nil
		}
	}
	return 0, fmt.Errorf("unknown algorithm %q (want fixed-window, sliding-window or token-bucket)", s)
}

// Limit is Requests per Period, or per calendar month in Location when
// Monthly is set. A calendar month exists only for FixedWindow, because a
// month has no fixed length to slide or to refill over.
//
// Requests may be 0 in a fixed or sliding window: every request is then
// Over, with RetryAfter 0 because it can never succeed. envoyproxy/ratelimit
// rule files use requests_per_unit: 0 to deny a descriptor outright, and a
// limit the stores refused would send those requests to the failure mode
// (fail-open by default) instead. A token bucket of 0 has no emission
// interval, so it stays invalid.
type Limit struct {
	Requests  uint64
	Period    time.Duration
	Monthly   bool
	Location  *time.Location // Monthly only; nil means UTC
	Algorithm Algorithm
}

// MaxRequests is the largest Limit.Requests and Check.Hits a store accepts:
// counters and token-bucket arithmetic stay well inside the 2^53 that Lua's
// doubles hold exactly, whatever the window.
const MaxRequests = 1 << 40

// Validate reports a limit that no store could count.
func (l Limit) Validate() error {
	switch {
	case l.Requests == 0 && l.Algorithm == TokenBucket:
		return errors.New("a token bucket needs at least 1 request per period (use a fixed window of 0 to deny every request)")
	case l.Requests > MaxRequests:
		return fmt.Errorf("requests %d is too large", l.Requests)
	case l.Monthly && l.Algorithm != FixedWindow:
		return fmt.Errorf("a calendar month needs fixed-window, not %s", l.Algorithm)
	case !l.Monthly && l.Period < time.Millisecond:
		return fmt.Errorf("period %s is shorter than 1ms", l.Period)
	case !l.Monthly && l.Period > 366*24*time.Hour:
		return fmt.Errorf("period %s is longer than a year", l.Period)
	case l.Algorithm == TokenBucket && l.Requests > uint64(l.Period.Microseconds()):
		// The TAT is kept in whole µs: a shorter interval would cost 0.
		return fmt.Errorf("token bucket of %d per %s is more than one request per microsecond", l.Requests, l.Period)
	case l.Algorithm > TokenBucket:
		return fmt.Errorf("unknown %s", l.Algorithm)
	}
	return nil
}

// ID names the limit inside a counter key, so that two limits on the same
// counter (quota plus burst, or an override) never share state.
func (l Limit) ID() string {
	prefix := [...]string{"f", "s", "t"}[l.Algorithm%3]
	if l.Monthly {
		return prefix + "M" + l.loc().String()
	}
	if l.Period%time.Millisecond != 0 {
		// Milliseconds alone would give 1.5ms and 1ms one counter.
		return prefix + strconv.FormatInt(l.Period.Microseconds(), 10) + "us"
	}
	return prefix + strconv.FormatInt(l.Period.Milliseconds(), 10)
}

func (l Limit) String() string {
	if l.Monthly {
		return fmt.Sprintf("%d/month(%s) %s", l.Requests, l.loc(), l.Algorithm)
	}
	return fmt.Sprintf("%d/%s %s", l.Requests, l.Period, l.Algorithm)
}

// Window is the length of the period the limit counts over, as a
// representative figure for headers: a calendar month reports the length of
// the month containing now.
func (l Limit) Window(now time.Time) time.Duration {
	if l.Monthly {
		s, e := l.monthBounds(now)
		return e.Sub(s)
	}
	return l.Period
}

func (l Limit) loc() *time.Location {
	if l.Location == nil {
		return time.UTC
	}
	return l.Location
}

func (l Limit) monthBounds(now time.Time) (start, end time.Time) {
	t := now.In(l.loc())
	start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, l.loc())
	return start, start.AddDate(0, 1, 0)
}

// Check is one counter to test and charge within a request.
type Check struct {
	// Key identifies the counter (domain, descriptor, policy, group...). The
	// store adds its own prefix; Plan adds the limit and window.
	Key string
	// Tag is the Redis Cluster hash tag: checks of one request that share a
	// tag land in one slot and so in one script call.
	Tag   string
	Limit Limit
	// Hits is the charge. Zero checks without charging: the check is judged
	// as one more hit would be (is this caller throttled right now?).
	Hits uint64
	// Enforce false counts and reports but never denies (shadow mode,
	// stopOnQuotaReach: false).
	Enforce bool
}

// Validate reports a check that no store could apply: an invalid limit, or
// more hits than a counter may take at once. Every Store calls it before
// touching state, so that the stores refuse the same checks; its error is a
// caller's or configuration bug and never wraps ErrUnavailable, so that it is
// not mistaken for an outage and answered in the failure mode.
func (c Check) Validate() error {
	if err := c.Limit.Validate(); err != nil {
		return fmt.Errorf("invalid limit %s: %w", c.Limit, err)
	}
	if c.Hits > MaxRequests {
		return fmt.Errorf("hits %d is more than %d", c.Hits, uint64(MaxRequests))
	}
	return nil
}

// Result is one check's outcome after the request's atomic step.
type Result struct {
	Over       bool          // this counter had no room for the request
	Limit      uint64        // the limit's Requests
	Remaining  uint64        // hits left in the current period after this request
	ResetAfter time.Duration // until the counter is back to full capacity (fixed window: the window end)
	RetryAfter time.Duration // when Over: until the same request could succeed; 0 when it never can
	// Unknown is set on checks that were not read because the request was
	// denied from a store's local over-limit cache: Remaining and ResetAfter
	// mean nothing then, and responses leave them out.
	Unknown bool
}

// Store applies the checks of one request in one atomic step: every check is
// judged against the same state, and if no enforced check is over, all of
// them are charged; otherwise none is.
//
// Errors are technical failures only (the store cannot be reached, a
// deadline passed); a denial is not an error. Callers tell a store failure
// with errors.Is(err, ErrUnavailable) and answer in their configured failure
// mode. A check that fails Check.Validate is refused with that error, which
// does not wrap ErrUnavailable, and nothing is charged.
type Store interface {
	Apply(ctx context.Context, now time.Time, checks []Check) ([]Result, error)
}

// ErrUnavailable wraps every store failure that the caller should treat as
// "the counters cannot be reached".
var ErrUnavailable = errors.New("quota store unavailable")

// Allowed reports whether a request with these results passes: no enforced
// check is over.
func Allowed(checks []Check, results []Result) bool {
	for i := range checks {
		if checks[i].Enforce && results[i].Over {
			return false
		}
	}
	return true
}
