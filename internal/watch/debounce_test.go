package watch

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestDebouncerFoldsBurstsAndBoundsTheirLength(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name  string
		marks []time.Duration // offsets from the start at which changes are seen
		want  []time.Duration // offsets at which the debouncer fires
	}{
		{
			name:  "one change fires after the quiet period",
			marks: []time.Duration{0},
			want:  []time.Duration{100 * ms},
		},
		{
			name:  "a burst fires once, a quiet period after its last change",
			marks: []time.Duration{0, 10 * ms, 20 * ms, 90 * ms},
			want:  []time.Duration{190 * ms},
		},
		{
			name:  "changes further apart than the quiet period fire separately",
			marks: []time.Duration{0, 300 * ms},
			want:  []time.Duration{100 * ms, 400 * ms},
		},
		{
			name: "a continuous stream still fires at the burst limit",
			marks: func() []time.Duration {
				var m []time.Duration
				for at := time.Duration(0); at < 1500*ms; at += 50 * ms {
					m = append(m, at)
				}
				return m
			}(),
			// Limit 1000ms after the first; the stream then continues from
			// 1000ms and is cut again at 2000ms, but ends at 1450ms.
			want: []time.Duration{1000 * ms, 1550 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := newDebouncer(100*ms, 1000*ms)
				defer d.stop()
				start := time.Now()
				var got []time.Duration
				// advance lets fake time run to offset, recording firings.
				advance := func(offset time.Duration) {
					until := time.After(time.Until(start.Add(offset)))
					for {
						select {
						case <-d.C():
							d.fired()
							got = append(got, time.Since(start))
						case <-until:
							return
						}
					}
				}
				for _, at := range tt.marks {
					advance(at)
					d.mark(time.Now())
				}
				advance(time.Hour)
				if !slices.Equal(got, tt.want) {
					t.Errorf("fired at %v, want %v", got, tt.want)
				}
			})
		})
	}
}
