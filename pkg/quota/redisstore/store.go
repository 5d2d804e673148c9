package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// Options tune the store; the zero value is usable.
type Options struct {
	// Prefix starts every key, so that one Redis can serve several
	// deployments. Default "portcullis:". A prefix containing '{' puts the
	// hash tag in the prefix and so every key in one Cluster slot.
	Prefix string
	// Workers is the number of batches in flight at once. Fewer workers
	// make larger batches (fewer round trips and script calls, more
	// waiting behind a slow one); more workers lower latency at low load.
	// Default 4.
	Workers int
	// MaxBatch caps the requests in one batch, one round trip. Default 128.
	MaxBatch int
	// QueueSize bounds the requests waiting for a worker; when it is full,
	// Apply fails at once with ErrUnavailable rather than queueing behind a
	// Redis that is not keeping up. Default 4096.
	QueueSize int
	// LocalCache remembers the counters Redis found over a limit until the
	// request could next succeed, and denies repeats without asking Redis:
	// a client hammering a limit it has hit costs no round trip. Denials
	// from the cache charge nothing, as Redis would not; see the package
	// documentation for what their Results say.
	LocalCache bool
	// LocalCacheSize bounds the local cache's entries. Default 65536.
	LocalCacheSize int
	// Registerer receives the store's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger reports failures no caller sees (a refund that failed). Nil
	// discards.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "portcullis:"
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 128
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.LocalCacheSize <= 0 {
		o.LocalCacheSize = 65536
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is a quota.Store on Redis (standalone, Sentinel or Cluster).
// Concurrent requests are batched: one round trip and one Lua script call
// serve many (on Cluster, one call per hash slot the batch spans).
type Store struct {
	client  redis.UniversalClient
	cluster bool
	opts    Options
	cache   *overCache
	m       *metrics

	jobs      chan *job
	quit      chan struct{} // closed by Close: workers stop
	stopped   chan struct{} // closed once every worker has returned
	closeOnce sync.Once
	wg        sync.WaitGroup
	jobPool   sync.Pool
}

var _ quota.Store = (*Store)(nil)

// New starts the store's workers over client, which the caller keeps and
// closes after Close. It does no I/O: the script is loaded on first use and
// again whenever Redis has lost it.
func New(client redis.UniversalClient, opts Options) *Store {
	opts.defaults()
	_, cluster := client.(*redis.ClusterClient)
	s := &Store{
		client:  client,
		cluster: cluster,
		opts:    opts,
		m:       newMetrics(opts.Registerer),
		jobs:    make(chan *job, opts.QueueSize),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if opts.LocalCache {
		s.cache = newOverCache(opts.LocalCacheSize)
	}
	s.wg.Add(opts.Workers)
	for range opts.Workers {
		go s.worker()
	}
	go func() {
		s.wg.Wait()
		close(s.stopped)
	}()
	return s
}

// Close stops the workers after the pipelines in flight; requests still
// queued, and later calls to Apply, fail with ErrUnavailable. It does not
// close the client.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.stopped
	return nil
}

var (
	errQueueFull = errors.New("request queue full")
	errClosed    = errors.New("store closed")
)

// Apply implements quota.Store. It returns as soon as ctx is done, with an
// error wrapping quota.ErrUnavailable; the script may still run and charge
// after that, as it would if the reply were lost on the network.
func (s *Store) Apply(ctx context.Context, now time.Time, checks []quota.Check) ([]quota.Result, error) {
	if len(checks) == 0 {
		return []quota.Result{}, nil
	}
	for i := range checks {
		if err := checks[i].Validate(); err != nil {
			return nil, fmt.Errorf("redisstore: apply: check %d (%q): %w", i, checks[i].Key, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail("deadline", fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, context.Cause(ctx)))
	}
	ops := quota.Plan(now, checks)
	s.physicalKeys(ops, checks)

	if s.cache != nil {
		if res, ok := s.cache.deny(ops); ok {
			s.m.cacheHits.Inc()
			return res, nil
		}
	}

	select {
	case <-s.quit:
		return nil, s.fail("closed", fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, errClosed))
	default:
	}
	j := s.newJob(ctx, ops)
	select {
	case s.jobs <- j:
	default:
		s.release(j)
		return nil, s.fail("queue_full", fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, errQueueFull))
	}

	var out outcome
	select {
	case out = <-j.done:
	case <-ctx.Done():
		// The worker's late send lands in the buffered channel and is
		// collected with the job, which is not reused.
		return nil, s.fail("deadline", fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, context.Cause(ctx)))
	case <-s.stopped:
		select {
		case out = <-j.done:
		default:
			return nil, s.fail("closed", fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, errClosed))
		}
	}
	return s.finish(j, out)
}

// finish turns a job's delivered outcome into the caller's results, and
// recycles the job.
func (s *Store) finish(j *job, out outcome) ([]quota.Result, error) {
	defer s.release(j)
	if out.err != nil {
		return nil, out.err
	}
	res := make([]quota.Result, len(j.ops))
	for i := range j.ops {
		res[i] = j.ops[i].Result(j.judged[i], out.allowed)
	}
	if s.cache != nil {
		s.cache.remember(j.ops, j.judged, out.allowed, res)
	}
	return res, nil
}

// newJob takes a job from the pool for ops. Jobs are reused only once
// their outcome has been received, when no worker holds them any more.
func (s *Store) newJob(ctx context.Context, ops []quota.Op) *job {
	j, _ := s.jobPool.Get().(*job)
	if j == nil {
		j = &job{done: make(chan outcome, 1)}
	}
	j.ctx, j.ops = ctx, ops
	j.judged = slices.Grow(j.judged[:0], len(ops))[:len(ops)]
	if s.cluster {
		j.parts = s.parts(ops, j.parts[:0])
	}
	return j
}

// release returns a job whose outcome its caller has received.
func (s *Store) release(j *job) {
	j.ctx, j.ops = nil, nil
	j.parts = j.parts[:0]
	s.jobPool.Put(j)
}

func (s *Store) fail(kind string, err error) error {
	s.m.errors.WithLabelValues(kind).Inc()
	return err
}

// physicalKeys puts the store's prefix on Plan's "{tag}rest" keys, and a
// hash tag of its own in front when Plan's would not do: a check without a
// Tag gets "{}", which makes Redis hash the whole key and would split a
// sliding window's two keys across slots, so it is tagged with its Key
// instead (cut at the first '}', where Redis ends a tag). Every op's keys
// therefore share one slot, and so do checks with one tag or, untagged, one
// counter key.
//
// The mapping stays one-to-one: a key with an added head has '{' right
// after its first '}', which a key kept as Plan wrote it never has (its Tag
// holds no '}' and its Key does not start with '{').
func (s *Store) physicalKeys(ops []quota.Op, checks []quota.Check) {
	for i := range ops {
		c := &checks[i]
		if c.Tag != "" && !strings.Contains(c.Tag, "}") && !strings.HasPrefix(c.Key, "{") {
			ops[i].Key = s.opts.Prefix + ops[i].Key
			if ops[i].PrevKey != "" {
				ops[i].PrevKey = s.opts.Prefix + ops[i].PrevKey
			}
			continue
		}
		tag := c.Tag
		if tag == "" {
			tag = c.Key
		}
		if k := strings.IndexByte(tag, '}'); k >= 0 {
			tag = tag[:k]
		}
		if tag == "" {
			tag = c.Limit.ID()
		}
		head := s.opts.Prefix + "{" + tag + "}"
		ops[i].Key = head + ops[i].Key
		if ops[i].PrevKey != "" {
			ops[i].PrevKey = head + ops[i].PrevKey
		}
	}
}

// parts splits a request's ops by Cluster hash slot, in order of first
// appearance, into ps: one script can only touch keys of one slot, so each
// part is judged, and charged, on its own (see the package documentation).
func (s *Store) parts(ops []quota.Op, ps []part) []part {
	for i := range ops {
		sl := slot(ops[i].Key)
		k := 0
		for k < len(ps) && ps[k].slot != sl {
			k++
		}
		if k == len(ps) {
			// Reuse a recycled job's part, and its ops' memory.
			ps = slices.Grow(ps, 1)[:k+1]
			ps[k].slot, ps[k].ops = sl, ps[k].ops[:0]
		}
		ps[k].ops = append(ps[k].ops, i)
	}
	return ps
}

// job is one Apply waiting for a worker.
type job struct {
	ctx context.Context
	ops []quota.Op
	// parts group the ops by slot on Cluster; nil elsewhere, where every
	// op is in one unit.
	parts []part
	// judged receives the state each op was judged on; the caller reads it
	// once done has delivered.
	judged []quota.State
	done   chan outcome // buffered 1: the worker never blocks on a caller that left
}

// part is a request's ops in one Cluster slot.
type part struct {
	slot uint16
	ops  []int
}

type outcome struct {
	allowed bool
	err     error
}

// errorKind labels a store error for metrics.
func errorKind(err error) string {
	var ne interface{ Timeout() bool }
	var re redis.Error
	switch {
	case errors.Is(err, errCorruptKey):
		return "redis"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "deadline"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case redis.IsClusterDownError(err):
		return "cluster_down"
	case redis.IsLoadingError(err):
		return "loading"
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return "noscript"
	case redis.IsTryAgainError(err), redis.IsMasterDownError(err), redis.IsReadOnlyError(err):
		return "failover"
	case errors.As(err, &re):
		return "redis"
	default:
		return "connection"
	}
}
