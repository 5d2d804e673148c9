package tokencache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/tokencache"
)

// A typical opaque token (oidc-provider issues 43 characters) and a
// typical JWT access token's length.
var benchTokens = map[string]int{"opaque43": 43, "jwt900": 900}

func benchCache(b *testing.B, n, size int) (*tokencache.Cache, []string) {
	b.Helper()
	exp := time.Now().Add(time.Hour)
	v := tokencache.VerifierFunc(func(_ context.Context, raw string) (*identity.Token, error) {
		return &identity.Token{Subject: "s", ClientID: "c", Expiry: exp}, nil
	})
	c, err := tokencache.New(v, catalog.TokenCachePolicy{MaxTTL: time.Hour}, tokencache.Options{Registerer: prometheus.NewRegistry(), Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	toks := make([]string, n)
	for i := range toks {
		t := fmt.Sprintf("%0*d", size, i)
		toks[i] = t
		if _, err := c.Verify(context.Background(), t); err != nil {
			b.Fatal(err)
		}
	}
	return c, toks
}

// BenchmarkHit is the hot path: a token already verified.
func BenchmarkHit(b *testing.B) {
	for name, size := range benchTokens {
		b.Run(name, func(b *testing.B) {
			c, toks := benchCache(b, 1024, size)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.Verify(ctx, toks[i&1023]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkHitParallel(b *testing.B) {
	c, toks := benchCache(b, 1024, 43)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Verify(ctx, toks[i&1023]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkNegativeHit is a remembered refusal: a client retrying a bad
// token in a loop.
func BenchmarkNegativeHit(b *testing.B) {
	v := tokencache.VerifierFunc(func(context.Context, string) (*identity.Token, error) {
		return nil, fmt.Errorf("introspect: %w: token is not active", identity.ErrInvalid)
	})
	c, err := tokencache.New(v, catalog.TokenCachePolicy{NegativeTTL: time.Hour}, tokencache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const tok = "0123456789012345678901234567890123456789012"
	_, _ = c.Verify(ctx, tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Verify(ctx, tok); err == nil {
			b.Fatal("accepted")
		}
	}
}
