// Package suite holds the load-test suites behind `make bench`: each starts
// the real binaries and a no-op baseline as separate processes on this
// machine, drives them with bench/loadgen in interleaved rounds, and prints
// throughput and p99 with each target's ratio to the baseline measured in
// the same run.
package suite
