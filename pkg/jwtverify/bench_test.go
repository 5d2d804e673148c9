package jwtverify

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// BenchmarkVerifyCachedKey is one full verification of a token from the
// real provider with its key already fetched: parsing, the signature, and
// every claim check. It is the cost of a JWT not yet in the token cache
// (the "cold RS256 verification", whose floor is 100 µs/op).
func BenchmarkVerifyCachedKey(b *testing.B) {
	p := idptest.Start(b)
	cases := []struct {
		name   string
		client string
	}{
		{"RS256", idptest.ClientRS256},
		{"ES256", idptest.ClientES256},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			c := newClock(time.Now().Add(clockLead))
			v := newVerifier(b, p, c, func(j *catalog.JWTVerification) { j.RequireType = "at+jwt" }, Options{})
			raw := token(b, p, tc.client, idptest.ScopeRead+" "+idptest.ScopeWrite)
			ctx := context.Background()
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatalf("Verify: %v", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSetVerify adds choosing the provider by iss among the API's
// trusted ones.
func BenchmarkSetVerify(b *testing.B) {
	p := idptest.Start(b)
	c := newClock(time.Now().Add(clockLead))
	idp := providerIDP(p, nil)
	trusted := []*catalog.CompiledIdentityProvider{idp}
	set, err := NewSet(context.Background(), trusted, Options{Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	raw := token(b, p, idptest.ClientRS256, idptest.ScopeRead)
	ctx := context.Background()
	if _, err := set.Verify(ctx, raw, trusted); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := set.Verify(ctx, raw, trusted); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefuseUnknownKid is the cost of a forged token with an unknown
// kid inside the refresh cooldown: no fetch, no signature check.
func BenchmarkRefuseUnknownKid(b *testing.B) {
	p := idptest.Start(b)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(b, p, c, nil, Options{})
	ctx := context.Background()
	if _, err := v.Verify(ctx, token(b, p, idptest.ClientES256, "")); err != nil {
		b.Fatal(err)
	}
	raw := forge(b, ecKey(b), "ES256", map[jose.HeaderKey]any{"kid": "unknown"}, goodClaims(p, c.Now()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err == nil {
			b.Fatal("accepted a forged token")
		}
	}
}
