package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// clockLead puts test clocks ahead of the provider's, so that a token
// issued a few seconds after the clock was made is not from the future:
// the provider floors iat to the second, and the clock stands still.
const clockLead = 5 * time.Second

// clock is a test clock: tokens' times and the refresh cooldowns are
// judged by it, and only the test moves it.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// providerIDP describes the test provider as the catalog would, trusting
// the audiences of both JWT clients.
func providerIDP(p *idptest.Provider, edit func(*catalog.JWTVerification)) *catalog.CompiledIdentityProvider {
	j := &catalog.JWTVerification{
		Audiences:     []string{idptest.Audience(idptest.ClientRS256), idptest.Audience(idptest.ClientES256)},
		Algorithms:    []string{"RS256", "ES256"},
		ClientIDClaim: "client_id",
	}
	if edit != nil {
		edit(j)
	}
	return &catalog.CompiledIdentityProvider{Name: "test-idp", Issuer: p.Issuer(), JWT: j}
}

// newVerifier builds a Verifier for p on a test clock.
func newVerifier(t testing.TB, p *idptest.Provider, c *clock, edit func(*catalog.JWTVerification), opts Options) *Verifier {
	t.Helper()
	opts.Now = c.Now
	v, err := New(context.Background(), providerIDP(p, edit), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func token(t testing.TB, p *idptest.Provider, client, scope string) string {
	t.Helper()
	raw, err := p.Token(context.Background(), client, scope)
	if err != nil {
		t.Fatalf("get a token: %v", err)
	}
	return raw
}

// forge signs claims with key under header fields of the test's choosing,
// with go-jose, for tokens the provider would never issue.
func forge(t testing.TB, key any, alg jose.SignatureAlgorithm, header map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range header {
		opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("signer for %s: %v", alg, err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned builds an alg "none" token, which go-jose refuses to make.
func unsigned(t testing.TB, header map[string]any, claims any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "."
}

// goodClaims are claims the test provider's verifier accepts at now.
func goodClaims(p *idptest.Provider, now time.Time) map[string]any {
	return map[string]any{
		"iss":       p.Issuer(),
		"sub":       "forged-subject",
		"aud":       idptest.Audience(idptest.ClientRS256),
		"client_id": "forged-client",
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"scope":     idptest.ScopeRead,
	}
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wantInvalid fails unless err refuses the token for reason.
func wantInvalid(t testing.TB, err error, reason Reason) {
	t.Helper()
	if !errors.Is(err, identity.ErrInvalid) {
		t.Fatalf("error = %v, want one wrapping identity.ErrInvalid (%s)", err, reason)
	}
	if errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("error = %v wraps both ErrInvalid and ErrUnavailable", err)
	}
	ie, ok := errors.AsType[*InvalidError](err)
	if !ok || ie.Reason != reason {
		t.Fatalf("error = %v, want reason %s", err, reason)
	}
}
