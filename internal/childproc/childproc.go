// Package childproc runs the real servers that test harnesses start as
// child processes (redis-server for internal/redistest, node for
// internal/idptest): started so that the kernel kills them if the test
// binary dies, waited for in the background, and signalled without racing
// their exit. It is test infrastructure, never on the request path.
package childproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is one run of a child process.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// Start starts cmd and waits for it in the background. On Linux the child
// is killed if the test binary dies without running its cleanups (a panic
// or a -timeout), so no server outlives its test.
func Start(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed once the process has exited and been waited for.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet; false for nil.
func (p *Process) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig; a process that has already exited is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// SignalAndWait sends sig (and SIGCONT after any signal but SIGKILL, since
// a paused process would not act on SIGTERM) and reports whether the
// process exited within d. A nil Process has nothing to wait for.
func (p *Process) SignalAndWait(sig syscall.Signal, d time.Duration) bool {
	if p == nil {
		return true
	}
	_ = p.cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}
