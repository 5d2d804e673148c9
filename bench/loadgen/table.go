package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints a report as an aligned table, one row per target:
// median throughput and the two ratios to the baseline (the first row),
// latency quantiles over all rounds, and calls by outcome, so that a
// number is never read without the errors that may explain it.
func WriteTable(w io.Writer, rep Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\trounds\tcalls\treq/s\tratio\tpaired\tp50\tp90\tp99\tmax\terrors\toutcomes\t\n")
	for _, t := range rep.Targets {
		m := t.Merged
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			t.Name, len(t.Rounds), m.Calls, t.MedianThroughput, t.Ratio, t.PairedRatio,
			formatLatency(m.P50), formatLatency(m.P90), formatLatency(m.P99), formatLatency(m.Max),
			formatCounts(m.Errors), formatCounts(m.Classes))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// formatLatency rounds to three significant figures: the histogram is not
// more precise than that.
func formatLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	case d >= time.Microsecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	default:
		return d.String()
	}
}

// formatCounts writes "A=1 B=2" with keys in order, or "-" when empty.
func formatCounts[K cmp.Ordered](m map[K]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v=%d", k, m[k])
	}
	return b.String()
}
