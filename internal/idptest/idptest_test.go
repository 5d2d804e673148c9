package idptest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// publicKeys fetches the provider's published JWKS the way a verifier
// does, so it is counted.
func publicKeys(t *testing.T, p *Provider) jose.JSONWebKeySet {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, p.JWKSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := p.do(req, &set); err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("published key %s is not public", k.KeyID)
		}
	}
	return set
}

// verifyJWT checks token's signature against the published keys and
// returns its header and claims.
func verifyJWT(t *testing.T, set jose.JSONWebKeySet, token string, alg jose.SignatureAlgorithm) (jose.Header, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("parse token as %s JWS: %v", alg, err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q matches %d published keys, want 1", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("verify %s token with kid %s: %v", alg, h.KeyID, err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("decode claims: %v", err)
	}
	return h, claims
}

func TestJWTClientsGetSignedAccessTokensForTheirAudience(t *testing.T) {
	p := Start(t)
	ctx := context.Background()
	set := publicKeys(t, p)
	cases := []struct {
		name   string
		client string
		alg    jose.SignatureAlgorithm
	}{
		{"RS256", ClientRS256, jose.RS256},
		{"ES256", ClientES256, jose.ES256},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := p.Token(ctx, tc.client, ScopeRead+" "+ScopeWrite)
			if err != nil {
				t.Fatal(err)
			}
			h, claims := verifyJWT(t, set, raw, tc.alg)
			if typ := h.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
				t.Errorf("typ = %v, want at+jwt", typ)
			}
			if k := p.Key(t, string(tc.alg)); k.KeyID != h.KeyID {
				t.Errorf("signed with kid %s, Key(%s) says %s", h.KeyID, tc.alg, k.KeyID)
			}
			want := map[string]any{
				"iss":       p.Issuer(),
				"aud":       Audience(tc.client),
				"client_id": tc.client,
				"sub":       tc.client,
				"scope":     ScopeRead + " " + ScopeWrite,
			}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("claim %s = %v, want %v", k, claims[k], v)
				}
			}
			exp, _ := claims["exp"].(float64)
			iat, _ := claims["iat"].(float64)
			if got := time.Duration(exp-iat) * time.Second; got != p.TokenTTL() {
				t.Errorf("exp - iat = %s, want the token TTL %s", got, p.TokenTTL())
			}
		})
	}
}

func TestTokenTTLOptionSetsExpiry(t *testing.T) {
	p := Start(t, WithTokenTTL(5*time.Second))
	raw, err := p.Token(context.Background(), ClientRS256, "")
	if err != nil {
		t.Fatal(err)
	}
	_, claims := verifyJWT(t, publicKeys(t, p), raw, jose.RS256)
	exp, _ := claims["exp"].(float64)
	iat, _ := claims["iat"].(float64)
	if exp-iat != 5 {
		t.Fatalf("exp - iat = %v s, want 5", exp-iat)
	}
}

func TestOpaqueTokenIsActiveUntilRevoked(t *testing.T) {
	p := Start(t)
	ctx := context.Background()
	raw, err := p.Token(ctx, ClientOpaque, ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(raw, ".") == 2 {
		t.Fatalf("opaque client got a JWT-shaped token")
	}
	got, err := p.Introspect(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"active": true, "client_id": ClientOpaque, "scope": ScopeRead, "iss": p.Issuer(), "aud": Audience(ClientOpaque)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("introspection %s = %v, want %v", k, got[k], v)
		}
	}
	if err := p.Revoke(ctx, raw); err != nil {
		t.Fatal(err)
	}
	got, err = p.Introspect(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got["active"] != false {
		t.Fatalf("revoked token introspects as %v, want active false", got)
	}
	c := p.Counts(t)
	if c.Token != 1 || c.Introspection != 2 || c.Revocation != 1 {
		t.Fatalf("counts = %+v, want 1 token, 2 introspection, 1 revocation", c)
	}
}

func TestIntrospectionAcceptsClientSecretPost(t *testing.T) {
	p := Start(t)
	ctx := context.Background()
	raw, err := p.Token(ctx, ClientOpaque, "")
	if err != nil {
		t.Fatal(err)
	}
	form := strings.NewReader("token=" + raw + "&client_id=" + ClientPortcullis + "&client_secret=" + Secret(ClientPortcullis))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.IntrospectionURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var body map[string]any
	if err := p.do(req, &body); err != nil {
		t.Fatal(err)
	}
	if body["active"] != true {
		t.Fatalf("introspection with client_secret_post = %v, want active", body)
	}
}

func TestUnknownClientIsRefused(t *testing.T) {
	p := Start(t)
	_, err := p.Token(context.Background(), "nobody", "")
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("Token(nobody) error = %v, want invalid_client", err)
	}
}

func TestUnknownScopeIsNotGranted(t *testing.T) {
	p := Start(t)
	raw, err := p.Token(context.Background(), ClientRS256, ScopeRead+" pets:admin")
	if err != nil {
		t.Fatal(err)
	}
	_, claims := verifyJWT(t, publicKeys(t, p), raw, jose.RS256)
	if claims["scope"] != ScopeRead {
		t.Fatalf("scope = %v, want only %s", claims["scope"], ScopeRead)
	}
}

func TestRotateKeysSignsWithNewKidAndKeepsOld(t *testing.T) {
	p := Start(t)
	ctx := context.Background()
	before := p.Key(t, "RS256").KeyID
	opaque, err := p.Token(ctx, ClientOpaque, "")
	if err != nil {
		t.Fatal(err)
	}
	fresh := p.RotateKeys(t)
	if len(fresh) != 2 {
		t.Fatalf("RotateKeys returned kids %v, want one RSA and one EC", fresh)
	}
	raw, err := p.Token(ctx, ClientRS256, "")
	if err != nil {
		t.Fatal(err)
	}
	set := publicKeys(t, p)
	h, _ := verifyJWT(t, set, raw, jose.RS256)
	if h.KeyID == before || !contains(fresh, h.KeyID) {
		t.Fatalf("after rotation signed with kid %s, want one of %v", h.KeyID, fresh)
	}
	if len(set.Key(before)) != 1 {
		t.Fatalf("old kid %s no longer published after RotateKeys", before)
	}
	if got, err := p.Introspect(ctx, opaque); err != nil || got["active"] != true {
		t.Fatalf("opaque token after rotation: %v, %v; want active", got, err)
	}
}

func TestRotateKeysDroppingOldWithdrawsOldKid(t *testing.T) {
	p := Start(t)
	before := p.Key(t, "ES256").KeyID
	fresh := p.RotateKeysDroppingOld(t)
	set := publicKeys(t, p)
	if len(set.Key(before)) != 0 {
		t.Fatalf("old kid %s still published", before)
	}
	if len(set.Keys) != len(fresh) {
		t.Fatalf("published %d keys, want only the %d new ones", len(set.Keys), len(fresh))
	}
}

func TestStopTakesProviderDownAndRestartKeepsKeysAndCounts(t *testing.T) {
	p := Start(t)
	ctx := context.Background()
	if got := p.Counts(t); got != (Counts{}) {
		t.Fatalf("counts after Start = %+v, want zero: the readiness probe must not count", got)
	}
	raw, err := p.Token(ctx, ClientRS256, "")
	if err != nil {
		t.Fatal(err)
	}
	publicKeys(t, p)
	port := p.Port()

	p.Stop()
	if _, err := p.Token(ctx, ClientRS256, ""); err == nil {
		t.Fatal("token endpoint answered after Stop")
	}

	p.Restart()
	if p.Port() != port {
		t.Fatalf("port changed across restart: %d then %d", port, p.Port())
	}
	verifyJWT(t, publicKeys(t, p), raw, jose.RS256)
	if got, want := p.Counts(t), (Counts{JWKS: 2, Token: 1}); got != want {
		t.Fatalf("counts across restart = %+v, want %+v", got, want)
	}
}

func TestPausedProviderDoesNotAnswerUntilResumed(t *testing.T) {
	p := Start(t)
	p.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Token(ctx, ClientRS256, ""); err == nil {
		t.Fatal("paused provider issued a token")
	}
	p.Resume()
	if _, err := p.Token(context.Background(), ClientRS256, ""); err != nil {
		t.Fatalf("token after Resume: %v", err)
	}
}
