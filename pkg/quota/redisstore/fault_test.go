package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/internal/poll"
	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// callDeadline is what Envoy's rate-limit filter allows by default.
const callDeadline = 20 * time.Millisecond

// lateSlack is how far past its deadline a call may return: scheduler
// latency on a loaded CI machine under -race, not waiting on Redis.
const lateSlack = 30 * time.Millisecond

// load runs callers that Apply with a callDeadline context until stop, and
// records what came back.
type load struct {
	ok, unavailable atomic.Int64
	maxLate         atomic.Int64 // ns past the deadline
	control         atomic.Int64 // ns a bare 20ms context was late: the machine's own scheduling noise
	other           chan error
	stop            chan struct{}
	wg              sync.WaitGroup
}

func startLoad(s *Store, callers int) *load {
	l := &load{other: make(chan error, callers), stop: make(chan struct{})}
	l.wg.Go(func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
			start := time.Now()
			select {
			case <-l.stop:
				cancel()
				return
			case <-ctx.Done():
			}
			cancel()
			storeMax(&l.control, int64(time.Since(start)-callDeadline))
		}
	})
	for c := range callers {
		l.wg.Go(func() {
			lim := quota.Limit{Requests: 1 << 30, Period: time.Hour}
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
				start := time.Now()
				_, err := s.Apply(ctx, time.Now(), []quota.Check{{Key: fmt.Sprint("load", c), Tag: "load", Limit: lim, Hits: 1, Enforce: true}})
				late := time.Since(start) - callDeadline
				cancel()
				storeMax(&l.maxLate, int64(late))
				switch {
				case err == nil:
					l.ok.Add(1)
				case errors.Is(err, quota.ErrUnavailable):
					l.unavailable.Add(1)
				default:
					select {
					case l.other <- err:
					default:
					}
					return
				}
			}
		})
	}
	return l
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if v <= m || a.CompareAndSwap(m, v) {
			return
		}
	}
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	close(l.other)
	for err := range l.other {
		t.Errorf("Apply returned %v, which does not wrap ErrUnavailable", err)
	}
}

// liveHeap is the heap still reachable after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestKilledRedisFailsWithinDeadlineAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	reg := prometheus.NewRegistry()
	// A small pool makes go-redis's own dialing goroutines few and known.
	const poolSize = 4
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: poolSize})
	t.Cleanup(func() { _ = client.Close() })
	s := newStore(t, client, Options{Registerer: reg})

	l := startLoad(s, 16)
	defer l.finish(t)
	poll.Until(t, 5*time.Second, "requests to succeed before the kill", func() bool { return l.ok.Load() > 200 })
	goroutinesUp := runtime.NumGoroutine()

	srv.Kill()
	killedAt := time.Now()
	failed := l.unavailable.Load()
	poll.Until(t, 5*time.Second, "requests to fail while Redis is down", func() bool { return l.unavailable.Load() > failed+500 })
	// Sample goroutines through a stretch of the outage: no per-request
	// goroutine may pile up behind the dead server.
	maxGoroutines := 0
	heapBefore := liveHeap()
	failed = l.unavailable.Load()
	poll.Until(t, 5*time.Second, "more failures while Redis is down", func() bool {
		maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
		return l.unavailable.Load() > failed+1000
	})
	downFor := time.Since(killedAt)
	heapAfter := liveHeap()

	srv.Restart()
	restartedAt := time.Now()
	probe := quota.Limit{Requests: 3, Period: time.Hour}
	poll.Until(t, 2*time.Second, "a request to succeed after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		defer cancel()
		_, err := s.Apply(ctx, time.Now(), []quota.Check{{Key: "probe", Limit: probe, Hits: 0, Enforce: true}})
		return err == nil
	})
	recovery := time.Since(restartedAt)
	for i := range 4 {
		res, err := s.Apply(context.Background(), time.Now(), []quota.Check{{Key: "after", Limit: probe, Hits: 1, Enforce: true}})
		if err != nil {
			t.Fatalf("request %d after recovery: %v", i, err)
		}
		if res[0].Over != (i == 3) {
			t.Fatalf("request %d after recovery: over=%v; want 3 admitted then denied", i, res[0].Over)
		}
	}

	t.Logf("down %s: %d calls failed, at most %s late (a bare timer: %s); goroutines %d while up, at most %d while down; live heap %d then %d KiB; recovered %s after restart",
		downFor.Round(time.Millisecond), l.unavailable.Load(), time.Duration(l.maxLate.Load()).Round(time.Microsecond),
		time.Duration(l.control.Load()).Round(time.Microsecond), goroutinesUp, maxGoroutines, heapBefore>>10, heapAfter>>10, recovery.Round(time.Millisecond))
	if late, allowed := time.Duration(l.maxLate.Load()), lateSlack+time.Duration(l.control.Load()); late > allowed {
		t.Errorf("a call returned %s after its %s deadline; want at most %s (%s, plus %s that a bare timer was late on this machine meanwhile)",
			late, callDeadline, allowed, lateSlack, time.Duration(l.control.Load()))
	}
	// go-redis dials in goroutines of its own, a few per pool slot (it
	// has one pool for commands and one for pipelines); nothing may scale
	// with the number of requests, thousands here.
	if bound := goroutinesUp + 8*poolSize + 16; maxGoroutines > bound {
		t.Errorf("goroutines grew from %d to %d while Redis was down; bound %d", goroutinesUp, maxGoroutines, bound)
	}
	// Failed requests leave nothing behind: the live heap after a
	// thousand of them is what it was before, give or take GC noise.
	if grew := int64(heapAfter) - int64(heapBefore); grew > 4<<20 {
		t.Errorf("live heap grew by %d KiB over 1000 failed requests", grew>>10)
	}
	if n := counterValue(t, reg, "portcullis_redisstore_errors_total", ""); n == 0 {
		t.Error("no error was counted in portcullis_redisstore_errors_total")
	}
}

func TestUnresponsiveRedisHitsDeadlinesThenFillsQueue(t *testing.T) {
	srv := redistest.Start(t)
	reg := prometheus.NewRegistry()
	s := newStore(t, srv.Client(t), Options{Workers: 1, MaxBatch: 1, QueueSize: 2, Registerer: reg})
	req := []quota.Check{{Key: "k", Limit: quota.Limit{Requests: 10, Period: time.Hour}, Hits: 1, Enforce: true}}
	if _, err := s.Apply(context.Background(), time.Now(), req); err != nil {
		t.Fatalf("Apply before the pause: %v", err)
	}

	srv.Pause()
	// The worker is stuck on the first call; the next two wait in the
	// queue; every later one finds it full.
	var kinds []string
	for i := range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		start := time.Now()
		_, err := s.Apply(ctx, time.Now(), req)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, quota.ErrUnavailable) {
			t.Fatalf("call %d while paused: %v, want ErrUnavailable", i, err)
		}
		if took > callDeadline+lateSlack {
			t.Fatalf("call %d took %s, past its %s deadline", i, took, callDeadline)
		}
		switch {
		case errors.Is(err, errQueueFull):
			kinds = append(kinds, "full")
		case errors.Is(err, context.DeadlineExceeded):
			kinds = append(kinds, "deadline")
		default:
			kinds = append(kinds, err.Error())
		}
	}
	want := []string{"deadline", "deadline", "deadline", "full", "full", "full"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("failures %v, want %v", kinds, want)
	}
	if n := counterValue(t, reg, "portcullis_redisstore_errors_total", "queue_full"); n != 3 {
		t.Fatalf("queue_full errors counted %v, want 3", n)
	}

	srv.Resume()
	poll.Until(t, 5*time.Second, "a request to succeed after the resume", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := s.Apply(ctx, time.Now(), req)
		return err == nil
	})
}
