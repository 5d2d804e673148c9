package memstore_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/memstore"
)

// BenchmarkApply measures one request of 1 or 4 checks from parallel
// callers, spread over 4096 counters so that most requests lock different
// shards, as distinct clients would. Run with -benchmem; allocations per
// request divided by checks is the figure to keep at or under 2 per check.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run("checks="+strconv.Itoa(n), func(b *testing.B) {
			s, err := memstore.New(memstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			limits := []quota.Limit{
				{Requests: 1 << 40, Period: time.Second},
				{Requests: 1 << 40, Period: time.Minute, Algorithm: quota.SlidingWindow},
				{Requests: 1 << 30, Period: time.Hour, Algorithm: quota.TokenBucket},
				{Requests: 1 << 40, Period: time.Hour},
			}
			const keys = 4096
			requests := make([][]quota.Check, keys)
			for i := range requests {
				for j := range n {
					requests[i] = append(requests[i], quota.Check{
						Key: "domain|descriptor|" + strconv.Itoa((i+j*977)%keys), Tag: strconv.Itoa(i % 16),
						Limit: limits[j], Hits: 1, Enforce: true,
					})
				}
			}
			now := time.Now()
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(7919)
				for pb.Next() {
					i++
					if _, err := s.Apply(b.Context(), now, requests[i%keys]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
