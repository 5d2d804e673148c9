package tokencache

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

func TestEntriesAreKeyedByTheTokensHashNeverTheToken(t *testing.T) {
	const raw = "2YotnFZFEjr1zCsicMWpAA-opaque-token"
	v := VerifierFunc(func(context.Context, string) (*identity.Token, error) {
		return &identity.Token{Subject: "alice", Expiry: time.Now().Add(time.Hour)}, nil
	})
	c, err := New(v, catalog.TokenCachePolicy{}, Options{MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(raw))
	found := 0
	for i := range c.shards {
		for k, e := range c.shards[i].m {
			found++
			if k != want {
				t.Errorf("key %x, want the token's SHA-256 %x", k, want)
			}
			if strings.Contains(string(k[:]), raw) || (e.err != nil && strings.Contains(e.err.Error(), raw)) {
				t.Error("an entry holds the raw token")
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d entries, want 1", found)
	}
}

func TestShardingRoundsMaxEntries(t *testing.T) {
	tests := []struct {
		name           string
		maxEntries     int
		shards, perOne int
	}{
		{name: "small caches are one exact shard", maxEntries: 3, shards: 1, perOne: 3},
		{name: "just under two shards' worth", maxEntries: 1023, shards: 1, perOne: 1023},
		{name: "two shards", maxEntries: 1024, shards: 2, perOne: 512},
		{name: "the default", maxEntries: 0, shards: 64, perOne: DefaultMaxEntries / 64},
		{name: "rounded up per shard", maxEntries: 100_001, shards: 64, perOne: 1563},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(VerifierFunc(func(context.Context, string) (*identity.Token, error) { return nil, nil }),
				catalog.TokenCachePolicy{}, Options{MaxEntries: tt.maxEntries})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.shards) != tt.shards || c.perShard != tt.perOne {
				t.Fatalf("%d shards of %d, want %d of %d", len(c.shards), c.perShard, tt.shards, tt.perOne)
			}
		})
	}
}
