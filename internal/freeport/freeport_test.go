package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortIsFree(t *testing.T) {
	for range 5 {
		p := Port(t)
		if p <= 0 || p > 65535 {
			t.Fatalf("port %d out of range", p)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}

func TestListenIsOnLoopbackAndAcceptsConnections(t *testing.T) {
	l := Listen(t)
	addr := l.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Fatalf("listening on %v, want a loopback address with a port", addr)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("Accept: %v", err)
	}
}
