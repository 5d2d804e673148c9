package redistest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters without replicas, each node a
// Server of its own that tests can kill and restart.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts masters cluster-enabled nodes (at least 3, as
// redis-cli requires), joins them with redis-cli --cluster create so that
// the 16384 slots are split between them, and returns once every node
// reports cluster_state:ok.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 3 {
		tb.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli := lookBinary(tb, "redis-cli")
	c := &Cluster{}
	for range masters {
		c.Nodes = append(c.Nodes, start(tb, nil, func(dir string) []string {
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "3000",
			}
		}))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(tb)
	return c
}

// Addrs lists the nodes' host:port, the seed list for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Client returns a go-redis cluster client, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// WaitOK polls CLUSTER INFO on every node until each says
// cluster_state:ok, as after creation or after a node restarts; it fails
// the test after a deadline.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var notOK string
		for _, n := range c.Nodes {
			info, err := do(n.Addr(), "CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				notOK = n.Addr()
				if err != nil {
					notOK += " (" + err.Error() + ")"
				}
				break
			}
		}
		if notOK == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: cluster not ok within %s: node %s", readyTimeout, notOK)
		}
		<-tick.C
	}
}
