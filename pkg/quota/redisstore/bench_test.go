package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// BenchmarkApply measures parallel requests of 1 and 4 checks on a real
// Redis, 16 callers per CPU, and reports how many requests shared each
// round trip (batch/op) and each script call (req/script).
func BenchmarkApply(b *testing.B) {
	srv := redistest.Start(b)
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("checks=%d", n), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			s := newStore(b, srv.Client(b), Options{Prefix: fmt.Sprintf("bench%d:", n), Registerer: reg})
			limits := []quota.Limit{
				{Requests: 1 << 40, Period: time.Second},
				{Requests: 1 << 40, Period: time.Hour, Algorithm: quota.SlidingWindow},
				{Requests: 1 << 30, Period: time.Hour, Algorithm: quota.TokenBucket},
				{Requests: 1 << 40, Monthly: true},
			}
			var caller atomic.Int64
			// Many requests in flight per CPU, as on a busy rate-limit
			// server: that is when coalescing pays.
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := fmt.Sprint("caller", caller.Add(1))
				checks := make([]quota.Check, n)
				for i := range checks {
					checks[i] = quota.Check{Key: key, Tag: key, Limit: limits[i], Hits: 1, Enforce: true}
				}
				for pb.Next() {
					if _, err := s.Apply(context.Background(), time.Now(), checks); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			batches, requests := histogram(b, reg, "portcullis_redisstore_batch_size")
			if batches > 0 {
				b.ReportMetric(requests/float64(batches), "batch/op")
			}
			if calls, judged := histogram(b, reg, "portcullis_redisstore_script_batch_size"); calls > 0 {
				b.ReportMetric(judged/float64(calls), "req/script")
			}
		})
	}
}
