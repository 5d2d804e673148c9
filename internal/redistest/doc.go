// Package redistest starts real redis-server processes for tests and
// benchmarks: a standalone server, a Sentinel or a Cluster, on free
// loopback ports in the test's temporary directory, without persistence,
// stopped by t.Cleanup.
//
// It is not on the request path. It exists so that every test of the Redis
// store runs against the Redis that production runs, and so that faults
// (a killed or frozen server, a restart that loses the script cache) are
// real faults rather than mocks. A missing redis-server or redis-cli fails
// the test: a suite that silently skips its Redis tests would pass in a CI
// image that forgot to install Redis.
package redistest
