package tokencache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Defaults for a catalog.TokenCachePolicy duration left at zero.
const (
	// DefaultMaxTTL bounds how long a revoked opaque token keeps working:
	// a minute trades that delay against one introspection per token per
	// minute.
	DefaultMaxTTL = time.Minute
	// DefaultNegativeTTL is short: it only needs to absorb a client retrying
	// a bad token in a loop, and a token refused by mistake (the provider's
	// clock behind ours, say) should not stay refused for long.
	DefaultNegativeTTL = 10 * time.Second
	// DefaultStaleIfError rides out a provider restart or a short outage
	// for callers whose tokens were already verified; the token's own exp
	// still bounds it.
	DefaultStaleIfError = 5 * time.Minute
	// DefaultMaxEntries holds the tokens of tens of thousands of active
	// clients; with introspection claims an entry is typically under 2 KB.
	DefaultMaxEntries = 1 << 15
)

const (
	// maxShards spreads lock contention; shards are powers of two so that
	// a shard is a mask of the key, which is already uniformly random.
	maxShards = 64
	// minPerShard keeps a small cache in one shard, so that MaxEntries is
	// exact where it is small enough to matter.
	minPerShard = 512
	// evictSample entries are looked at when a full shard needs room.
	evictSample = 8
	// sweepSample entries are looked at on every insert, dropping those
	// past their last use, so that dead entries do not wait for eviction.
	sweepSample = 2
)

// Verifier checks a raw token. Its error contract is identity's: an error
// wrapping identity.ErrInvalid refuses the token and is cached for
// NegativeTTL; any other error (it should wrap identity.ErrUnavailable) means
// no decision was reached and is never cached. Verify must bound its own
// duration: the Cache runs one call per token for all its callers, and that
// call outlives a caller that gives up.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*identity.Token, error)
}

// VerifierFunc lets a plain function, such as (*introspect.Client).Introspect,
// serve as a Verifier.
type VerifierFunc func(ctx context.Context, raw string) (*identity.Token, error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	return f(ctx, raw)
}

// Options configure a Cache. The zero value is ready to use.
type Options struct {
	// Clock is the time the cache judges lives by; nil means time.Now.
	Clock func() time.Time
	// MaxEntries bounds the tokens remembered, so that a flood of distinct
	// tokens cannot exhaust memory. Zero means DefaultMaxEntries. Above
	// 1024 entries the bound is enforced per shard and so rounded up to a
	// multiple of the shard count (at most 64).
	MaxEntries int
	// Registerer receives the cache's metrics, labelled cache=Name. Nil
	// registers nothing. A Cache built to replace one with the same Name
	// (after a catalog reload) continues its counters.
	Registerer prometheus.Registerer
	// Name labels the metrics, typically the identity provider's name.
	// Empty means "default".
	Name string
}

// Cache is a Verifier that remembers its verifier's answers. It is safe for
// concurrent use.
//
// A full shard evicts, among a small random sample of its entries, those
// past their last use, or else the one whose use ends soonest. Refusals live
// for NegativeTTL, shorter than a verified token's life, so a flood of bad
// tokens mostly evicts its own refusals rather than the good tokens of
// working clients. Evictions are counted; a steady rate means MaxEntries is
// too small for the traffic.
type Cache struct {
	v            Verifier
	now          func() time.Time
	maxTTL       int64 // nanoseconds
	negativeTTL  int64
	staleIfError int64
	perShard     int
	mask         uint8
	shards       []shard
	group        singleflight.Group
	metrics      metrics
}

type shard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]entry
	_  [40]byte // keeps neighbouring shards' locks off one cache line
}

// entry is one remembered answer. Times are Unix nanoseconds.
type entry struct {
	tok *identity.Token // nil for a refusal
	err error           // the refusal, wrapping identity.ErrInvalid
	// fresh is when the answer stops being served without asking again.
	fresh int64
	// stale is when it stops being served even while the verifier is
	// unavailable, and when the entry may be dropped; equal to fresh for a
	// refusal.
	stale int64
}

// result is what one verifier call gives every caller that shared it.
type result struct {
	tok   *identity.Token
	err   error
	stale bool // tok was served past its fresh life because the verifier failed
}

var _ Verifier = (*Cache)(nil)

// New returns an empty cache in front of v, applying policy's durations
// (zero means the Default above). It fails on a nil verifier, a negative
// duration or MaxEntries, or metrics that cannot be registered.
func New(v Verifier, policy catalog.TokenCachePolicy, opts Options) (*Cache, error) {
	if v == nil {
		return nil, errors.New("tokencache: nil verifier")
	}
	if policy.MaxTTL < 0 || policy.NegativeTTL < 0 || policy.StaleIfError < 0 {
		return nil, fmt.Errorf("tokencache: negative duration in policy %+v", policy)
	}
	if opts.MaxEntries < 0 {
		return nil, fmt.Errorf("tokencache: MaxEntries %d is negative", opts.MaxEntries)
	}
	c := &Cache{
		v:            v,
		now:          opts.Clock,
		maxTTL:       int64(orDefault(policy.MaxTTL, DefaultMaxTTL)),
		negativeTTL:  int64(orDefault(policy.NegativeTTL, DefaultNegativeTTL)),
		staleIfError: int64(orDefault(policy.StaleIfError, DefaultStaleIfError)),
	}
	if c.now == nil {
		c.now = time.Now
	}
	maxEntries := opts.MaxEntries
	if maxEntries == 0 {
		maxEntries = DefaultMaxEntries
	}
	n := 1
	for n < maxShards && maxEntries/(n*2) >= minPerShard {
		n *= 2
	}
	c.mask = uint8(n - 1)
	c.perShard = (maxEntries + n - 1) / n
	c.shards = make([]shard, n)
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]entry)
	}
	name := opts.Name
	if name == "" {
		name = "default"
	}
	m, err := newMetrics(c, name, opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("tokencache %s: %w", name, err)
	}
	c.metrics = m
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Verify answers from the cache when it can and asks the verifier when it
// must. The token returned is shared by every caller of the same token and
// must not be modified.
//
// Errors: identity.ErrInvalid for a refusal, fresh or remembered;
// identity.ErrUnavailable when the verifier could not decide and nothing
// usable was cached, or when ctx ends first (the verifier call goes on for
// the callers still waiting, and fills the cache).
func (c *Cache) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	key := sum(raw)
	now := c.now().UnixNano()
	if e, ok := c.lookup(key); ok && now < e.fresh {
		if e.tok != nil {
			c.metrics.hits.Inc()
			return e.tok, nil
		}
		c.metrics.negativeHits.Inc()
		return nil, e.err
	}
	return c.miss(ctx, raw, key)
}

// miss asks the verifier, sharing the call with concurrent lookups of the
// same token. It is apart from Verify so that the closure's copy of the key
// is on the heap only on a miss.
func (c *Cache) miss(ctx context.Context, raw string, key [sha256.Size]byte) (*identity.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tokencache verify: %w: %w", identity.ErrUnavailable, err)
	}
	c.metrics.misses.Inc()
	k := key
	ch := c.group.DoChan(string(k[:]), func() (any, error) {
		return c.fill(ctx, raw, k), nil
	})
	select {
	case r := <-ch:
		res := r.Val.(result)
		if res.stale {
			c.metrics.staleServes.Inc()
		}
		return res.tok, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("tokencache verify: %w: %w", identity.ErrUnavailable, ctx.Err())
	}
}

// sum is the cache key: the token's SHA-256. The token's bytes are read in
// place, not copied, so that a hit allocates nothing; sha256 never writes to
// its input.
func sum(raw string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func (c *Cache) shardOf(key *[sha256.Size]byte) *shard {
	return &c.shards[key[0]&c.mask]
}

func (c *Cache) lookup(key [sha256.Size]byte) (entry, bool) {
	s := c.shardOf(&key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	return e, ok
}

// fill runs once per token for all the callers waiting on it: it asks the
// verifier and records the answer.
func (c *Cache) fill(ctx context.Context, raw string, key [sha256.Size]byte) result {
	// Another flight may have filled the entry between our lookup and
	// this one starting.
	if e, ok := c.lookup(key); ok && c.now().UnixNano() < e.fresh {
		return result{tok: e.tok, err: e.err}
	}
	// The first caller's cancellation must not fail the others sharing
	// this call; its deadline still bounds the call, as does the
	// verifier's own timeout.
	vctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		vctx, cancel = context.WithDeadline(vctx, d)
		defer cancel()
	}
	tok, err := c.call(vctx, raw)
	now := c.now().UnixNano()
	switch {
	case err == nil:
		c.storeToken(key, tok, now)
		return result{tok: tok}
	case errors.Is(err, identity.ErrUnavailable) || !errors.Is(err, identity.ErrInvalid):
		if !errors.Is(err, identity.ErrUnavailable) {
			err = fmt.Errorf("tokencache verify: %w: %w", identity.ErrUnavailable, err)
		}
		if e, ok := c.lookup(key); ok && e.tok != nil && now < e.stale {
			return result{tok: e.tok, stale: true}
		}
		return result{err: err}
	default:
		c.store(key, entry{err: err, fresh: addNanos(now, c.negativeTTL), stale: addNanos(now, c.negativeTTL)}, now)
		return result{err: err}
	}
}

// call runs the verifier, turning a panic or a nil token into an
// ErrUnavailable so that one bad verifier call cannot take the process down
// or be served as a success.
func (c *Cache) call(ctx context.Context, raw string) (tok *identity.Token, err error) {
	defer func() {
		if p := recover(); p != nil {
			tok, err = nil, fmt.Errorf("tokencache verify: %w: verifier panicked: %v", identity.ErrUnavailable, p)
		}
	}()
	tok, err = c.v.Verify(ctx, raw)
	if err == nil && tok == nil {
		return nil, fmt.Errorf("tokencache verify: %w: verifier returned neither a token nor an error", identity.ErrUnavailable)
	}
	return tok, err
}

// storeToken remembers a verified token until the earlier of its exp and
// MaxTTL, and keeps it for StaleIfError more (never past its exp) in case
// the verifier is unavailable when it is next needed.
func (c *Cache) storeToken(key [sha256.Size]byte, tok *identity.Token, now int64) {
	fresh := addNanos(now, c.maxTTL)
	stale := addNanos(fresh, c.staleIfError)
	if !tok.Expiry.IsZero() {
		exp := tok.Expiry.UnixNano()
		fresh = min(fresh, exp)
		stale = min(stale, exp)
	}
	if fresh <= now {
		return // already at its exp: nothing worth remembering
	}
	c.store(key, entry{tok: tok, fresh: fresh, stale: stale}, now)
}

func addNanos(t, d int64) int64 {
	if t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}

func (c *Cache) store(key [sha256.Size]byte, e entry, now int64) {
	s := c.shardOf(&key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		swept := 0
		for k, old := range s.m {
			if swept == sweepSample {
				break
			}
			swept++
			if old.stale <= now {
				delete(s.m, k)
			}
		}
		if len(s.m) >= c.perShard {
			c.evict(s, now)
		}
	}
	s.m[key] = e
}

// evict makes room in a full shard: among a sample of entries it drops the
// dead ones, or else the one whose use ends soonest. Called with s.mu held.
func (c *Cache) evict(s *shard, now int64) {
	var victim [sha256.Size]byte
	soonest := int64(math.MaxInt64)
	found, dropped, seen := false, false, 0
	for k, e := range s.m {
		if seen == evictSample {
			break
		}
		seen++
		if e.stale <= now {
			delete(s.m, k)
			dropped = true
			continue
		}
		if e.stale < soonest {
			victim, soonest, found = k, e.stale, true
		}
	}
	if dropped || !found {
		return
	}
	delete(s.m, victim)
	c.metrics.evictions.Inc()
}

// Len is the number of entries held, including those past their use that
// have not been dropped yet.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
