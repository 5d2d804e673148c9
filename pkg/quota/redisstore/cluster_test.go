package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/internal/poll"
	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/quotatest"
)

// TestOnCluster runs every Cluster test on one 3-master cluster: starting
// one takes seconds. Each subtest uses keys of its own.
func TestOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	t.Run("conforms to the quota contract", func(t *testing.T) {
		s := newStore(t, cl.Client(t), Options{Prefix: "conformance:"})
		quotatest.Run(t, func(*testing.T) quota.Store { return s })
	})
	t.Run("agrees with quota.Step across slots", func(t *testing.T) { testClusterDifferential(t, cl) })
	t.Run("a batch agrees with quota.Step request by request", func(t *testing.T) { testClusterBatch(t, cl) })
	t.Run("slot agrees with CLUSTER KEYSLOT", func(t *testing.T) { testSlot(t, cl) })
	t.Run("a multi-slot denial leaves no charge", func(t *testing.T) { testMultiSlotDenial(t, cl) })
	t.Run("checks with one tag are one script call", func(t *testing.T) { testOneCallPerTag(t, cl) })
	t.Run("a failed slot refunds the others", func(t *testing.T) { testFailedSlotRefunds(t, cl) })
	// Last: it kills a node.
	t.Run("a dead node fails requests in time, and they recover after its restart", func(t *testing.T) { testDeadNode(t, cl) })
}

func testSlot(t *testing.T, cl *redistest.Cluster) {
	tests := []struct {
		name string
		key  string
		want uint16
	}{
		{"CRC16 check value", "123456789", 12739},
		{"plain key", "foo", 12182},
		{"hash tag", "{user1000}.following", 0},
		{"empty tag hashes the whole key", "foo{}{bar}", 0},
		{"first closing brace ends the tag", "foo{{bar}}zap", 0},
		{"prefix before the tag", "portcullis:{t}k|f1000|1", 0},
		{"unclosed brace hashes the whole key", "a{b", 0},
	}
	c := cl.Client(t)
	if slot("{user1000}.following") != slot("{user1000}.followers") {
		t.Fatal("keys with one hash tag are in different slots")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slot(tt.key)
			real, err := c.ClusterKeySlot(context.Background(), tt.key).Result()
			if err != nil {
				t.Fatalf("CLUSTER KEYSLOT: %v", err)
			}
			if int64(got) != real {
				t.Fatalf("slot(%q) = %d, Redis says %d", tt.key, got, real)
			}
			if tt.want != 0 && got != tt.want {
				t.Fatalf("slot(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

// storedCount reads a check's counter straight from Redis.
func storedCount(t *testing.T, c redis.UniversalClient, s *Store, now time.Time, check quota.Check) int64 {
	t.Helper()
	ops := quota.Plan(now, []quota.Check{check})
	s.physicalKeys(ops, []quota.Check{check})
	v, err := c.Get(context.Background(), ops[0].Key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", ops[0].Key, err)
	}
	return v
}

func testMultiSlotDenial(t *testing.T, cl *redistest.Cluster) {
	client := cl.Client(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, client, Options{Prefix: "denial:", Registerer: reg})
	ctx := context.Background()
	hour := quota.Limit{Requests: 100, Period: time.Hour}
	bucket := quota.Limit{Requests: 100, Period: time.Hour, Algorithm: quota.TokenBucket}
	tight := quota.Limit{Requests: 2, Period: time.Hour}
	// Tags a, b and c hash to three different slots.
	req := []quota.Check{
		{Key: "api", Tag: "a", Limit: hour, Hits: 1, Enforce: true},
		{Key: "api", Tag: "b", Limit: bucket, Hits: 1, Enforce: true},
		{Key: "app", Tag: "c", Limit: tight, Hits: 1, Enforce: true},
	}
	if slot("{a}") == slot("{b}") || slot("{b}") == slot("{c}") || slot("{a}") == slot("{c}") {
		t.Fatal("the test's tags share a slot")
	}
	for i := range 2 {
		res, err := s.Apply(ctx, base, req)
		if err != nil || !quota.Allowed(req, res) {
			t.Fatalf("request %d: %v %+v, want allowed", i, err, res)
		}
	}
	countA := storedCount(t, client, s, base, req[0])
	tatB := storedCount(t, client, s, base, req[1])
	for i := range 5 {
		res, err := s.Apply(ctx, base, req)
		if err != nil {
			t.Fatalf("denied request %d: %v", i, err)
		}
		if quota.Allowed(req, res) || !res[2].Over || res[0].Over || res[1].Over {
			t.Fatalf("denied request %d: %+v, want only the tight limit over", i, res)
		}
		if res[0].Remaining != 98 || res[1].Remaining != 98 {
			t.Fatalf("denied request %d: remaining %d and %d, want 98 and 98", i, res[0].Remaining, res[1].Remaining)
		}
	}
	if got := storedCount(t, client, s, base, req[0]); got != countA {
		t.Fatalf("counter in slot a is %d after denials, want %d", got, countA)
	}
	if got := storedCount(t, client, s, base, req[1]); got != tatB {
		t.Fatalf("TAT in slot b is %d after denials, want %d", got, tatB)
	}
	if n := counterValue(t, reg, "portcullis_redisstore_refunds_total", "ok"); n != 10 {
		t.Fatalf("%v refunds, want 10 (two slots charged for each of 5 denials)", n)
	}
}

func testOneCallPerTag(t *testing.T, cl *redistest.Cluster) {
	client := cl.Client(t)
	s := newStore(t, client, Options{Prefix: "onecall:"})
	ctx := context.Background()
	warm := []quota.Check{{Key: "w", Tag: "t", Limit: testLimits[0], Hits: 1}}
	if _, err := s.Apply(ctx, base, warm); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	resetStats(t, client)
	req := []quota.Check{
		{Key: "app", Tag: "tenant", Limit: quota.Limit{Requests: 10, Period: time.Second}, Hits: 1, Enforce: true},
		{Key: "app", Tag: "tenant", Limit: quota.Limit{Requests: 1000, Period: time.Hour, Algorithm: quota.SlidingWindow}, Hits: 1, Enforce: true},
		{Key: "api", Tag: "tenant", Limit: quota.Limit{Requests: 50, Period: time.Minute, Algorithm: quota.TokenBucket}, Hits: 1, Enforce: true},
	}
	for range 20 {
		if _, err := s.Apply(ctx, base, req); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	if calls, failed := commandStats(t, client, "evalsha"); calls != 20 || failed != 0 {
		t.Fatalf("evalsha calls=%d failed=%d across the cluster, want 20 and 0", calls, failed)
	}
}

func TestLocalCacheSparesRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, client, Options{LocalCache: true, Registerer: reg})
	ctx := context.Background()
	req := []quota.Check{
		{Key: "hammer", Limit: quota.Limit{Requests: 2, Period: time.Minute}, Hits: 1, Enforce: true},
		{Key: "quota", Limit: quota.Limit{Requests: 1000, Period: time.Hour}, Hits: 1, Enforce: true},
	}
	for i := range 3 {
		res, err := s.Apply(ctx, base, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if quota.Allowed(req, res) != (i < 2) {
			t.Fatalf("request %d: allowed=%v", i, quota.Allowed(req, res))
		}
	}
	resetStats(t, client)
	for i := range 10 {
		res, err := s.Apply(ctx, base.Add(time.Duration(i)*time.Second), req)
		if err != nil {
			t.Fatalf("cached request %d: %v", i, err)
		}
		if !res[0].Over || res[0].RetryAfter != time.Minute-time.Duration(i)*time.Second {
			t.Fatalf("cached request %d: %+v, want over with RetryAfter %s", i, res[0], time.Minute-time.Duration(i)*time.Second)
		}
		if !res[1].Unknown {
			t.Fatalf("cached request %d: unread check %+v, want Unknown", i, res[1])
		}
	}
	if calls, _ := commandStats(t, client, "evalsha"); calls != 0 {
		t.Fatalf("%d evalsha calls for requests the cache should answer", calls)
	}
	if n := counterValue(t, reg, "portcullis_redisstore_local_cache_hits_total", ""); n != 10 {
		t.Fatalf("cache hits %v, want 10", n)
	}
	// The next window goes back to Redis and is admitted.
	res, err := s.Apply(ctx, base.Add(time.Minute), req)
	if err != nil || !quota.Allowed(req, res) {
		t.Fatalf("next window: %v %+v, want admitted", err, res)
	}
	if res[1].Remaining != 997 {
		t.Fatalf("quota remaining %d, want 997: cached denials must charge nothing", res[1].Remaining)
	}
}

// nodeFor returns the cluster node serving key's slot.
func nodeFor(t *testing.T, cl *redistest.Cluster, c *redis.ClusterClient, key string) *redistest.Server {
	t.Helper()
	m, err := c.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatalf("master for %s: %v", key, err)
	}
	for _, n := range cl.Nodes {
		if n.Addr() == m.Options().Addr {
			return n
		}
	}
	t.Fatalf("no node of the cluster is %s", m.Options().Addr)
	return nil
}

func testDeadNode(t *testing.T, cl *redistest.Cluster) {
	client := cl.Client(t)
	s := newStore(t, client, Options{Prefix: "dead:"})
	ctx := context.Background()
	lim := quota.Limit{Requests: 100, Period: time.Hour}
	live := quota.Check{Key: "k", Tag: "live", Limit: lim, Hits: 1, Enforce: true}
	liveNode := nodeFor(t, cl, client, "dead:"+quota.Plan(base, []quota.Check{live})[0].Key)
	var dead quota.Check
	var deadNode *redistest.Server
	for i := 0; deadNode == nil; i++ {
		c := quota.Check{Key: "k", Tag: fmt.Sprint("t", i), Limit: lim, Hits: 1, Enforce: true}
		if n := nodeFor(t, cl, client, "dead:"+quota.Plan(base, []quota.Check{c})[0].Key); n != liveNode {
			dead, deadNode = c, n
		}
	}
	req := []quota.Check{live, dead}
	if _, err := s.Apply(ctx, base, req); err != nil {
		t.Fatalf("Apply with every node up: %v", err)
	}

	deadNode.Kill()
	tctx, cancel := context.WithTimeout(ctx, callDeadline)
	start := time.Now()
	_, err := s.Apply(tctx, base, req)
	took := time.Since(start)
	cancel()
	if !errors.Is(err, quota.ErrUnavailable) || took > callDeadline+lateSlack {
		t.Fatalf("Apply with a node down: %v after %s, want ErrUnavailable within %s", err, took, callDeadline)
	}

	// The restarted node has no data and no script.
	deadNode.Restart()
	cl.WaitOK(t)
	poll.Until(t, 10*time.Second, "requests to succeed after the node restarts", func() bool {
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := s.Apply(tctx, base, req)
		return err == nil
	})
}

// A slot whose script fails (here a key that holds no integer) fails the
// request, and the slots that charged are refunded.
func testFailedSlotRefunds(t *testing.T, cl *redistest.Cluster) {
	client := cl.Client(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, client, Options{Prefix: "failed:", Registerer: reg})
	ctx := context.Background()
	lim := quota.Limit{Requests: 100, Period: time.Hour}
	good := quota.Check{Key: "k", Tag: "a", Limit: lim, Hits: 1, Enforce: true}
	bad := quota.Check{Key: "k", Tag: "b", Limit: lim, Hits: 1, Enforce: true}
	ops := quota.Plan(base, []quota.Check{bad})
	s.physicalKeys(ops, []quota.Check{bad})
	if err := client.Set(ctx, ops[0].Key, "garbage", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	_, err := s.Apply(ctx, base, []quota.Check{good, bad})
	if !errors.Is(err, quota.ErrUnavailable) {
		t.Fatalf("Apply = %v, want ErrUnavailable", err)
	}
	if got := storedCount(t, client, s, base, good); got != 0 {
		t.Fatalf("the good slot holds %d after the request failed, want 0 (refunded)", got)
	}
	if n := counterValue(t, reg, "portcullis_redisstore_refunds_total", "ok"); n != 1 {
		t.Fatalf("%v refunds, want 1", n)
	}
}
