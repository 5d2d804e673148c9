package redistest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServerAnswersAndLosesDataOnRestart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	port := s.Port()

	s.Kill()
	if _, err := do(s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}

	s.Restart()
	if s.Port() != port {
		t.Fatalf("port changed across restart: %d then %d", port, s.Port())
	}
	if got, err := c.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart = %q, %v; want redis.Nil (no persistence)", got, err)
	}
}

func TestStopShutsDownAndRestartWorks(t *testing.T) {
	s := Start(t)
	s.Stop()
	if _, err := do(s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Restart()
	if got, err := do(s.Addr(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after restart = %q, %v", got, err)
	}
}

func TestPausedServerTimesOutThenResumes(t *testing.T) {
	s := Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	s.Pause()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered while paused")
	}
	s.Resume()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after resume: %v", err)
	}
}

func TestClusterServesEverySlot(t *testing.T) {
	cl := StartCluster(t, 3)
	if len(cl.Nodes) != 3 {
		t.Fatalf("got %d nodes, want 3", len(cl.Nodes))
	}
	c := cl.Client(t)
	ctx := context.Background()
	// 64 keys land on all three masters with overwhelming likelihood.
	for i := range 64 {
		k := "key" + strconv.Itoa(i)
		if err := c.Set(ctx, k, i, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var withKeys int
	for _, n := range cl.Nodes {
		size, err := do(n.Addr(), "DBSIZE")
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", n.Addr(), err)
		}
		if size != "0" {
			withKeys++
		}
	}
	if withKeys != 3 {
		t.Fatalf("keys on %d of 3 masters; the slots are not split", withKeys)
	}

	// A restarted node rejoins with its nodes.conf.
	cl.Nodes[1].Kill()
	cl.Nodes[1].Restart()
	cl.WaitOK(t)
}

func TestSentinelKnowsTheMaster(t *testing.T) {
	m := Start(t)
	s := StartSentinel(t, m, "mymaster")
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	addr, err := c.GetMasterAddrByName(context.Background(), "mymaster").Result()
	if err != nil {
		t.Fatalf("SENTINEL get-master-addr-by-name: %v", err)
	}
	if got := addr[0] + ":" + addr[1]; got != m.Addr() {
		t.Fatalf("sentinel names master %s, want %s", got, m.Addr())
	}
}
