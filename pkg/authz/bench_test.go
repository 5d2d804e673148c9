package authz_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/tokencache"
)

// realisticJWT is shaped like an RFC 9068 access token from a real
// provider: RS256 header with a kid, the usual claims, a 2048-bit
// signature's worth of base64. Its size is what the issuer parse and the
// cache's SHA-256 cost depend on.
func realisticJWT() string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "at+jwt", "kid": "r7mC0eL8gW9bS2vX4qN1zT6yP3aK5dJ0hF8uI2oE"})
	payload, _ := json.Marshal(map[string]any{
		"iss": jwtIssuer, "sub": "alice@example.com", "aud": "petstore", "client_id": "mobile-client",
		"exp": 1893456000, "iat": 1893452400, "jti": "0f8fad5b-d9cb-469f-a165-70867728950e",
		"scope": "pets:read pets:write", "tier": "gold",
	})
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + strings.Repeat("A", 342)
}

// BenchmarkDecide measures a decision in process, with the verifier's
// answer cached as in production (tokencache in front of a JWT verifier
// that is called once).
func BenchmarkDecide(b *testing.B) {
	raw := realisticJWT()
	tok := &identity.Token{Issuer: jwtIssuer, Subject: "alice@example.com", ClientID: "mobile-client",
		Scopes: []string{"pets:read", "pets:write"}, Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Claims: map[string]any{"tier": "gold"}}
	calls := 0
	cache, err := tokencache.New(tokencache.VerifierFunc(func(context.Context, string) (*identity.Token, error) {
		calls++
		return tok, nil
	}), catalog.TokenCachePolicy{MaxTTL: time.Hour}, tokencache.Options{Clock: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	a, err := authz.New(authz.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Update(loadCatalog(b), authz.Verifiers{"jwt-idp": {JWT: cache}}); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		req  authz.Request
	}{
		{"APIKey", req("GET", "/petstore/v1/pets?limit=10", "x-api-key: "+keyPCL, "user-agent: bench/1.0", "accept: application/json")},
		{"CachedJWT", req("GET", "/petstore/v1/pets/7", "authorization: Bearer "+raw, "user-agent: bench/1.0", "accept: application/json")},
	}
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if d, err := a.Decide(ctx, c.req); err != nil || !d.Allowed() {
				b.Fatalf("not allowed: %+v %v", d.Deny, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = a.Decide(ctx, c.req)
			}
		})
	}
	if calls != 1 {
		b.Errorf("verifier called %d times, want once: the cache should answer", calls)
	}
}
