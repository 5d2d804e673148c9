// Command noop serves the no-op rate-limit, ext_authz and access-log
// services of bench/noop, so that ghz or bench/cmd/loadgen can measure a
// baseline in another process, the way they measure cmd/ratelimit and
// cmd/authz. It is never on a real request path.
//
//	noop -addr 127.0.0.1:18081[,127.0.0.1:18082…] -shutdown-timeout 5s
//
// Every address gets its own server with all three services, plus gRPC
// health and reflection. SIGINT or SIGTERM stops it gracefully.
package main
