// Package freeport finds free TCP ports for tests that start an external
// process (redis-server, nginx, an identity provider) which must be told a
// port before it listens. It is test support, off the request path.
//
// In-process servers should listen on ":0" and report their address
// instead: a port from Port can in principle be taken by another process
// before the external process binds it, so a harness that starts one
// should retry with a new port when the process reports the port in use.
package freeport
