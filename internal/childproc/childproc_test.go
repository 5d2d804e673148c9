package childproc

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestAStoppedChildIsSeenExitedAndSignallingItAgainIsHarmless(t *testing.T) {
	p, err := Start(exec.Command("sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("not running right after Start")
	}
	if !p.SignalAndWait(syscall.SIGTERM, 5*time.Second) {
		t.Fatal("did not exit within 5s of SIGTERM")
	}
	if p.Running() {
		t.Fatal("still running after it exited")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("signalling an exited child: %v", err)
	}
	var none *Process
	if none.Running() || !none.SignalAndWait(syscall.SIGKILL, time.Second) {
		t.Fatal("a nil Process should be neither running nor waited for")
	}
}

func TestStartReportsAMissingBinary(t *testing.T) {
	if _, err := Start(exec.Command("/nonexistent/portcullis-binary")); err == nil {
		t.Fatal("want an error")
	}
}
