// Package loadgen drives a gRPC server with a fixed number of calls and
// measures throughput and latency, with as little overhead of its own as
// the measurement allows.
//
// It is not on the request path: it stands where Envoy stands, sending
// ShouldRateLimit (step 2 of DESIGN's diagram), Check (step 1) or
// StreamAccessLogs (step 4) to a Portcullis server or to a no-op baseline
// from bench/noop. The machines Portcullis is benchmarked on are small and
// shared, so absolute numbers drift from one minute to the next; Interleave
// therefore runs the server under test and its baselines in alternation,
// round by round, and reports each target as a ratio to the first, which is
// what stays comparable between runs and machines.
//
// Requests are built before the run and cycled; each worker owns one
// Caller (which may reuse a response message or hold a stream open) and
// records latencies into its own log-linear Histogram, so a call costs the
// generator two clock reads, one atomic add and a few array increments, and
// allocates nothing beyond what gRPC itself allocates.
package loadgen
