package loadgen

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// callLog records which target made each call, in the order made.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) wrap(name string, next NewCaller) NewCaller {
	return func(ctx context.Context, conn *grpc.ClientConn) (Caller, error) {
		inner, err := next(ctx, conn)
		if err != nil {
			return nil, err
		}
		return callerFunc{call: func(ctx context.Context, req proto.Message) (proto.Message, error) {
			l.mu.Lock()
			l.calls = append(l.calls, name)
			l.mu.Unlock()
			return inner.Call(ctx, req)
		}}, nil
	}
}

// segment is a run of consecutive calls by one target.
type segment struct {
	Target string
	Calls  int
}

func (l *callLog) segments() []segment {
	var segs []segment
	for _, c := range l.calls {
		if n := len(segs); n > 0 && segs[n-1].Target == c {
			segs[n-1].Calls++
			continue
		}
		segs = append(segs, segment{c, 1})
	}
	return segs
}

func TestInterleaveAlternatesTargetsRoundByRound(t *testing.T) {
	ctx := testContext(t)
	addr := startNoop(t).Addr()
	tests := []struct {
		name   string
		rounds int
		warmup int
		want   []segment
	}{
		{
			name:   "three targets, three rounds, no warm-up",
			rounds: 3,
			want: []segment{
				{"A", 50}, {"B", 50}, {"C", 50},
				{"A", 50}, {"B", 50}, {"C", 50},
				{"A", 50}, {"B", 50}, {"C", 50},
			},
		},
		{
			name:   "warm-ups run once for every target before the first round",
			rounds: 2,
			warmup: 7,
			want: []segment{
				{"A", 7}, {"B", 7}, {"C", 7},
				{"A", 50}, {"B", 50}, {"C", 50},
				{"A", 50}, {"B", 50}, {"C", 50},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log callLog
			var targets []Target
			for _, name := range []string{"A", "B", "C"} {
				tg := rlsTarget(addr, 50, "portcullis")
				tg.Name, tg.Warmup = name, tt.warmup
				tg.NewCaller = log.wrap(name, tg.NewCaller)
				targets = append(targets, tg)
			}
			rep, err := Interleave(ctx, tt.rounds, targets...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, log.segments()); diff != "" {
				t.Errorf("call order (-want +got):\n%s", diff)
			}
			if rep.Rounds != tt.rounds || len(rep.Targets) != 3 {
				t.Fatalf("report has %d rounds and %d targets, want %d and 3", rep.Rounds, len(rep.Targets), tt.rounds)
			}
			for i, tr := range rep.Targets {
				if tr.Name != targets[i].Name || len(tr.Rounds) != tt.rounds || tr.Merged.Calls != uint64(50*tt.rounds) {
					t.Errorf("target %d: name %q, %d rounds, %d calls; want %q, %d, %d",
						i, tr.Name, len(tr.Rounds), tr.Merged.Calls, targets[i].Name, tt.rounds, 50*tt.rounds)
				}
			}
			if base := rep.Targets[0]; base.Ratio != 1 || base.PairedRatio != 1 {
				t.Errorf("baseline ratios = %v, %v; want 1 and 1", base.Ratio, base.PairedRatio)
			}
		})
	}
}

func TestInterleaveRefusesNothingToDo(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		name    string
		rounds  int
		targets []Target
		want    string
	}{
		{"no rounds", 0, []Target{rlsTarget("127.0.0.1:1", 1, "d")}, "rounds 0"},
		{"no targets", 1, nil, "no targets"},
		{"an invalid target", 1, []Target{{Name: "broken"}}, `target "broken"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Interleave(ctx, tt.rounds, tt.targets...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Interleave() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// round is a result with the given throughput over one second.
func round(throughput float64) Result {
	r := Result{Calls: uint64(throughput), Elapsed: time.Second, Latency: histogramOf(time.Millisecond)}
	r.summarise()
	return r
}

func TestSummariseComparesMediansAndPairs(t *testing.T) {
	tests := []struct {
		name       string
		throughput [][]float64 // per target, per round
		wantMedian []float64
		wantRatio  []float64
		wantPaired []float64
	}{
		{
			name:       "odd rounds: the middle value",
			throughput: [][]float64{{100, 200, 150}, {50, 120, 60}},
			wantMedian: []float64{150, 60},
			wantRatio:  []float64{1, 0.4},
			wantPaired: []float64{1, 0.5}, // pairs 0.5, 0.6, 0.4
		},
		{
			name:       "even rounds: the mean of the middle two",
			throughput: [][]float64{{100, 300, 200, 400}, {100, 150, 100, 200}},
			wantMedian: []float64{250, 125},
			wantRatio:  []float64{1, 0.5},
			wantPaired: []float64{1, 0.5}, // pairs 1, 0.5, 0.5, 0.5
		},
		{
			name:       "a disturbed round moves the median little and the pairs not at all",
			throughput: [][]float64{{1000, 1000, 200}, {800, 800, 160}},
			wantMedian: []float64{1000, 800},
			wantRatio:  []float64{1, 0.8},
			wantPaired: []float64{1, 0.8},
		},
		{
			name:       "a baseline that made no calls gives ratio 0, not infinity",
			throughput: [][]float64{{0}, {100}},
			wantMedian: []float64{0, 100},
			wantRatio:  []float64{0, 0},
			wantPaired: []float64{0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := make([][]Result, len(tt.throughput))
			for i, tps := range tt.throughput {
				for _, tp := range tps {
					results[i] = append(results[i], round(tp))
				}
			}
			rep := summarise(make([]Target, len(results)), results)
			for i, tr := range rep.Targets {
				if !near(tr.MedianThroughput, tt.wantMedian[i]) || !near(tr.Ratio, tt.wantRatio[i]) || !near(tr.PairedRatio, tt.wantPaired[i]) {
					t.Errorf("target %d: median %v ratio %v paired %v; want %v %v %v", i,
						tr.MedianThroughput, tr.Ratio, tr.PairedRatio, tt.wantMedian[i], tt.wantRatio[i], tt.wantPaired[i])
				}
				var calls float64
				for _, tp := range tt.throughput[i] {
					calls += tp
				}
				if want := calls / float64(len(tt.throughput[i])); !near(tr.Merged.Throughput, want) {
					t.Errorf("target %d: merged throughput %v, want the mean rate %v", i, tr.Merged.Throughput, want)
				}
			}
		})
	}
}

func TestSummariseComparesOnlyRoundsEveryTargetFinished(t *testing.T) {
	rep := summarise(make([]Target, 2), [][]Result{{round(100), round(100)}, {round(50)}})
	if rep.Rounds != 1 || len(rep.Targets[0].Rounds) != 1 || !near(rep.Targets[1].Ratio, 0.5) {
		t.Errorf("rounds %d, baseline rounds %d, ratio %v; want 1, 1, 0.5",
			rep.Rounds, len(rep.Targets[0].Rounds), rep.Targets[1].Ratio)
	}
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
