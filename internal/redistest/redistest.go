package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/internal/childproc"
)

// readyTimeout bounds how long a server may take to answer PING after it is
// started; a loaded CI machine running tests with -race needs seconds.
const readyTimeout = 15 * time.Second

// Server is one redis-server process owned by a test. Its port stays the
// same across Kill and Restart, so clients built once reconnect to it.
type Server struct {
	tb      testing.TB
	dir     string
	port    int
	leading []string // before the fixed arguments: a config file and --sentinel
	args    []string // after them: cluster settings

	mu   sync.Mutex
	proc *childproc.Process // the current run; nil before the first
}

// Start runs a standalone redis-server on a free loopback port and returns
// once it answers PING. It fails the test if redis-server is not installed
// or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, nil, nil)
}

// StartSentinel runs a Sentinel (redis-server --sentinel) that monitors
// master under name with a quorum of 1, and returns once it answers PING.
// Clients reach the master through it, as redis+sentinel:// URLs do.
func StartSentinel(tb testing.TB, master *Server, name string) *Server {
	tb.Helper()
	leading := func(dir string) []string {
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 5000\n", name, master.Port(), name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			tb.Fatalf("redistest: write %s: %v", conf, err)
		}
		return []string{conf, "--sentinel"}
	}
	return start(tb, leading, nil)
}

func start(tb testing.TB, leading, extra func(dir string) []string) *Server {
	tb.Helper()
	bin := lookBinary(tb, "redis-server")
	dir := tb.TempDir()
	var lastErr error
	// A free port found by listening on :0 can be taken by another process
	// before redis-server binds it; try a few ports before giving up.
	for attempt := 0; attempt < 5; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		s := &Server{tb: tb, dir: dir, port: ports[0]}
		if leading != nil {
			s.leading = leading(dir)
		}
		if extra != nil {
			s.args = append(extra(dir), "--cluster-port", strconv.Itoa(ports[1]))
		}
		if lastErr = s.launch(bin); lastErr == nil {
			tb.Cleanup(s.cleanup)
			return s
		}
	}
	tb.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// Addr is host:port for clients.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's TCP port, the same after Restart.
func (s *Server) Port() int { return s.port }

// Client returns a go-redis client for the server, closed when the test
// ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill would: no
// shutdown, connections reset. It returns once the process has exited, so
// the port is free.
func (s *Server) Kill() {
	s.tb.Helper()
	s.signalAndWait(syscall.SIGKILL, readyTimeout)
}

// Stop ends the server with SIGTERM, as an orderly shutdown would, and
// returns once it has exited (SIGKILL after a deadline).
func (s *Server) Stop() {
	s.tb.Helper()
	if !s.signalAndWait(syscall.SIGTERM, readyTimeout) {
		s.Kill()
	}
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing
// answers, as with a network black hole or a long GC-like stall. Resume
// undoes it; cleanup resumes a paused server before stopping it.
func (s *Server) Pause() {
	s.tb.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.tb.Helper()
	s.signal(syscall.SIGCONT)
}

// Restart starts the server again on the same port with an empty dataset
// (there is no persistence) and an empty script cache, killing it first if
// it is still running. A cluster node keeps its nodes.conf and so rejoins
// its cluster with the same identity.
func (s *Server) Restart() {
	s.tb.Helper()
	if s.running() {
		s.Kill()
	}
	if err := s.launch(lookBinary(s.tb, "redis-server")); err != nil {
		s.tb.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.Running()
}

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		s.tb.Fatalf("redistest: signal %v: server on port %d was never started", sig, s.port)
	}
	if err := proc.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v to redis-server on port %d: %v", sig, s.port, err)
	}
}

// signalAndWait reports whether the process exited within d.
func (s *Server) signalAndWait(sig syscall.Signal, d time.Duration) bool {
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	return proc.SignalAndWait(sig, d)
}

func (s *Server) cleanup() {
	if s.running() {
		s.signalAndWait(syscall.SIGKILL, readyTimeout)
	}
}

// launch starts the process and waits until it answers PING, the process
// exits, or readyTimeout passes.
func (s *Server) launch(bin string) error {
	args := append(append([]string{}, s.leading...),
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	)
	args = append(args, s.args...)
	cmd := exec.Command(bin, args...)
	proc, err := childproc.Start(cmd)
	if err != nil {
		return err
	}
	exited := proc.Exited()
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		reply, err := do(s.Addr(), "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited before answering PING; log:\n%s", s.port, s.logTail())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			proc.SignalAndWait(syscall.SIGKILL, readyTimeout)
			return fmt.Errorf("redis-server on port %d did not answer PING within %s (last: %q, %v); log:\n%s",
				s.port, readyTimeout, reply, err, s.logTail())
		}
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func lookBinary(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("redistest: %s not found in PATH (%v): these tests need a real Redis 7; install it (Debian/Ubuntu: apt-get install redis-server redis-tools)", name, err)
	}
	return p
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// do sends one command over a fresh connection and returns a simple,
// integer or bulk reply as a string, or an error reply as an error. The
// harness uses it instead of a client so that readiness checks share no
// pool or retry logic with the code under test.
func do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}
