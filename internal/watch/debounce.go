package watch

import "time"

// debouncer folds a burst of marks into one firing: it fires wait after the
// last mark, but no later than maxWait after the first mark of the burst, so
// a file rewritten continuously is still reloaded.
type debouncer struct {
	wait, maxWait time.Duration
	timer         *time.Timer
	armed         bool
	first         time.Time
}

func newDebouncer(wait, maxWait time.Duration) *debouncer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &debouncer{wait: wait, maxWait: maxWait, timer: t}
}

// mark records a change seen at now.
func (d *debouncer) mark(now time.Time) {
	if !d.armed {
		d.armed = true
		d.first = now
	}
	delay := d.wait
	if left := d.first.Add(d.maxWait).Sub(now); left < delay {
		delay = max(left, 0)
	}
	d.timer.Reset(delay)
}

// C is the channel to select on; nil (never ready) when no change is pending.
func (d *debouncer) C() <-chan time.Time {
	if !d.armed {
		return nil
	}
	return d.timer.C
}

// fired must be called after receiving from C, to start a new burst.
func (d *debouncer) fired() { d.armed = false }

func (d *debouncer) stop() { d.timer.Stop() }
