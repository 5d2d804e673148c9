package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func histogramOf(ds ...time.Duration) *Histogram {
	h := new(Histogram)
	for _, d := range ds {
		h.Record(d)
	}
	return h
}

func seq(from, to time.Duration) []time.Duration {
	var ds []time.Duration
	for d := from; d <= to; d++ {
		ds = append(ds, d)
	}
	return ds
}

func TestQuantilesOfKnownInputs(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"median of 1..100 is 50", seq(1, 100), 0.50, 50},
		{"p90 of 1..100 is 90", seq(1, 100), 0.90, 90},
		{"p99 of 1..100 is 99", seq(1, 100), 0.99, 99},
		{"p7 of 1..100 is 7 despite 0.07·100 rounding up", seq(1, 100), 0.07, 7},
		{"p100 is the maximum", seq(1, 100), 1, 100},
		{"p0 is the minimum", seq(1, 100), 0, 1},
		{"a single value is every quantile", []time.Duration{42}, 0.5, 42},
		{"median of an even count is the lower middle (nearest rank)", []time.Duration{10, 20, 30, 40}, 0.5, 20},
		{"p99 of 99 fast and 1 slow is fast", append(slices.Repeat([]time.Duration{5}, 99), 200), 0.99, 5},
		{"p99 of 98 fast and 2 slow is slow", append(slices.Repeat([]time.Duration{5}, 98), 200, 200), 0.99, 200},
		{"negative durations count as zero", []time.Duration{-5, -1, 3}, 0.5, 0},
		{"empty histogram gives zero", nil, 0.5, 0},
		{"large values keep the exact maximum", []time.Duration{time.Hour, time.Hour}, 1, time.Hour},
		{"a value beyond the range is clamped but still the maximum", []time.Duration{time.Microsecond, 100 * time.Hour}, 1, 100 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := histogramOf(tt.values...)
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestQuantileErrorIsBelowHalfAPercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]time.Duration, 20000)
	for i := range values {
		// Log-uniform from 1µs to about 1s: every bucket size is exercised.
		values[i] = time.Duration(float64(int64(1000)<<rng.IntN(20)) * (1 + rng.Float64()))
	}
	h := histogramOf(values...)
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 0.999} {
		exact := sorted[int(math.Ceil(q*float64(len(sorted))-1e-9))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > 0.004*float64(exact) {
			t.Errorf("Quantile(%v) = %v, exact %v: must be at or at most 0.4%% above", q, got, exact)
		}
	}
	if h.Max() != sorted[len(sorted)-1] || h.Min() != sorted[0] {
		t.Errorf("min, max = %v, %v; want %v, %v", h.Min(), h.Max(), sorted[0], sorted[len(sorted)-1])
	}
}

func TestBucketsTileTheRangeWithoutGaps(t *testing.T) {
	var prevHi uint64
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= subBuckets && float64(hi-lo+1)/float64(lo) > 1.0/subBuckets {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its values", i, lo, hi, subBuckets)
		}
		prevHi = hi
	}
	if got := bucketOf(^uint64(0)); got != numBuckets-1 {
		t.Errorf("bucketOf(max uint64) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestMergeEqualsRecordingEverythingInOne(t *testing.T) {
	a := histogramOf(seq(1, 50)...)
	b := histogramOf(seq(51, 100)...)
	var empty Histogram
	a.Merge(b)
	a.Merge(&empty)
	all := histogramOf(seq(1, 100)...)
	if *a != *all {
		t.Errorf("merged histogram differs from one recorded at once: count %d vs %d, min %v vs %v, max %v vs %v",
			a.Count(), all.Count(), a.Min(), all.Min(), a.Max(), all.Max())
	}
	if got, want := a.Mean(), time.Duration(50); got != want {
		t.Errorf("Mean() = %v, want %v (5050/100 truncated)", got, want)
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 || a.Mean() != 0 {
		t.Errorf("after Reset: count %d, median %v, mean %v; want all zero", a.Count(), a.Quantile(0.5), a.Mean())
	}
}
