package memstore

import (
	"maps"
	"slices"
	"strconv"
	"testing"
)

func TestEvictDropsExpiredEntriesFirstThenTheSoonestToExpire(t *testing.T) {
	// Up to evictSample entries, so the sample is the whole shard.
	tests := []struct {
		name                  string
		entries               map[string]entry
		left                  []string
		wantExpired, wantEvic int
	}{
		{
			name:    "every expired entry in the sample goes, and nothing live",
			entries: map[string]entry{"a": {1, 10}, "b": {1, 20}, "c": {1, 100}},
			left:    []string{"c"}, wantExpired: 2,
		},
		{
			name:    "with none expired, the one that expires soonest goes",
			entries: map[string]entry{"a": {1, 50}, "b": {1, 30}, "c": {1, 100}},
			left:    []string{"a", "c"}, wantEvic: 1,
		},
		{
			name:    "an entry expiring exactly now counts as expired",
			entries: map[string]entry{"a": {1, 20}, "b": {1, 30}},
			left:    []string{"b"}, wantExpired: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh := &shard{entries: maps.Clone(tc.entries)}
			expired, evicted := sh.evict(20)
			if expired != tc.wantExpired || evicted != tc.wantEvic {
				t.Fatalf("evict = %d expired, %d evicted; want %d, %d", expired, evicted, tc.wantExpired, tc.wantEvic)
			}
			if got := slices.Sorted(maps.Keys(sh.entries)); !slices.Equal(got, tc.left) {
				t.Fatalf("left %v, want %v", got, tc.left)
			}
		})
	}
}

func TestSweepDropsOnlyExpiredEntriesAndKeepsGoingWhileMostAre(t *testing.T) {
	sh := &shard{entries: map[string]entry{}}
	for i := range 40 {
		sh.entries["old"+strconv.Itoa(i)] = entry{1, 10}
	}
	for i := range 4 {
		sh.entries["live"+strconv.Itoa(i)] = entry{1, 1000}
	}
	dropped := sh.sweep(20)
	if dropped != 44-len(sh.entries) {
		t.Fatalf("sweep reported %d dropped, but %d went", dropped, 44-len(sh.entries))
	}
	// Mostly expired samples make it sample again: more than one round.
	if dropped <= sweepSample {
		t.Fatalf("sweep dropped %d of 40 expired entries, want more than one sample's worth", dropped)
	}
	for i := range 4 {
		if _, ok := sh.entries["live"+strconv.Itoa(i)]; !ok {
			t.Fatalf("sweep dropped a live entry")
		}
	}
}
