package freeport

import (
	"net"
	"testing"
)

// Listen returns a TCP listener on a free loopback port, closed when the
// test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("freeport: listen on a free loopback port: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Port returns a loopback TCP port that was free a moment ago. The kernel
// hands out ephemeral ports in rotation, so ports from successive calls
// differ in practice without any bookkeeping here.
func Port(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("freeport: listen on a free loopback port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("freeport: release port %d: %v", port, err)
	}
	return port
}
