package memstore_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/memstore"
	"github.com/portcullis-dev/portcullis/pkg/quota/quotatest"
)

func newStore(t *testing.T, opts memstore.Options) *memstore.Store {
	t.Helper()
	s, err := memstore.New(opts)
	if err != nil {
		t.Fatalf("memstore.New: %v", err)
	}
	return s
}

func TestStoreConforms(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) quota.Store { return newStore(t, memstore.Options{}) })
}

func TestNewRejectsANegativeMaxKeys(t *testing.T) {
	if _, err := memstore.New(memstore.Options{MaxKeys: -1}); err == nil {
		t.Fatal("New(MaxKeys: -1) = nil error")
	}
}

func TestApplyRejectsBadChecks(t *testing.T) {
	s := newStore(t, memstore.Options{})
	tests := []struct {
		name  string
		check quota.Check
		err   string
	}{
		{"an invalid limit", quota.Check{Key: "k", Limit: quota.Limit{Requests: 1}, Hits: 1}, "shorter than 1ms"},
		{"hits that could overflow a counter", quota.Check{Key: "k", Limit: hourly(1), Hits: 1<<40 + 1}, "hits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(t.Context(), time.Now(), []quota.Check{tc.check})
			if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, quota.ErrUnavailable) {
				t.Fatalf("Apply = %v, want an error containing %q that is not ErrUnavailable", err, tc.err)
			}
		})
	}
}

func TestMaxKeysBoundsMemoryAndCountsEvictions(t *testing.T) {
	reg := prometheus.NewRegistry()
	const maxKeys = 1024
	s := newStore(t, memstore.Options{MaxKeys: maxKeys, Registerer: reg})
	now := time.Unix(1_750_000_000, 0)
	for i := range 20 * maxKeys {
		apply(t, s, now, quota.Check{Key: "client-" + strconv.Itoa(i), Limit: hourly(10), Hits: 1, Enforce: true})
	}
	if n := s.Len(); n > maxKeys {
		t.Fatalf("Len = %d after 20×MaxKeys distinct live counters, want at most %d", n, maxKeys)
	}
	if got, want := metric(t, reg, "portcullis_quota_memstore_evictions_total"), float64(19*maxKeys); got < want {
		t.Fatalf("evictions_total = %v, want at least %v", got, want)
	}
	if got := metric(t, reg, "portcullis_quota_memstore_keys"); got != float64(s.Len()) {
		t.Fatalf("keys gauge = %v, Len = %d", got, s.Len())
	}
}

func TestExpiredCountersAreDroppedWithoutAGoroutine(t *testing.T) {
	// synctest fails the test if the store left a goroutine behind.
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := newStore(t, memstore.Options{Registerer: reg})
		now := time.Unix(1_750_000_000, 0)
		const n = 20000
		for i := range n {
			apply(t, s, now, quota.Check{Key: "old-" + strconv.Itoa(i), Limit: secondly(10), Hits: 1, Enforce: true})
		}
		// A minute on, every one of those windows has ended. New keys
		// drive the sweep; no old key is read again.
		later := now.Add(time.Minute)
		for i := range n / 4 {
			apply(t, s, later, quota.Check{Key: "new-" + strconv.Itoa(i), Limit: secondly(10), Hits: 1, Enforce: true})
		}
		if got := s.Len(); got > n/4+n/10 {
			t.Fatalf("Len = %d: %d expired counters were not swept while %d new ones came in", got, n, n/4)
		}
		if got := metric(t, reg, "portcullis_quota_memstore_expired_total"); got < n*9/10 {
			t.Fatalf("expired_total = %v, want most of %d", got, n)
		}
	})
}

func TestAnExpiredCounterReadsAsAbsent(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newStore(t, memstore.Options{Registerer: reg})
	now := time.Unix(1_750_000_000, 0)
	bucket := quota.Check{Key: "k", Limit: quota.Limit{Requests: 2, Period: time.Second, Algorithm: quota.TokenBucket}, Hits: 2, Enforce: true}
	apply(t, s, now, bucket)
	// The TAT is now+1s and expires 1ms later; by then it is dropped on
	// read, and the bucket is full again either way.
	r := apply(t, s, now.Add(time.Second+time.Millisecond), bucket)
	if r[0].Over || r[0].Remaining != 0 {
		t.Fatalf("after the bucket refilled: %+v, want 2 hits admitted", r[0])
	}
	if got := metric(t, reg, "portcullis_quota_memstore_expired_total"); got != 1 {
		t.Fatalf("expired_total = %v, want 1", got)
	}
}

func TestMetricsRegisterOnTheCallersRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	newStore(t, memstore.Options{Registerer: reg})
	if _, err := memstore.New(memstore.Options{Registerer: reg}); err == nil {
		t.Fatal("a second store on the same registry registered its metrics twice")
	}
}

func TestRequestsOnOverlappingKeysDoNotDeadlock(t *testing.T) {
	// Requests lock up to 8 shards each, listed in every order; ascending
	// lock order is what lets them all finish.
	s := newStore(t, memstore.Options{})
	now := time.Unix(1_750_000_000, 0)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 2000 {
				checks := make([]quota.Check, 4)
				for i := range checks {
					checks[i] = quota.Check{
						Key:   "k" + strconv.Itoa(rng.IntN(64)),
						Limit: quota.Limit{Requests: 1 << 30, Period: time.Minute, Algorithm: quota.SlidingWindow},
						Hits:  1, Enforce: true,
					}
				}
				if _, err := s.Apply(t.Context(), now, checks); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := uint64(0)
	for i := range 64 {
		r := apply(t, s, now, quota.Check{Key: "k" + strconv.Itoa(i), Limit: quota.Limit{Requests: 1 << 30, Period: time.Minute, Algorithm: quota.SlidingWindow}})
		total += 1<<30 - r[0].Remaining
	}
	if total != 8*2000*4 {
		t.Fatalf("counters hold %d hits, want %d", total, 8*2000*4)
	}
}

func apply(t *testing.T, s *memstore.Store, now time.Time, checks ...quota.Check) []quota.Result {
	t.Helper()
	r, err := s.Apply(t.Context(), now, checks)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return r
}

func hourly(n uint64) quota.Limit   { return quota.Limit{Requests: n, Period: time.Hour} }
func secondly(n uint64) quota.Limit { return quota.Limit{Requests: n, Period: time.Second} }

func metric(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
