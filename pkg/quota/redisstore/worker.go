package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// refundTimeout bounds the refund pipeline. It does not inherit the
// callers' deadlines: a caller that gives up still must not leave its
// charge behind.
const refundTimeout = time.Second

// worker takes one job, blocking, then whatever else is already queued up to
// MaxBatch without waiting, and sends them together in one round trip: one
// script call for the whole batch outside Cluster (more only past
// maxOpsPerCall), one per hash slot on Cluster. Under load the queue fills
// while a round trip is in flight, so batches grow with the load; an idle
// store sends each request at once.
func (s *Store) worker() {
	defer s.wg.Done()
	b := newBatcher()
	batch := make([]*job, 0, s.opts.MaxBatch)
	for {
		select {
		case <-s.quit:
			s.drainClosed()
			return
		case j := <-s.jobs:
			batch = append(batch[:0], j)
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		s.run(b, batch)
		clear(batch) // let finished jobs be collected
	}
}

// drainClosed fails the jobs still queued when the store closes.
func (s *Store) drainClosed() {
	for {
		select {
		case j := <-s.jobs:
			j.done <- outcome{err: fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, errClosed)}
		default:
			return
		}
	}
}

// batcher is a worker's memory for building batches, reused from one to
// the next.
type batcher struct {
	enc    *encoder
	units  []unit
	calls  []scriptCall
	groups map[uint16]int // Cluster: slot -> order of first appearance
	state  []jobState     // indexed like the batch's live jobs
}

func newBatcher() *batcher {
	return &batcher{enc: newEncoder(), groups: make(map[uint16]int)}
}

// unit is what the script judges, and allows or denies, as a whole: a
// request (outside Cluster) or a request's ops in one slot.
type unit struct {
	job   int // index into the batch's live jobs
	part  int // index into the job's parts; -1: every op of the job
	group int // Cluster: the slot's order of first appearance in the batch
}

// jobState gathers a job's outcome over its units.
type jobState struct {
	allowed bool
	err     error
	charged []int // parts that charged (-1: the whole request)
}

// scriptCall is one EVALSHA in a pipeline.
type scriptCall struct {
	keys  []string
	args  []any
	units []unit // the apply script's units, in the order it judges them
	cmd   *redis.Cmd
}

// run sends one batch and delivers each job's outcome, refunding first the
// Cluster units that charged for requests another slot denied.
func (s *Store) run(b *batcher, batch []*job) {
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			// The caller has already returned; sending its script now
			// would only charge a request nobody is waiting for.
			j.done <- outcome{err: fmt.Errorf("redisstore: apply: %w: %w", quota.ErrUnavailable, err)}
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	s.m.batchSize.Observe(float64(len(live)))
	defer b.reset()

	ctx, cancel := batchContext(live)
	defer cancel()
	calls := s.build(b, live)
	s.eval(ctx, applyScript, calls)

	b.state = slices.Grow(b.state[:0], len(live))[:len(live)]
	for i := range b.state {
		st := &b.state[i]
		st.allowed, st.err, st.charged = true, nil, st.charged[:0]
	}
	for _, c := range calls {
		s.m.scriptBatch.Observe(float64(len(c.units)))
		s.collect(live, b.state, c)
	}

	// Jobs with nothing to undo are answered at once; the others after
	// their refund, so that a caller's next request never sees its own
	// denied charge.
	var refunds []scriptCall
	var waiting []int
	for i, j := range live {
		st := &b.state[i]
		out := outcome{allowed: st.allowed}
		if st.err != nil {
			s.m.errors.WithLabelValues(errorKind(st.err)).Inc()
			out.err = fmt.Errorf("redisstore: evalsha: %w: %w", quota.ErrUnavailable, st.err)
		}
		if (out.err == nil && out.allowed) || len(st.charged) == 0 {
			j.done <- out // the job is the caller's from here on
			continue
		}
		for _, p := range st.charged {
			keys, args := refundArgs(j.ops, partOps(j, p), j.judged)
			refunds = append(refunds, scriptCall{keys: keys, args: args})
		}
		waiting = append(waiting, i)
	}
	if len(refunds) > 0 {
		s.refund(refunds)
	}
	for _, i := range waiting {
		st := &b.state[i]
		out := outcome{allowed: st.allowed}
		if st.err != nil {
			out.err = fmt.Errorf("redisstore: evalsha: %w: %w", quota.ErrUnavailable, st.err)
		}
		live[i].done <- out
	}
}

// build lays the live jobs out as units and encodes them into script
// calls: all in one call outside Cluster, one call per slot on Cluster (in
// order of first appearance, each slot's units in batch order), a new call
// whenever one would pass maxOpsPerCall.
func (s *Store) build(b *batcher, live []*job) []scriptCall {
	for i, j := range live {
		if j.parts == nil {
			b.units = append(b.units, unit{job: i, part: -1})
			continue
		}
		for p := range j.parts {
			g, ok := b.groups[j.parts[p].slot]
			if !ok {
				g = len(b.groups)
				b.groups[j.parts[p].slot] = g
			}
			b.units = append(b.units, unit{job: i, part: p, group: g})
		}
	}
	if len(b.groups) > 1 {
		slices.SortStableFunc(b.units, func(x, y unit) int { return x.group - y.group })
	}
	e := b.enc
	start := 0
	flush := func(end int) {
		keys, packed := e.call()
		b.calls = append(b.calls, scriptCall{
			keys:  keys,
			args:  []any{end - start, packed},
			units: b.units[start:end:end],
		})
		e.next()
		start = end
	}
	for k, u := range b.units {
		j := live[u.job]
		idx := partOps(j, u.part)
		n := len(j.ops)
		if idx != nil {
			n = len(idx)
		}
		if k > start && (u.group != b.units[start].group || e.ops+n > maxOpsPerCall) {
			flush(k)
		}
		e.add(j.ops, idx)
	}
	flush(len(b.units))
	return b.calls
}

// collect reads one apply call's reply into its units' jobs.
func (s *Store) collect(live []*job, state []jobState, c scriptCall) {
	reply, err := c.cmd.Text()
	r := replyReader{b: reply, keys: c.keys}
	for _, u := range c.units {
		st := &state[u.job]
		if err != nil {
			st.allowed = false
			if st.err == nil {
				st.err = err
			}
			continue
		}
		j := live[u.job]
		ok, uerr := r.unit(partOps(j, u.part), j.judged)
		switch {
		case uerr != nil && errors.Is(uerr, errCorruptKey):
			// Only this unit read the bad key; the reply goes on.
			st.allowed = false
			if st.err == nil {
				st.err = uerr
			}
		case uerr != nil:
			// A reply that does not parse tells nothing about the rest.
			err = uerr
			st.allowed = false
			if st.err == nil {
				st.err = uerr
			}
		case ok:
			st.charged = append(st.charged, u.part)
		default:
			st.allowed = false
		}
	}
	if err == nil && len(r.b) != 0 {
		// Trailing values: the units were judged, but the reply is not
		// what this store sent for; say so rather than trust it.
		for _, u := range c.units {
			st := &state[u.job]
			st.allowed = false
			if st.err == nil {
				st.err = fmt.Errorf("script reply has %d bytes too many", len(r.b))
			}
		}
	}
}

// partOps is the op indexes of a job's part (nil: all of them).
func partOps(j *job, p int) []int {
	if p < 0 {
		return nil
	}
	return j.parts[p].ops
}

// reset forgets a batch, keeping the memory.
func (b *batcher) reset() {
	b.enc.rewind()
	clear(b.units)
	b.units = b.units[:0]
	clear(b.calls)
	b.calls = b.calls[:0]
	clear(b.groups)
	for i := range b.state {
		b.state[i].err = nil
	}
}

// refund runs the refund script for each call and logs what failed: the
// request is denied either way, and a failed refund leaves a charge in
// place, which errs towards admitting less, never more.
func (s *Store) refund(calls []scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), refundTimeout)
	defer cancel()
	s.eval(ctx, refundScript, calls)
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil {
			s.m.refunds.WithLabelValues("error").Inc()
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: refund failed; the charge stays until the key expires",
				slog.Int("keys", len(c.keys)), slog.String("error", err.Error()))
			continue
		}
		s.m.refunds.WithLabelValues("ok").Inc()
	}
}

// eval sends calls as one pipeline of EVALSHA; if Redis has lost the script
// (a restart, SCRIPT FLUSH, a failover to a node that never saw it), it
// loads it and resends the calls that failed, once.
func (s *Store) eval(ctx context.Context, sc script, calls []scriptCall) {
	s.pipeline(ctx, sc, calls, nil)
	var retry []int
	for i := range calls {
		if err := calls[i].cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return
	}
	if err := s.client.ScriptLoad(ctx, sc.src).Err(); err != nil {
		// On Cluster a down shard fails the load; the others have it
		// now, so resend anyway and let each call report its own error.
		s.m.errors.WithLabelValues("script_load").Inc()
	}
	s.pipeline(ctx, sc, calls, retry)
}

// pipeline sends calls (only those at indexes only, when not nil) in one
// round trip per node.
func (s *Store) pipeline(ctx context.Context, sc script, calls []scriptCall, only []int) {
	pipe := s.client.Pipeline()
	if only == nil {
		for i := range calls {
			calls[i].cmd = pipe.EvalSha(ctx, sc.sha, calls[i].keys, calls[i].args...)
		}
	} else {
		for _, i := range only {
			calls[i].cmd = pipe.EvalSha(ctx, sc.sha, calls[i].keys, calls[i].args...)
		}
	}
	start := time.Now()
	_, _ = pipe.Exec(ctx) // each command carries its own error
	s.m.pipelineSeconds.Observe(time.Since(start).Seconds())
}

// batchContext carries the latest deadline of the batch's callers, so that
// a worker stuck on an unresponsive Redis gives up once nobody waits (with a
// client whose ContextTimeoutEnabled is set, as ParseURL's are).
func batchContext(batch []*job) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, j := range batch {
		d, ok := j.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
