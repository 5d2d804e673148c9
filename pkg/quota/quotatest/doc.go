// Package quotatest is the one conformance suite every quota.Store passes,
// in the manner of testing/fstest: each store's tests call Run, so the
// memory store and the Redis store cannot drift from each other or from the
// algorithms in package quota.
//
// It is test support only and is never on the request path. Besides fixed
// admit/deny sequences checked field by field, it replays seeded random
// request streams against the store and against a reference (a map and
// quota.Step) and requires every Result to be identical: that is what keeps
// the Redis Lua script in step with the Go algorithms.
package quotatest
