package quotatest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/quotatest"
)

// wallClockStore expires keys the way Redis does with SET PX: a TTL of
// ExpireAt-Now rounded up to whole milliseconds, counted on the real clock
// from the moment of the write. The suite must pass it without flaking,
// although its instants run ahead of the real clock.
type wallClockStore struct {
	mu sync.Mutex
	m  map[string]wallEntry
}

type wallEntry struct {
	value int64
	dies  time.Time
}

func (s *wallClockStore) Apply(ctx context.Context, now time.Time, checks []quota.Check) ([]quota.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wall-clock store: %w: %w", quota.ErrUnavailable, err)
	}
	for _, c := range checks {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("wall-clock store: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := quota.Plan(now, checks)
	allowed, judged, writes := quota.Step(ops, func(k string) int64 {
		e, ok := s.m[k]
		if !ok || !time.Now().Before(e.dies) {
			return 0
		}
		return e.value
	})
	for _, o := range ops {
		if v, ok := writes[o.Key]; ok {
			ms := max((o.ExpireAt(quota.State{A: v})-o.Now+999)/1000, 1)
			s.m[o.Key] = wallEntry{value: v, dies: time.Now().Add(time.Duration(ms) * time.Millisecond)}
		}
	}
	results := make([]quota.Result, len(ops))
	for i, o := range ops {
		results[i] = o.Result(judged[i], allowed)
	}
	return results, nil
}

func TestRunAcceptsAStoreThatExpiresOnTheWallClock(t *testing.T) {
	shared := &wallClockStore{m: make(map[string]wallEntry)}
	quotatest.Run(t, func(*testing.T) quota.Store { return shared })
}
