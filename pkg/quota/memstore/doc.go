// Package memstore is the embedded quota.Store: counters held in this
// process's memory, the default when ratelimit runs without -redis.
//
// On the request path it sits under pkg/rls exactly where redisstore would:
// rls hands it one request's checks, and it applies them in one atomic step
// by running quota.Step under the locks of every shard the request touches.
// It holds no goroutines; expired counters are dropped as they are met and
// by a small sweep amortised over writes, and MaxKeys bounds memory.
package memstore
