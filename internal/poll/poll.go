// Package poll is how tests wait for something that happens on another
// goroutine or in another process (a reload to apply, a server to come
// back): check a condition on a short tick until it holds or a deadline
// passes. Never a fixed sleep standing in for the event.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until calls cond every Interval until it returns true, and fails tb with
// what it was waiting for if d passes first.
func Until(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}
