package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Report is the outcome of Interleave: one entry per target, in the order
// given, the first being the baseline every ratio is relative to.
type Report struct {
	Rounds  int
	Targets []TargetReport
}

// TargetReport is one target's rounds and how it compares with the
// baseline.
type TargetReport struct {
	Name string
	// Rounds holds each round's result, in order.
	Rounds []Result
	// Merged is all rounds together: their latencies in one histogram,
	// their calls over their summed time.
	Merged Result
	// MedianThroughput is the median of the rounds' throughputs: one round
	// disturbed by another tenant of the machine moves it little.
	MedianThroughput float64
	// Ratio is MedianThroughput over the baseline's MedianThroughput.
	Ratio float64
	// PairedRatio is the median over rounds of this target's throughput
	// over the baseline's in the same round. Each pair ran seconds apart,
	// so slow drift of the machine cancels within a pair; when Ratio and
	// PairedRatio disagree much, the run was too noisy to trust.
	PairedRatio float64
}

// Interleave runs every target rounds times in alternation (A B C A B C
// …), so that whatever else the machine is doing hits all targets alike,
// and reports each target against the first. All targets are dialled and
// warmed up, in order, before the first round. Calls that fail are
// counted in the results; an error means a target could not be dialled or
// a round could not finish, and comes with the rounds completed so far.
func Interleave(ctx context.Context, rounds int, targets ...Target) (Report, error) {
	if rounds < 1 {
		return Report{}, fmt.Errorf("interleave: rounds %d: must be at least 1", rounds)
	}
	if len(targets) == 0 {
		return Report{}, errors.New("interleave: no targets")
	}
	clients := make([]*Client, 0, len(targets))
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, t := range targets {
		c, err := Dial(ctx, t)
		if err != nil {
			return Report{}, fmt.Errorf("interleave: %w", err)
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		if err := c.Warmup(ctx); err != nil {
			return Report{}, fmt.Errorf("interleave: %w", err)
		}
	}

	results := make([][]Result, len(targets))
	for r := range rounds {
		for i, c := range clients {
			res, err := c.Run(ctx)
			if err != nil {
				return summarise(targets, results), fmt.Errorf("interleave: round %d: %w", r+1, err)
			}
			results[i] = append(results[i], res)
		}
	}
	return summarise(targets, results), nil
}

// summarise builds the report from per-target, per-round results; the
// rounds completed by every target are the ones compared.
func summarise(targets []Target, results [][]Result) Report {
	rounds := 0
	if len(results) > 0 {
		rounds = len(results[0])
		for _, rs := range results {
			rounds = min(rounds, len(rs))
		}
	}
	rep := Report{Rounds: rounds, Targets: make([]TargetReport, len(results))}
	for i, rs := range results {
		tr := &rep.Targets[i]
		tr.Name = targets[i].Name
		tr.Rounds = rs[:rounds]
		tr.Merged.Latency = new(Histogram)
		tps := make([]float64, rounds)
		for r, res := range tr.Rounds {
			tr.Merged.merge(res)
			tps[r] = res.Throughput
		}
		tr.MedianThroughput = median(tps)
	}
	if rounds == 0 {
		return rep
	}
	base := rep.Targets[0]
	for i := range rep.Targets {
		tr := &rep.Targets[i]
		tr.Ratio = ratio(tr.MedianThroughput, base.MedianThroughput)
		paired := make([]float64, rounds)
		for r := range rounds {
			paired[r] = ratio(tr.Rounds[r].Throughput, base.Rounds[r].Throughput)
		}
		tr.PairedRatio = median(paired)
	}
	return rep
}

// median of xs (the mean of the middle two for an even count); 0 for none.
// xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	mid := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[mid]
	}
	return (xs[mid-1] + xs[mid]) / 2
}

func ratio(x, base float64) float64 {
	if base == 0 {
		return 0
	}
	return x / base
}
