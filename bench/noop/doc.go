// Package noop serves Envoy's rate-limit, ext_authz and access-log gRPC
// services doing nothing but what any server must (decode the request,
// build and encode an answer), as the baseline Portcullis's servers are
// measured against.
//
// It is off the request path: it stands in for cmd/ratelimit and cmd/authz
// (steps 1, 2 and 4 of DESIGN's diagram) in benchmarks, which run it in
// the same process as bench/loadgen or as the bench/cmd/noop binary, and
// report Portcullis's throughput as a fraction of this one's measured in
// the same run on the same machine. What is left after dividing is the
// cost of Portcullis's own work.
package noop
