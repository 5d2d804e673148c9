package memstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// DefaultMaxKeys bounds memory when Options.MaxKeys is zero: about a million
// counters, on the order of 100 MB with typical key lengths.
const DefaultMaxKeys = 1 << 20

const (
	// shardCount spreads lock contention; a power of two so that the shard
	// is a mask of the key's hash.
	shardCount = 256
	// sweepEvery new keys, a shard looks at sweepSample entries and drops
	// the expired ones, and looks again while most of them were expired.
	// That keeps expired counters from piling up with no goroutine to stop.
	sweepEvery  = 8
	sweepSample = 16
	sweepRounds = 4
	// evictSample entries are looked at when a full shard needs room.
	evictSample = 8
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// MaxKeys bounds the counters held, so that a flood of distinct keys
	// (one per client IP, say) cannot exhaust memory. Zero means
	// DefaultMaxKeys. The bound is enforced per shard, as
	// ceil(MaxKeys/256) each, so it is rounded up to a multiple of 256.
	MaxKeys int
	// Registerer receives the store's metrics. Nil registers nothing; the
	// store still counts.
	Registerer prometheus.Registerer
}

// Store is the embedded quota.Store: counters in sharded maps in this
// process. It suits a single ratelimit replica, or limits meant per replica;
// replicas that must share counters use redisstore.
//
// A full shard evicts, among a random sample of its entries, the expired
// ones, or else the one that expires soonest. Soonest-expiry rather than
// least-recently-used because an evicted counter silently restarts from zero
// and so over-admits: the counter nearest its expiry (the end of its window,
// or a token bucket nearly full again) has the least left to forget. Sampling
// keeps that decision O(1) under a flood of new keys. Evictions are counted
// in portcullis_quota_memstore_evictions_total; a steady rate there means
// MaxKeys is too small.
type Store struct {
	seed     maphash.Seed
	perShard int
	shards   [shardCount]shard
	metrics  metrics
}

type shard struct {
	mu      sync.Mutex
	entries map[string]entry
	inserts uint32 // new keys since the last sweep
	_       [40]byte
}

// entry is one counter: its value and when it may be forgotten, µs since the
// epoch. An entry whose expireAt is not after now reads as absent.
type entry struct {
	value    int64
	expireAt int64
}

var _ quota.Store = (*Store)(nil)

// New returns an empty store. It fails only when its metrics cannot be
// registered.
func New(opts Options) (*Store, error) {
	if opts.MaxKeys < 0 {
		return nil, fmt.Errorf("memstore: MaxKeys %d is negative", opts.MaxKeys)
	}
	maxKeys := opts.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	s := &Store{
		seed:     maphash.MakeSeed(),
		perShard: (maxKeys + shardCount - 1) / shardCount,
	}
	for i := range s.shards {
		s.shards[i].entries = make(map[string]entry)
	}
	s.metrics = newMetrics(s)
	if opts.Registerer != nil {
		if err := s.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("memstore: register metrics: %w", err)
		}
	}
	return s, nil
}

// Apply judges and charges checks in one atomic step, as quota.Store
// requires: it locks every shard the request touches, in ascending order so
// that two requests can never wait on each other, and runs quota.Step under
// those locks. An invalid check is an error that does not wrap
// quota.ErrUnavailable: it is the caller's bug, not the store's failure.
func (s *Store) Apply(ctx context.Context, now time.Time, checks []quota.Check) ([]quota.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore apply: %w: %w", quota.ErrUnavailable, err)
	}
	for i := range checks {
		if err := checks[i].Validate(); err != nil {
			return nil, fmt.Errorf("memstore apply: check %d (%q): %w", i, checks[i].Key, err)
		}
	}
	ops := quota.Plan(now, checks)

	var buf [16]uint16
	locked := buf[:0]
	for i := range ops {
		locked = append(locked, s.shardOf(ops[i].Key))
		if ops[i].PrevKey != "" {
			locked = append(locked, s.shardOf(ops[i].PrevKey))
		}
	}
	slices.Sort(locked)
	locked = slices.Compact(locked)
	for _, i := range locked {
		s.shards[i].mu.Lock()
	}

	nowUS := now.UnixMicro()
	allowed, judged, writes := quota.Step(ops, func(key string) int64 {
		return s.read(key, nowUS)
	})
	if allowed {
		for i := range ops {
			o := &ops[i]
			// Duplicate keys write the same final value twice; harmless.
			v := writes[o.Key]
			s.write(o.Key, entry{value: v, expireAt: o.ExpireAt(quota.State{A: v})}, nowUS)
		}
	}

	for _, i := range locked {
		s.shards[i].mu.Unlock()
	}

	results := make([]quota.Result, len(ops))
	for i := range ops {
		results[i] = ops[i].Result(judged[i], allowed)
	}
	return results, nil
}

func (s *Store) shardOf(key string) uint16 {
	return uint16(maphash.String(s.seed, key) & (shardCount - 1))
}

// read returns the key's value at now, dropping it if it has expired. The
// key's shard must be locked.
func (s *Store) read(key string, now int64) int64 {
	sh := &s.shards[s.shardOf(key)]
	e, ok := sh.entries[key]
	if !ok {
		return 0
	}
	if e.expireAt <= now {
		delete(sh.entries, key)
		s.metrics.expired.Inc()
		return 0
	}
	return e.value
}

// write stores e under key, making room first when the key is new and the
// shard is full. The key's shard must be locked.
func (s *Store) write(key string, e entry, now int64) {
	sh := &s.shards[s.shardOf(key)]
	if _, ok := sh.entries[key]; ok {
		sh.entries[key] = e
		return
	}
	sh.inserts++
	if sh.inserts >= sweepEvery {
		sh.inserts = 0
		if n := sh.sweep(now); n > 0 {
			s.metrics.expired.Add(float64(n))
		}
	}
	for len(sh.entries) >= s.perShard {
		if expired, evicted := sh.evict(now); expired > 0 {
			s.metrics.expired.Add(float64(expired))
		} else {
			s.metrics.evictions.Add(float64(evicted))
		}
	}
	sh.entries[key] = e
}

// sweep drops expired entries from random samples of the shard, sampling
// again while more than a quarter of a sample was expired, and returns how
// many it dropped.
func (sh *shard) sweep(now int64) int {
	dropped := 0
	for range sweepRounds {
		seen, expired := 0, 0
		// Map iteration starts at a random entry, so each round samples a
		// different stretch of the map.
		for k, e := range sh.entries {
			if e.expireAt <= now {
				delete(sh.entries, k)
				expired++
			}
			if seen++; seen == sweepSample {
				break
			}
		}
		dropped += expired
		if expired*4 <= sweepSample {
			break
		}
	}
	return dropped
}

// evict makes room in a full shard: it drops every expired entry in a
// random sample or, when none is expired, the one that expires soonest.
func (sh *shard) evict(now int64) (expired, evicted int) {
	victim, soonest := "", int64(0)
	seen := 0
	for k, e := range sh.entries {
		if e.expireAt <= now {
			delete(sh.entries, k)
			expired++
		} else if victim == "" || e.expireAt < soonest {
			victim, soonest = k, e.expireAt
		}
		if seen++; seen == evictSample {
			break
		}
	}
	if expired == 0 && victim != "" {
		delete(sh.entries, victim)
		evicted = 1
	}
	return expired, evicted
}

// Len reports how many counters the store holds, expired ones not yet
// dropped included.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}
