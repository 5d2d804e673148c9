// Package quota counts requests against limits: the limit model, the three
// algorithms as pure functions of (state, time), and the Store interface that
// memstore and redisstore implement.
//
// On the request path it sits under pkg/rls: rls turns descriptors into
// Checks, a Store applies them atomically, and rls turns the Results into
// Envoy's response. The algorithms live here, once, as integer arithmetic on
// microseconds so that the Redis Lua script can mirror them exactly and the
// conformance suite (quotatest) can hold every store to the same answers.
package quota
