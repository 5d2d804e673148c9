package tokencache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/tokencache"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected time the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// verifier answers from a script and counts its calls.
type verifier struct {
	mu     sync.Mutex
	answer func(raw string) (*identity.Token, error)
	calls  map[string]int
}

func newVerifier(answer func(raw string) (*identity.Token, error)) *verifier {
	return &verifier{answer: answer, calls: map[string]int{}}
}

func (v *verifier) Verify(_ context.Context, raw string) (*identity.Token, error) {
	v.mu.Lock()
	v.calls[raw]++
	answer := v.answer
	v.mu.Unlock()
	return answer(raw)
}

func (v *verifier) set(answer func(raw string) (*identity.Token, error)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.answer = answer
}

func (v *verifier) count(raw string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls[raw]
}

func valid(exp time.Time) func(string) (*identity.Token, error) {
	return func(raw string) (*identity.Token, error) {
		return &identity.Token{Subject: "sub-" + raw, ClientID: "client", Expiry: exp}, nil
	}
}

func refuse(string) (*identity.Token, error) {
	return nil, fmt.Errorf("introspect: token is not active: %w", identity.ErrInvalid)
}

func down(string) (*identity.Token, error) {
	return nil, fmt.Errorf("introspect: connection refused: %w", identity.ErrUnavailable)
}

var policy = catalog.TokenCachePolicy{
	MaxTTL:       time.Minute,
	NegativeTTL:  10 * time.Second,
	StaleIfError: 5 * time.Minute,
}

func newCache(t *testing.T, v tokencache.Verifier, p catalog.TokenCachePolicy, clk *clock, reg prometheus.Registerer) *tokencache.Cache {
	t.Helper()
	c, err := tokencache.New(v, p, tokencache.Options{Clock: clk.Now, Registerer: reg, Name: "test-idp"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// step is one lookup at an offset from epoch, with what the verifier says
// if asked and what the cache must answer.
type step struct {
	at        time.Duration
	verifier  func(string) (*identity.Token, error)
	wantErr   error // nil: a token
	wantCalls int   // verifier calls so far
}

func TestCacheLifetimes(t *testing.T) {
	soon := epoch.Add(30 * time.Second)
	late := epoch.Add(time.Hour)
	tests := []struct {
		name   string
		policy catalog.TokenCachePolicy
		steps  []step
	}{{
		name:   "a verified token is served from the cache until MaxTTL",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(late), wantCalls: 1},
			{at: 59 * time.Second, verifier: valid(late), wantCalls: 1},
			{at: time.Minute, verifier: valid(late), wantCalls: 2},
			{at: time.Minute + time.Second, verifier: valid(late), wantCalls: 2},
		},
	}, {
		name:   "an entry ends at the token's exp when that comes before MaxTTL",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(soon), wantCalls: 1},
			{at: 29 * time.Second, verifier: valid(soon), wantCalls: 1},
			{at: 30 * time.Second, verifier: refuse, wantErr: identity.ErrInvalid, wantCalls: 2},
		},
	}, {
		name:   "a refusal is remembered for NegativeTTL",
		policy: policy,
		steps: []step{
			{at: 0, verifier: refuse, wantErr: identity.ErrInvalid, wantCalls: 1},
			{at: 9 * time.Second, verifier: valid(late), wantErr: identity.ErrInvalid, wantCalls: 1},
			{at: 10 * time.Second, verifier: valid(late), wantCalls: 2},
		},
	}, {
		name:   "an unavailable verifier is never remembered as a refusal",
		policy: policy,
		steps: []step{
			{at: 0, verifier: down, wantErr: identity.ErrUnavailable, wantCalls: 1},
			{at: 0, verifier: down, wantErr: identity.ErrUnavailable, wantCalls: 2},
			{at: time.Second, verifier: valid(late), wantCalls: 3},
		},
	}, {
		name:   "an error of neither class is treated as unavailable and not remembered",
		policy: policy,
		steps: []step{
			{at: 0, verifier: func(string) (*identity.Token, error) { return nil, errors.New("boom") }, wantErr: identity.ErrUnavailable, wantCalls: 1},
			{at: 0, verifier: valid(late), wantCalls: 2},
		},
	}, {
		name:   "an expired entry serves while the verifier is unavailable, for StaleIfError",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(late), wantCalls: 1},
			{at: time.Minute, verifier: down, wantCalls: 2},
			{at: 6*time.Minute - time.Nanosecond, verifier: down, wantCalls: 3},
			{at: 6 * time.Minute, verifier: down, wantErr: identity.ErrUnavailable, wantCalls: 4},
		},
	}, {
		name:   "a stale entry never serves past the token's exp",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(epoch.Add(90 * time.Second)), wantCalls: 1},
			{at: 89 * time.Second, verifier: down, wantCalls: 2},
			{at: 90 * time.Second, verifier: down, wantErr: identity.ErrUnavailable, wantCalls: 3},
		},
	}, {
		name:   "a stale entry recovers its full life once the verifier answers again",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(late), wantCalls: 1},
			{at: 2 * time.Minute, verifier: down, wantCalls: 2},
			{at: 3 * time.Minute, verifier: valid(late), wantCalls: 3},
			{at: 3*time.Minute + 59*time.Second, verifier: down, wantCalls: 3},
		},
	}, {
		name:   "a refusal replaces a stale entry: a revoked token stops at once",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(late), wantCalls: 1},
			{at: time.Minute, verifier: refuse, wantErr: identity.ErrInvalid, wantCalls: 2},
			{at: time.Minute + time.Second, verifier: down, wantErr: identity.ErrInvalid, wantCalls: 2},
			{at: time.Minute + 10*time.Second, verifier: down, wantErr: identity.ErrUnavailable, wantCalls: 3},
		},
	}, {
		name:   "a refusal is not served stale when the verifier is unavailable",
		policy: policy,
		steps: []step{
			{at: 0, verifier: refuse, wantErr: identity.ErrInvalid, wantCalls: 1},
			{at: 10 * time.Second, verifier: down, wantErr: identity.ErrUnavailable, wantCalls: 2},
		},
	}, {
		name:   "a token already at its exp is returned but not remembered",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(epoch), wantCalls: 1},
			{at: 0, verifier: valid(epoch), wantCalls: 2},
		},
	}, {
		name:   "a token without exp lives MaxTTL",
		policy: policy,
		steps: []step{
			{at: 0, verifier: valid(time.Time{}), wantCalls: 1},
			{at: 59 * time.Second, verifier: down, wantCalls: 1},
			{at: time.Minute, verifier: down, wantCalls: 2},
		},
	}, {
		name:   "zero durations take the defaults",
		policy: catalog.TokenCachePolicy{},
		steps: []step{
			{at: 0, verifier: valid(late), wantCalls: 1},
			{at: tokencache.DefaultMaxTTL - time.Nanosecond, verifier: down, wantCalls: 1},
			{at: tokencache.DefaultMaxTTL + tokencache.DefaultStaleIfError - time.Nanosecond, verifier: down, wantCalls: 2},
			{at: tokencache.DefaultMaxTTL + tokencache.DefaultStaleIfError, verifier: refuse, wantErr: identity.ErrInvalid, wantCalls: 3},
			{at: tokencache.DefaultMaxTTL + tokencache.DefaultStaleIfError + tokencache.DefaultNegativeTTL - time.Nanosecond, verifier: valid(late), wantErr: identity.ErrInvalid, wantCalls: 3},
			{at: tokencache.DefaultMaxTTL + tokencache.DefaultStaleIfError + tokencache.DefaultNegativeTTL, verifier: valid(late), wantCalls: 4},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			v := newVerifier(tt.steps[0].verifier)
			c := newCache(t, v, tt.policy, clk, nil)
			for i, s := range tt.steps {
				clk.Set(epoch.Add(s.at))
				v.set(s.verifier)
				tok, err := c.Verify(context.Background(), "tok")
				switch {
				case s.wantErr == nil && err != nil:
					t.Fatalf("step %d at +%v: error %v, want a token", i, s.at, err)
				case s.wantErr == nil && tok.Subject != "sub-tok":
					t.Fatalf("step %d at +%v: token %+v, want subject sub-tok", i, s.at, tok)
				case s.wantErr != nil && !errors.Is(err, s.wantErr):
					t.Fatalf("step %d at +%v: (%v, %v), want an error wrapping %v", i, s.at, tok, err, s.wantErr)
				case s.wantErr != nil && tok != nil:
					t.Fatalf("step %d at +%v: a token beside the error %v", i, s.at, err)
				}
				if got := v.count("tok"); got != s.wantCalls {
					t.Fatalf("step %d at +%v: verifier called %d times, want %d", i, s.at, got, s.wantCalls)
				}
			}
		})
	}
}

func TestCacheKeepsTokensApart(t *testing.T) {
	clk := newClock()
	v := newVerifier(func(raw string) (*identity.Token, error) {
		if raw == "bad" {
			return refuse(raw)
		}
		return valid(epoch.Add(time.Hour))(raw)
	})
	c := newCache(t, v, policy, clk, nil)
	for range 3 {
		for _, raw := range []string{"a", "b", "bad"} {
			tok, err := c.Verify(context.Background(), raw)
			if raw == "bad" {
				if !errors.Is(err, identity.ErrInvalid) {
					t.Fatalf("Verify(bad) = %v, want ErrInvalid", err)
				}
				continue
			}
			if err != nil || tok.Subject != "sub-"+raw {
				t.Fatalf("Verify(%s) = (%+v, %v)", raw, tok, err)
			}
		}
	}
	for _, raw := range []string{"a", "b", "bad"} {
		if n := v.count(raw); n != 1 {
			t.Errorf("verifier called %d times for %q, want 1", n, raw)
		}
	}
}

func TestCacheMetrics(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewPedanticRegistry()
	v := newVerifier(valid(epoch.Add(time.Hour)))
	c := newCache(t, v, policy, clk, reg)
	ctx := context.Background()

	mustVerify := func(raw string) {
		t.Helper()
		_, _ = c.Verify(ctx, raw)
	}
	mustVerify("a") // miss
	mustVerify("a") // hit
	mustVerify("a") // hit
	v.set(refuse)
	mustVerify("b") // miss
	mustVerify("b") // negative hit
	v.set(down)
	clk.Set(epoch.Add(2 * time.Minute))
	mustVerify("a") // miss, served stale

	want := map[string]float64{
		`portcullis_tokencache_entries{cache="test-idp"}`:                             2,
		`portcullis_tokencache_lookups_total{cache="test-idp",result="hit"}`:          2,
		`portcullis_tokencache_lookups_total{cache="test-idp",result="miss"}`:         3,
		`portcullis_tokencache_lookups_total{cache="test-idp",result="negative_hit"}`: 1,
		`portcullis_tokencache_stale_serves_total{cache="test-idp"}`:                  1,
		`portcullis_tokencache_evictions_total{cache="test-idp"}`:                     0,
	}
	if diff := cmp.Diff(want, metricValues(t, reg)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}

	// A cache rebuilt under the same name (a catalog reload) continues the
	// counters and its gauge reads the new cache.
	c2 := newCache(t, v, policy, clk, reg)
	if _, err := c2.Verify(ctx, "c"); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Verify on the rebuilt cache = %v, want ErrUnavailable", err)
	}
	want[`portcullis_tokencache_entries{cache="test-idp"}`] = 0
	want[`portcullis_tokencache_lookups_total{cache="test-idp",result="miss"}`] = 4
	if diff := cmp.Diff(want, metricValues(t, reg)); diff != "" {
		t.Errorf("metrics after the rebuild (-want +got):\n%s", diff)
	}
}

func TestNewRefusesBadArguments(t *testing.T) {
	v := newVerifier(down)
	tests := []struct {
		name    string
		v       tokencache.Verifier
		policy  catalog.TokenCachePolicy
		opts    tokencache.Options
		wantErr string
	}{
		{name: "nil verifier", v: nil, wantErr: "nil verifier"},
		{name: "negative MaxTTL", v: v, policy: catalog.TokenCachePolicy{MaxTTL: -1}, wantErr: "negative duration"},
		{name: "negative NegativeTTL", v: v, policy: catalog.TokenCachePolicy{NegativeTTL: -1}, wantErr: "negative duration"},
		{name: "negative StaleIfError", v: v, policy: catalog.TokenCachePolicy{StaleIfError: -1}, wantErr: "negative duration"},
		{name: "negative MaxEntries", v: v, opts: tokencache.Options{MaxEntries: -1}, wantErr: "MaxEntries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokencache.New(tt.v, tt.policy, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// blocking is a verifier whose calls wait for release, so that a test can
// hold one call open while others arrive.
type blocking struct {
	calls   atomic.Int32
	release chan struct{}
	sawDone atomic.Bool // a call's context ended before release
	answer  func(string) (*identity.Token, error)
}

func (b *blocking) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	b.calls.Add(1)
	<-b.release
	if ctx.Err() != nil {
		b.sawDone.Store(true)
	}
	return b.answer(raw)
}

func TestConcurrentLookupsShareOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blocking{release: make(chan struct{}), answer: valid(epoch.Add(time.Hour))}
		c := newCache(t, b, policy, newClock(), nil)
		const n = 50
		var wg sync.WaitGroup
		toks := make([]*identity.Token, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { toks[i], errs[i] = c.Verify(context.Background(), "tok") })
		}
		synctest.Wait() // every caller is blocked: one in the verifier, the rest waiting on it
		if got := b.calls.Load(); got != 1 {
			t.Fatalf("verifier called %d times while %d lookups waited, want 1", got, n)
		}
		close(b.release)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || toks[i] != toks[0] {
				t.Fatalf("lookup %d = (%p, %v), want the shared token %p", i, toks[i], errs[i], toks[0])
			}
		}
		if _, err := c.Verify(context.Background(), "tok"); err != nil || b.calls.Load() != 1 {
			t.Fatalf("lookup after the shared call = %v with %d calls, want a hit", err, b.calls.Load())
		}
	})
}

func TestConcurrentRefusalsShareOneCallAndAreAllRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blocking{release: make(chan struct{}), answer: refuse}
		c := newCache(t, b, policy, newClock(), nil)
		const n = 10
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { _, errs[i] = c.Verify(context.Background(), "tok") })
		}
		synctest.Wait()
		close(b.release)
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, identity.ErrInvalid) {
				t.Fatalf("lookup %d = %v, want ErrInvalid", i, err)
			}
		}
		if got := b.calls.Load(); got != 1 {
			t.Fatalf("verifier called %d times, want 1", got)
		}
	})
}

func TestACallerGivingUpDoesNotCancelTheSharedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blocking{release: make(chan struct{}), answer: valid(epoch.Add(time.Hour))}
		c := newCache(t, b, policy, newClock(), nil)

		firstCtx, cancel := context.WithCancel(context.Background())
		firstErr := make(chan error, 1)
		go func() {
			_, err := c.Verify(firstCtx, "tok")
			firstErr <- err
		}()
		synctest.Wait() // the first caller's call is in the verifier
		var secondErr error
		var second *identity.Token
		var wg sync.WaitGroup
		wg.Go(func() { second, secondErr = c.Verify(context.Background(), "tok") })
		synctest.Wait()

		cancel()
		if err := <-firstErr; !errors.Is(err, identity.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("first caller after cancel = %v, want ErrUnavailable wrapping context.Canceled", err)
		}
		close(b.release)
		wg.Wait()
		if secondErr != nil || second == nil {
			t.Fatalf("second caller = (%v, %v), want the token", second, secondErr)
		}
		if b.sawDone.Load() {
			t.Fatal("the verifier's context ended with the first caller's")
		}
		if _, err := c.Verify(context.Background(), "tok"); err != nil || b.calls.Load() != 1 {
			t.Fatalf("lookup after = %v with %d calls, want a hit", err, b.calls.Load())
		}
	})
}

func TestTheFirstCallersDeadlineStillBoundsTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var deadline time.Time
		var hasDeadline bool
		v := tokencache.VerifierFunc(func(ctx context.Context, raw string) (*identity.Token, error) {
			deadline, hasDeadline = ctx.Deadline()
			return valid(epoch.Add(time.Hour))(raw)
		})
		c := newCache(t, v, policy, newClock(), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		want, _ := ctx.Deadline()
		if _, err := c.Verify(ctx, "tok"); err != nil {
			t.Fatal(err)
		}
		if !hasDeadline || !deadline.Equal(want) {
			t.Fatalf("verifier's deadline = %v (%v), want %v", deadline, hasDeadline, want)
		}
	})
}

func TestADoneContextStillGetsAHitButNeverAsksTheVerifier(t *testing.T) {
	clk := newClock()
	v := newVerifier(valid(epoch.Add(time.Hour)))
	c := newCache(t, v, policy, clk, nil)
	if _, err := c.Verify(context.Background(), "cached"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Verify(ctx, "cached"); err != nil {
		t.Errorf("hit with a done context = %v, want the token", err)
	}
	if _, err := c.Verify(ctx, "new"); !errors.Is(err, identity.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("miss with a done context = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	if n := v.count("new"); n != 0 {
		t.Errorf("verifier asked %d times with a done context, want 0", n)
	}
}

func TestAMisbehavingVerifierIsUnavailable(t *testing.T) {
	tests := []struct {
		name string
		v    tokencache.VerifierFunc
	}{
		{name: "panic", v: func(context.Context, string) (*identity.Token, error) { panic("verifier bug") }},
		{name: "neither token nor error", v: func(context.Context, string) (*identity.Token, error) { return nil, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, tt.v, policy, newClock(), nil)
			for range 2 {
				tok, err := c.Verify(context.Background(), "tok")
				if tok != nil || !errors.Is(err, identity.ErrUnavailable) {
					t.Fatalf("Verify = (%v, %v), want ErrUnavailable", tok, err)
				}
			}
			if c.Len() != 0 {
				t.Fatalf("Len = %d after failures, want nothing remembered", c.Len())
			}
		})
	}
}

func TestEvictionKeepsTheCacheWithinMaxEntries(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewPedanticRegistry()
	// Tokens named by their exp in minutes, so the test controls which
	// entry ends soonest.
	v := newVerifier(func(raw string) (*identity.Token, error) {
		if strings.HasPrefix(raw, "bad") {
			return refuse(raw)
		}
		var mins int
		if _, err := fmt.Sscanf(raw, "exp%d", &mins); err != nil {
			return nil, fmt.Errorf("test token %q: %w", raw, identity.ErrUnavailable)
		}
		return valid(epoch.Add(time.Duration(mins) * time.Minute))(raw)
	})
	c, err := tokencache.New(v, catalog.TokenCachePolicy{MaxTTL: time.Hour, StaleIfError: time.Nanosecond, NegativeTTL: time.Second},
		tokencache.Options{Clock: clk.Now, MaxEntries: 3, Registerer: reg, Name: "small"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, raw := range []string{"exp30", "exp10", "exp20", "exp40"} {
		if _, err := c.Verify(ctx, raw); err != nil {
			t.Fatalf("Verify(%s): %v", raw, err)
		}
	}
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3 (MaxEntries)", c.Len())
	}
	// exp10 ended soonest, so it was evicted; the others are hits.
	for _, raw := range []string{"exp30", "exp20", "exp40", "exp10"} {
		if _, err := c.Verify(ctx, raw); err != nil {
			t.Fatalf("Verify(%s): %v", raw, err)
		}
	}
	for raw, want := range map[string]int{"exp30": 1, "exp20": 1, "exp40": 1, "exp10": 2} {
		if got := v.count(raw); got != want {
			t.Errorf("verifier called %d times for %s, want %d", got, raw, want)
		}
	}
	if got := counterValue(t, reg, "portcullis_tokencache_evictions_total"); got != 2 {
		t.Errorf("evictions = %v, want 2 (exp10, then exp20 for exp10's return)", got)
	}

	// Entries past their use are dropped before any live one is evicted.
	clk.Set(epoch.Add(35 * time.Minute)) // exp30 and the re-added exp10 are over
	for _, raw := range []string{"exp50", "exp60"} {
		if _, err := c.Verify(ctx, raw); err != nil {
			t.Fatalf("Verify(%s): %v", raw, err)
		}
	}
	if got := counterValue(t, reg, "portcullis_tokencache_evictions_total"); got != 2 {
		t.Errorf("evictions = %v after inserting beside dead entries, want still 2", got)
	}
	if c.Len() > 3 {
		t.Errorf("Len = %d, want at most 3", c.Len())
	}
}

// metricValues flattens reg's counters and gauges to "name{label=value,...}".
func metricValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	var sum float64
	for k, v := range metricValues(t, reg) {
		if strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum
}
