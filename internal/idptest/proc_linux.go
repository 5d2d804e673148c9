package idptest

import "syscall"

// sysProcAttr asks the kernel to kill node if the test binary dies without
// running its cleanups (a panic or a -timeout), so no provider outlives its
// test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
