package redisstore

import (
	"sync"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// overCache remembers the stored value of keys that Redis found over a
// limit, for as long as that denial lasts, and judges later requests on
// them in Go with quota.Step, exactly as the script would on that value.
//
// A remembered value can only be stale low: counters and TATs only grow
// while they matter (other replicas charge, time is an argument and not a
// decrease), so a request found over on the remembered value is over in
// Redis too, and denying it without a round trip is sound. Its Result is
// computed from the remembered value, so it is exact when this store is the
// only writer and otherwise errs optimistic (Remaining too high, RetryAfter
// too short), never the other way. Because the check is recomputed with the
// request's own limit and hits, a limit override or a request for fewer
// hits is judged on its own terms, not on the one that filled the cache.
//
// The one way a value decreases is a Cluster refund; a refunded charge
// remembered here keeps denying until the entry expires, which is the
// transient over-counting the refund documentation already allows.
//
// Time is always the ops' Now, so the cache follows the caller's clock.
type overCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]cacheEntry
}

type cacheEntry struct {
	value int64 // the key's stored value (count or TAT) when last read
	until int64 // µs: the denial that brought it here ends then
}

func newOverCache(max int) *overCache {
	return &overCache{max: max, entries: make(map[string]cacheEntry)}
}

// deny answers a request from the cache when an enforced op whose keys are
// remembered is over: the ops whose keys are all remembered get their exact
// Result (as denied: nothing is charged), the others Unknown, since they
// were not read. Unknown results are Over only when no state could make
// them fit (more hits than the limit).
func (c *overCache) deny(ops []quota.Op) ([]quota.Result, bool) {
	c.mu.Lock()
	// Most requests touch no remembered key: answer them without
	// allocating.
	candidate := false
	for i := range ops {
		if ops[i].Enforce {
			if _, ok := c.entries[ops[i].Key]; ok {
				candidate = true
				break
			}
		}
	}
	if !candidate {
		c.mu.Unlock()
		return nil, false
	}
	known := make(map[string]int64, 2*len(ops))
	look := func(k string, now int64) {
		if _, ok := known[k]; ok || k == "" {
			return
		}
		e, ok := c.entries[k]
		switch {
		case !ok:
		case now >= e.until:
			delete(c.entries, k)
		default:
			known[k] = e.value
		}
	}
	for i := range ops {
		look(ops[i].Key, ops[i].Now)
		look(ops[i].PrevKey, ops[i].Now)
	}
	c.mu.Unlock()

	isKnown := func(o *quota.Op) bool {
		if _, ok := known[o.Key]; !ok {
			return false
		}
		_, ok := known[o.PrevKey]
		return o.PrevKey == "" || ok
	}
	// Ops on keys that are not remembered read 0 here; their judged states
	// are discarded, and their tentative charges touch only their own keys,
	// so they cannot change how a remembered key is judged.
	_, judged, _ := quota.Step(ops, func(k string) int64 { return known[k] })
	denied := false
	for i := range ops {
		if ops[i].Enforce && isKnown(&ops[i]) && ops[i].Over(judged[i]) {
			denied = true
			break
		}
	}
	if !denied {
		return nil, false
	}
	res := make([]quota.Result, len(ops))
	for i := range ops {
		o := &ops[i]
		if isKnown(o) {
			res[i] = o.Result(judged[i], false)
			continue
		}
		res[i] = quota.Result{Over: o.Over(quota.State{}), Limit: uint64(o.Limit), Unknown: true}
	}
	return res, true
}

// remember records what Redis answered. judged are the states the script
// judged each op on and allowed whether it charged; from them the stored
// value of every key of the request, after the request, is known exactly.
// Keys already remembered are refreshed; the keys of enforced ops that were
// over, with a wait, are added until that wait ends.
func (c *overCache) remember(ops []quota.Op, judged []quota.State, allowed bool, res []quota.Result) {
	if allowed && !c.holdsAny(ops) {
		return // the common case: nothing to refresh, nothing to add
	}
	// A key's stored value is the state the first op touching it was
	// judged on; later ops saw the earlier ones' tentative charges.
	stored := make(map[string]int64, 2*len(ops))
	for i := range ops {
		o := &ops[i]
		if _, ok := stored[o.Key]; !ok {
			stored[o.Key] = judged[i].A
		}
		if _, ok := stored[o.PrevKey]; !ok && o.PrevKey != "" {
			stored[o.PrevKey] = judged[i].B
		}
	}
	if allowed {
		_, _, writes := quota.Step(ops, func(k string) int64 { return stored[k] })
		for k, v := range writes {
			stored[k] = v
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range stored {
		if e, ok := c.entries[k]; ok {
			e.value = v
			c.entries[k] = e
		}
	}
	if allowed {
		return
	}
	add := func(k string, now, until int64) {
		e, ok := c.entries[k]
		if !ok {
			c.makeRoom(now)
		}
		c.entries[k] = cacheEntry{value: stored[k], until: max(e.until, until)}
	}
	for i := range ops {
		o := &ops[i]
		if !o.Enforce || !res[i].Over || res[i].RetryAfter <= 0 {
			continue
		}
		until := o.Now + res[i].RetryAfter.Microseconds()
		add(o.Key, o.Now, until)
		if o.PrevKey != "" {
			add(o.PrevKey, o.Now, until)
		}
	}
}

func (c *overCache) holdsAny(ops []quota.Op) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range ops {
		if _, ok := c.entries[ops[i].Key]; ok {
			return true
		}
		if _, ok := c.entries[ops[i].PrevKey]; ok && ops[i].PrevKey != "" {
			return true
		}
	}
	return false
}

// makeRoom keeps the cache under max: expired entries go first; if too few
// have expired, arbitrary ones do (Go's map order is random) down to 7/8 of
// max, so the sweep runs once per max/8 inserts, not on every one. An
// evicted entry only costs a Redis call later.
func (c *overCache) makeRoom(now int64) {
	if len(c.entries) < c.max {
		return
	}
	for k, e := range c.entries {
		if now >= e.until {
			delete(c.entries, k)
		}
	}
	target := c.max - max(c.max/8, 1)
	for k := range c.entries {
		if len(c.entries) <= target {
			break
		}
		delete(c.entries, k)
	}
}

func (c *overCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
