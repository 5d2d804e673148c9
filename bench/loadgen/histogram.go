package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, as HDR histograms are: values below
// 2^subBits nanoseconds each have their own bucket, and every power-of-two
// range above is split into 2^subBits equal buckets. A bucket's width is
// therefore less than 1/2^subBits of the values it holds, so a quantile is
// known to within 0.4% while recording stays an array increment and the
// memory stays fixed, however many calls a run makes.
const (
	subBits    = 8
	subBuckets = 1 << subBits
	// maxShift bounds the recordable range at 2^(maxShift+subBits+1) ns,
	// about 18 minutes; longer values are clamped into the last bucket
	// (Max still reports them exactly).
	maxShift   = 32
	numBuckets = (maxShift + 2) * subBuckets
)

// Histogram records durations with bounded relative error in fixed memory.
// The zero value is empty and ready to use. It is not safe for concurrent
// use: the generator gives each worker its own and merges them after the
// run, which is what keeps recording free of atomics and shared cache lines.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    uint64 // nanoseconds; overflows only after ~584 years of latency
	min    uint64
	max    uint64
}

// bucketOf returns the bucket holding v nanoseconds.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	if shift > maxShift {
		return numBuckets - 1
	}
	return (shift+1)*subBuckets + int(v>>uint(shift)) - subBuckets
}

// bucketBounds returns the smallest and largest value bucket i holds.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	shift := uint(i/subBuckets - 1)
	m := uint64(i%subBuckets + subBuckets)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one observation. A negative duration (a clock step) counts as 0.
func (h *Histogram) Record(d time.Duration) {
	var v uint64
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h so a worker can reuse it across runs without allocating.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest observation, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest observation, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the arithmetic mean, exactly; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the nearest-rank q-quantile (q in [0, 1]): the smallest
// recorded value v such that at least q of the observations are ≤ v,
// reported as the upper bound of v's bucket so that a latency is never
// understated, and clamped to [Min, Max]. Values under 256ns are exact.
// An empty histogram, or a q that is NaN, gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 || math.IsNaN(q) {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	// The small slack keeps float error in q·n (0.07·100 is 7.000…01) from
	// moving the rank by one.
	rank := uint64(math.Ceil(q*float64(h.n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
