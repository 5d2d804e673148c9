// Command loadgen loads a Portcullis gRPC server (or any server of Envoy's
// rate-limit, ext_authz or access-log API) with the bench/loadgen library
// and prints a table of throughput, latency and outcomes. It stands where
// Envoy stands on the request path, and is never part of it.
//
//	loadgen -addr HOST:PORT -service rls|authz|als -requests FILE
//	        -c 16 -n 20000 -warmup 2000 -conns 4
//	        [-baseline HOST:PORT -rounds 5]
//
// Without -requests it sends the example request of the service (one
// subscription descriptor, or a Check with an API key). With -baseline
// (usually bench/cmd/noop) the baseline and the target run in alternation
// for -rounds rounds and the table gives the target's throughput as a
// ratio of the baseline's, which, unlike req/s, compares across machines.
package main
