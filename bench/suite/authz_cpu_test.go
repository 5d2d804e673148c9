package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
)

// processCPU is the CPU time the process pid has used, all of its
// threads together: the sum of its threads' run time in nanoseconds from
// /proc/PID/task/*/schedstat, or, where the kernel keeps no scheduler
// statistics, utime plus stime from /proc/PID/stat, in 10ms ticks. A
// thread that has exited drops out of the sum; Go's runtime keeps its
// threads, so the two readings around a pass see the same ones.
func processCPU(pid int) (time.Duration, error) {
	if d, err := threadsCPU(pid); err == nil {
		return d, nil
	}
	return statCPU(pid)
}

func threadsCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "[0-9]*", "schedstat"))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("read scheduler statistics of %d: %d threads, %v", pid, len(tasks), err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // the thread exited just now
			}
			return 0, fmt.Errorf("read scheduler statistics of %d: %w", pid, err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("read scheduler statistics of %d: empty %s", pid, t)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read scheduler statistics of %d: %w", pid, err)
		}
		sum += ns
	}
	return time.Duration(sum), nil
}

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for every architecture Go runs on.
const userHZ = 100

func statCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time of %d: no command name in /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of %d: %d fields after the command name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read CPU time of %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// pidOf finds the process running bin with listenAddr among its
// arguments: one that startProcess started from this test's own build
// directory, so no other process can match.
func pidOf(tb testing.TB, bin, listenAddr string) int {
	tb.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue // exited, or not ours to read
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[0] != bin {
			continue
		}
		for _, a := range args[1:] {
			if a == listenAddr {
				pid, _ := strconv.Atoi(filepath.Base(d))
				return pid
			}
		}
	}
	tb.Fatalf("no process %s listening on %s", bin, listenAddr)
	return 0
}

// cpuMeter charges a server's CPU time to the runs of one target, read
// in the same interleaved rounds that measure throughput. The generator
// makes every worker's Caller before a run's first call and closes them
// all after its last (warm-up included, as a run of its own), so the
// reading taken as the first Caller is made and the one taken as the last
// is closed bound the run; targets run one at a time, so the server
// spends that time on this target's calls.
type cpuMeter struct {
	pid int

	mu    sync.Mutex
	open  int
	start time.Duration
	runs  []time.Duration // CPU time of each run, warm-up first
	err   error
}

// wrap counts inner's Callers in and out.
func (m *cpuMeter) wrap(inner loadgen.NewCaller) loadgen.NewCaller {
	return func(ctx context.Context, conn *grpc.ClientConn) (loadgen.Caller, error) {
		m.enter()
		c, err := inner(ctx, conn)
		if err != nil {
			m.leave()
			return nil, err
		}
		return &meteredCaller{Caller: c, m: m}, nil
	}
}

func (m *cpuMeter) enter() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == 0 {
		var err error
		m.start, err = processCPU(m.pid)
		m.err = errors.Join(m.err, err)
	}
	m.open++
}

func (m *cpuMeter) leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.open--
	if m.open == 0 {
		end, err := processCPU(m.pid)
		m.err = errors.Join(m.err, err)
		m.runs = append(m.runs, end-m.start)
	}
}

// perCall is the median over the measured runs (the warm-up left out
// when there was one) of CPU time per call.
func (m *cpuMeter) perCall(t loadgen.Target) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, fmt.Errorf("CPU time of %s: %w", t.Name, m.err)
	}
	runs := m.runs
	if t.Warmup > 0 && len(runs) > 0 {
		runs = runs[1:]
	}
	if len(runs) == 0 || t.Requests == 0 {
		return 0, fmt.Errorf("CPU time of %s: no run measured", t.Name)
	}
	per := make([]float64, len(runs))
	for i, d := range runs {
		per[i] = float64(d) / float64(t.Requests)
	}
	return time.Duration(median(per)), nil
}

type meteredCaller struct {
	loadgen.Caller
	m *cpuMeter
}

func (c *meteredCaller) Close() error {
	err := c.Caller.Close()
	c.m.leave()
	return err
}

// median of xs, sorted in place; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}
