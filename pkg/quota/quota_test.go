package quota

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London wherever the tests run
)

func TestValidateRejectsLimitsNoStoreCouldCount(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	tests := []struct {
		name  string
		limit Limit
		err   string // substring; "" means valid
	}{
		{"a plain fixed window", Limit{Requests: 10, Period: time.Minute}, ""},
		{"a sliding window", Limit{Requests: 10, Period: time.Second, Algorithm: SlidingWindow}, ""},
		{"a token bucket of one per µs", Limit{Requests: 1000, Period: time.Millisecond, Algorithm: TokenBucket}, ""},
		{"a calendar month in a zone", Limit{Requests: 1, Monthly: true, Location: london}, ""},
		{"a calendar month in UTC", Limit{Requests: 1, Monthly: true}, ""},
		{"the longest period", Limit{Requests: 1, Period: 366 * 24 * time.Hour}, ""},
		{"the largest limit", Limit{Requests: 1 << 40, Period: time.Hour}, ""},
		{"zero requests in a fixed window", Limit{Requests: 0, Period: time.Minute}, ""},
		{"zero requests in a sliding window", Limit{Requests: 0, Period: time.Minute, Algorithm: SlidingWindow}, ""},
		{"zero requests a month", Limit{Requests: 0, Monthly: true, Location: london}, ""},
		{"a token bucket of zero", Limit{Requests: 0, Period: time.Minute, Algorithm: TokenBucket}, "at least 1 request"},
		{"too many requests", Limit{Requests: 1<<40 + 1, Period: time.Hour}, "too large"},
		{"no period", Limit{Requests: 1}, "shorter than 1ms"},
		{"a period under 1ms", Limit{Requests: 1, Period: 999 * time.Microsecond}, "shorter than 1ms"},
		{"a negative period", Limit{Requests: 1, Period: -time.Second}, "shorter than 1ms"},
		{"a period over a year", Limit{Requests: 1, Period: 367 * 24 * time.Hour}, "longer than a year"},
		{"a sliding month", Limit{Requests: 1, Monthly: true, Algorithm: SlidingWindow}, "needs fixed-window"},
		{"a token bucket month", Limit{Requests: 1, Monthly: true, Algorithm: TokenBucket}, "needs fixed-window"},
		{"a token bucket faster than one per µs", Limit{Requests: 1001, Period: time.Millisecond, Algorithm: TokenBucket}, "per microsecond"},
		{"an unknown algorithm", Limit{Requests: 1, Period: time.Second, Algorithm: 3}, "unknown algorithm(3)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.limit.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Validate(%s) = %v, want nil", tc.limit, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Validate(%s) = %v, want an error containing %q", tc.limit, err, tc.err)
			}
		})
	}
}

func TestCheckValidateRejectsWhatNoStoreCouldApply(t *testing.T) {
	hour := Limit{Requests: 10, Period: time.Hour}
	tests := []struct {
		name  string
		check Check
		err   string // substring; "" means valid
	}{
		{"a plain check", Check{Key: "k", Limit: hour, Hits: 1}, ""},
		{"a peek", Check{Key: "k", Limit: hour}, ""},
		{"the most hits", Check{Key: "k", Limit: hour, Hits: MaxRequests}, ""},
		{"a zero limit", Check{Key: "k", Limit: Limit{Period: time.Second}, Hits: 1}, ""},
		{"too many hits", Check{Key: "k", Limit: hour, Hits: MaxRequests + 1}, "hits"},
		{"an invalid limit", Check{Key: "k", Limit: Limit{Requests: 1}, Hits: 1}, "invalid limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.err)
			case errors.Is(err, ErrUnavailable):
				t.Fatalf("Validate() = %v wraps ErrUnavailable; an invalid check is not an outage", err)
			}
		})
	}
}

func TestParseAlgorithmAcceptsPolicyNames(t *testing.T) {
	tests := []struct {
		in   string
		want Algorithm
		err  bool
	}{
		{"", FixedWindow, false},
		{"fixed-window", FixedWindow, false},
		{"sliding-window", SlidingWindow, false},
		{"token-bucket", TokenBucket, false},
		{"leaky-bucket", 0, true},
		{"Fixed-Window", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAlgorithm(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseAlgorithm(%q) = %v, %v; want %v, error %t", tc.in, got, err, tc.want, tc.err)
			}
			if err == nil && tc.in != "" && got.String() != tc.in {
				t.Fatalf("%v.String() = %q, want %q", got, got.String(), tc.in)
			}
		})
	}
	if got := Algorithm(7).String(); got != "algorithm(7)" {
		t.Fatalf("Algorithm(7).String() = %q", got)
	}
}

func TestLimitIDSeparatesCountersThatMustNotShareState(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	ids := map[string]Limit{}
	for _, l := range []Limit{
		{Requests: 1, Period: time.Second},
		{Requests: 1, Period: time.Minute},
		{Requests: 1, Period: time.Millisecond},
		{Requests: 1, Period: 1500 * time.Microsecond},
		{Requests: 1, Period: time.Second, Algorithm: SlidingWindow},
		{Requests: 1, Period: time.Second, Algorithm: TokenBucket},
		{Requests: 1, Monthly: true},
		{Requests: 1, Monthly: true, Location: london},
	} {
		id := l.ID()
		if prev, ok := ids[id]; ok {
			t.Errorf("%s and %s share the ID %q", prev, l, id)
		}
		ids[id] = l
	}
	// An override that differs only in Requests keeps the counter.
	a := Limit{Requests: 5, Period: time.Hour}
	b := Limit{Requests: 50, Period: time.Hour}
	if a.ID() != b.ID() {
		t.Errorf("%s and %s have IDs %q and %q, want one counter", a, b, a.ID(), b.ID())
	}
	// Whole-millisecond IDs are what Redis already holds; keep them.
	if got := (Limit{Requests: 1, Period: time.Minute, Algorithm: TokenBucket}).ID(); got != "t60000" {
		t.Errorf("ID of a 1-minute token bucket = %q, want t60000", got)
	}
}

func TestWindowReportsTheMonthContainingNow(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	monthly := Limit{Requests: 1, Monthly: true, Location: london}
	tests := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"March loses an hour to BST", utc("2025-03-15T12:00:00Z"), 31*24*time.Hour - time.Hour},
		{"October gains one back", utc("2025-10-15T12:00:00Z"), 31*24*time.Hour + time.Hour},
		{"February in a leap year", utc("2024-02-10T00:00:00Z"), 29 * 24 * time.Hour},
		{"February otherwise", utc("2025-02-10T00:00:00Z"), 28 * 24 * time.Hour},
		{"April", utc("2025-04-30T22:59:59Z"), 30 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := monthly.Window(tc.now); got != tc.want {
				t.Fatalf("Window(%s) = %s, want %s", tc.now, got, tc.want)
			}
		})
	}
	if got := (Limit{Requests: 1, Period: 7 * time.Second}).Window(utc("2025-03-15T12:00:00Z")); got != 7*time.Second {
		t.Fatalf("Window of a 7s limit = %s", got)
	}
}

func TestAllowedIgnoresUnenforcedChecks(t *testing.T) {
	checks := []Check{{Enforce: true}, {Enforce: false}}
	tests := []struct {
		name    string
		results []Result
		want    bool
	}{
		{"none over", []Result{{}, {}}, true},
		{"only the shadow check over", []Result{{}, {Over: true}}, true},
		{"the enforced check over", []Result{{Over: true}, {}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Allowed(checks, tc.results); got != tc.want {
				t.Fatalf("Allowed = %t, want %t", got, tc.want)
			}
		})
	}
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}
