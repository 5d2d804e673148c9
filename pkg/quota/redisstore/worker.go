package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// refundTimeout bounds the refund pipeline. It does not inherit the
// callers' deadlines: a caller that gives up still must not leave its
// charge behind.
const refundTimeout = time.Second

// worker takes one job, blocking, then whatever else is already queued up to
// MaxBatch without waiting, and sends them as one pipeline. Under load the
// queue fills while a pipeline is in flight, so batches grow with the load;
// an idle store sends each request at once.
func (s *Store) worker() {
	defer s.wg.Done()
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
		s.run(batch)
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

// scriptCall is one EVALSHA in a pipeline.
type scriptCall struct {
	keys []string
	args []any
	cmd  *redis.Cmd
}

// run sends one batch and delivers each job's outcome, refunding first the
// Cluster calls that charged for requests another slot denied.
func (s *Store) run(batch []*job) {
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

	ctx, cancel := batchContext(live)
	defer cancel()
	var calls []scriptCall
	for _, j := range live {
		for _, c := range j.calls {
			calls = append(calls, scriptCall{keys: c.keys, args: c.args})
		}
	}
	s.eval(ctx, applyScript, calls)

	// Jobs with nothing to undo are answered at once; the others after
	// their refund, so that a caller's next request never sees its own
	// denied charge.
	var refunds []scriptCall
	var waiting []*job
	var outs []outcome
	k := 0
	for _, j := range live {
		out, charged := s.collect(j, calls[k:k+len(j.calls)])
		k += len(j.calls)
		if (out.err == nil && out.allowed) || len(charged) == 0 {
			j.done <- out
			continue
		}
		for _, c := range charged {
			keys, args := refundArgs(j.ops, c, out.judged)
			refunds = append(refunds, scriptCall{keys: keys, args: args})
		}
		waiting = append(waiting, j)
		outs = append(outs, out)
	}
	if len(refunds) > 0 {
		s.refund(refunds)
	}
	for i, j := range waiting {
		j.done <- outs[i]
	}
}

// collect turns a job's replies into its outcome, and lists the calls that
// charged (all of them when allowed; on Cluster, possibly some when not).
func (s *Store) collect(j *job, replies []scriptCall) (outcome, []call) {
	out := outcome{allowed: true, judged: make([]quota.State, len(j.ops))}
	var charged []call
	var firstErr error
	for i, r := range replies {
		reply, err := r.cmd.Result()
		var ok bool
		if err == nil {
			ok, err = parseApply(j.calls[i], reply, out.judged)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if ok {
			charged = append(charged, j.calls[i])
		} else {
			out.allowed = false
		}
	}
	if firstErr != nil {
		s.m.errors.WithLabelValues(errorKind(firstErr)).Inc()
		// judged stays set: the refund of the calls that charged needs it.
		out.err = fmt.Errorf("redisstore: evalsha: %w: %w", quota.ErrUnavailable, firstErr)
		return out, charged
	}
	return out, charged
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
		if redis.HasErrorPrefix(calls[i].cmd.Err(), "NOSCRIPT") {
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
