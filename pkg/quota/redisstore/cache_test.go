package redisstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// cached is a store made of the cache in front of a map and quota.Step,
// standing in for Redis, so the cache's logic is tested without a server.
type cached struct {
	cache *overCache
	m     model
	calls int // requests that reached the "Redis"
}

func (c *cached) apply(now time.Time, checks []quota.Check) []quota.Result {
	ops := quota.Plan(now, checks)
	if res, ok := c.cache.deny(ops); ok {
		return res
	}
	c.calls++
	allowed, judged, writes := quota.Step(ops, func(k string) int64 { return c.m[k] })
	for k, v := range writes {
		c.m[k] = v
	}
	res := make([]quota.Result, len(ops))
	for i := range ops {
		res[i] = ops[i].Result(judged[i], allowed)
	}
	c.cache.remember(ops, judged, allowed, res)
	return res
}

func TestCacheDeniesRepeatsWithExactResults(t *testing.T) {
	c := &cached{cache: newOverCache(100), m: model{}}
	ref := model{}
	lim := quota.Limit{Requests: 2, Period: time.Minute}
	other := quota.Limit{Requests: 50, Period: time.Hour, Algorithm: quota.TokenBucket}
	req := []quota.Check{
		{Key: "app", Limit: lim, Hits: 1, Enforce: true},
		{Key: "other", Limit: other, Hits: 1, Enforce: true},
	}
	now := base
	// Two admitted, then a denial from Redis that fills the cache.
	for range 3 {
		c.apply(now, req)
		ref.apply(now, req)
		now = now.Add(time.Second)
	}
	calls := c.calls
	res := c.apply(now, req)
	want := ref.apply(now, req)
	if c.calls != calls {
		t.Fatalf("the over-limit request reached Redis; want it denied from the cache")
	}
	if diff := cmp.Diff(want[0], res[0]); diff != "" {
		t.Fatalf("cached result differs from Redis's (-want +got):\n%s", diff)
	}
	if !res[1].Unknown || res[1].Over || res[1].Limit != 50 {
		t.Fatalf("unread check = %+v, want Unknown, not Over, Limit 50", res[1])
	}

	// A limit override on the same counter is judged on its own terms.
	bigger := []quota.Check{{Key: "app", Limit: quota.Limit{Requests: 5, Period: time.Minute}, Hits: 1, Enforce: true}}
	if got := c.apply(now, bigger); got[0].Over {
		t.Fatalf("override of 5 on a counter at 2 = %+v, want admitted", got[0])
	}
	// The override's charge refreshed the remembered count.
	res = c.apply(now, req)
	if res[0].Remaining != 0 || !res[0].Over {
		t.Fatalf("after the override's charge: %+v", res[0])
	}

	// At the window's end the entry is useless and the request goes to
	// Redis again.
	calls = c.calls
	c.apply(base.Add(time.Minute), req)
	if c.calls != calls+1 {
		t.Fatal("the request after the window end did not reach Redis")
	}
}

func TestCacheIgnoresUnenforcedAndFewerHits(t *testing.T) {
	tests := []struct {
		name string
		req  quota.Check
	}{
		{"unenforced check", quota.Check{Key: "k", Limit: quota.Limit{Requests: 3, Period: time.Minute}, Hits: 1}},
		{"fewer hits than the one judged", quota.Check{Key: "k", Limit: quota.Limit{Requests: 3, Period: time.Minute}, Hits: 1, Enforce: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cached{cache: newOverCache(100), m: model{}}
			big := tt.req
			big.Hits, big.Enforce = 3, true
			c.apply(base, []quota.Check{{Key: "k", Limit: big.Limit, Hits: 1, Enforce: true}})
			if res := c.apply(base, []quota.Check{big}); !res[0].Over {
				t.Fatalf("3 hits on 1 of 3 used: %+v, want over", res[0])
			}
			calls := c.calls
			res := c.apply(base, []quota.Check{tt.req})
			if c.calls != calls+1 || res[0].Over {
				t.Fatalf("%s: calls %d→%d, result %+v; want a Redis call that admits", tt.name, calls, c.calls, res[0])
			}
		})
	}
}

// Against the same random streams as the script's differential test, the
// cache must never change a decision, and the checks it answers must match
// Redis exactly; the checks it does not read are Unknown.
func TestCacheNeverChangesADecision(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 9))
			c := &cached{cache: newOverCache(1000), m: model{}}
			ref := model{}
			now := base
			var denied int
			for i := range 2000 {
				now = now.Add(time.Duration(r.IntN(300)) * time.Millisecond)
				checks := randomChecks(r, []string{"", "a"})
				got := c.apply(now, checks)
				want := ref.apply(now, checks)
				if quota.Allowed(checks, got) != quota.Allowed(checks, want) {
					t.Fatalf("request %d: cache decided %v, Redis %v", i, quota.Allowed(checks, got), quota.Allowed(checks, want))
				}
				for k := range got {
					if got[k].Unknown {
						if got[k].Limit != want[k].Limit || (got[k].Over && !want[k].Over) {
							t.Fatalf("request %d check %d: unknown result %+v contradicts %+v", i, k, got[k], want[k])
						}
						continue
					}
					if got[k] != want[k] {
						t.Fatalf("request %d check %d: got %+v, want %+v", i, k, got[k], want[k])
					}
				}
				if !quota.Allowed(checks, want) {
					denied++
				}
			}
			if denied == 0 || c.calls >= 2000 {
				t.Fatalf("%d denials, %d of 2000 requests reached Redis: the cache was not exercised", denied, c.calls)
			}
			t.Logf("%d denials, %d of 2000 requests reached Redis", denied, c.calls)
		})
	}
}

func TestCacheStaysBounded(t *testing.T) {
	c := &cached{cache: newOverCache(64), m: model{}}
	lim := quota.Limit{Requests: 1, Period: time.Hour}
	for i := range 1000 {
		req := []quota.Check{{Key: fmt.Sprint("k", i), Limit: lim, Hits: 1, Enforce: true}}
		c.apply(base, req)
		if res := c.apply(base, req); !res[0].Over {
			t.Fatalf("second hit on a limit of 1: %+v, want over", res[0])
		}
		if n := c.cache.len(); n > 64 {
			t.Fatalf("after %d inserts the cache holds %d entries, max 64", i+1, n)
		}
	}
}
