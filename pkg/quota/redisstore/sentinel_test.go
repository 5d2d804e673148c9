package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/quotatest"
)

// Through a redis+sentinel:// URL, as the ratelimit binary connects: the
// failover client finds the master, and a lone request is one EVALSHA.
func TestThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "portcullis")
	opts, err := ParseURL("redis+sentinel://" + sentinel.Addr() + "/portcullis")
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	client := redis.NewUniversalClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	s := newStore(t, client, Options{})

	t.Run("conforms to the quota contract", func(t *testing.T) {
		quotatest.Run(t, func(*testing.T) quota.Store { return s })
	})
	t.Run("a lone request is one script call", func(t *testing.T) {
		direct := master.Client(t)
		resetStats(t, direct)
		req := []quota.Check{
			{Key: "s", Tag: "a", Limit: quota.Limit{Requests: 3, Period: time.Hour}, Hits: 1, Enforce: true},
			{Key: "s", Tag: "b", Limit: quota.Limit{Requests: 9, Period: time.Hour, Algorithm: quota.TokenBucket}, Hits: 1, Enforce: true},
		}
		for i := range 5 {
			res, err := s.Apply(context.Background(), base, req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if quota.Allowed(req, res) != (i < 3) {
				t.Fatalf("request %d: allowed=%v, want 3 admitted", i, quota.Allowed(req, res))
			}
		}
		if calls, failed := commandStats(t, direct, "evalsha"); calls != 5 || failed != 0 {
			t.Fatalf("evalsha calls=%d failed=%d on the master, want 5 and 0", calls, failed)
		}
	})
}
