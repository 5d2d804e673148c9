package jwtverify

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

func TestProviderTokensVerifyAndYieldTheirClaims(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	cases := []struct {
		name    string
		client  string
		jwksURI func() string // "" means discovery
	}{
		{"RS256 with keys from discovery", idptest.ClientRS256, func() string { return "" }},
		{"ES256 with keys from discovery", idptest.ClientES256, func() string { return "" }},
		{"RS256 with the catalog's jwksURI", idptest.ClientRS256, p.JWKSURL},
		{"ES256 with the catalog's jwksURI", idptest.ClientES256, p.JWKSURL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, p, c, func(j *catalog.JWTVerification) {
				j.JWKSURI = tc.jwksURI()
				j.RequireType = "at+jwt"
			}, Options{})
			raw := token(t, p, tc.client, idptest.ScopeRead+" "+idptest.ScopeWrite)
			tok, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			var claims struct {
				Exp int64 `json:"exp"`
			}
			jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
				t.Fatal(err)
			}
			if tok.Issuer != p.Issuer() || tok.Subject != tc.client || tok.ClientID != tc.client {
				t.Errorf("iss, sub, client = %q, %q, %q; want %q, %q, %q", tok.Issuer, tok.Subject, tok.ClientID, p.Issuer(), tc.client, tc.client)
			}
			if want := []string{idptest.ScopeRead, idptest.ScopeWrite}; !slices.Equal(tok.Scopes, want) {
				t.Errorf("scopes = %v, want %v", tok.Scopes, want)
			}
			if want := []string{idptest.Audience(tc.client)}; !slices.Equal(tok.Audience, want) {
				t.Errorf("audience = %v, want %v", tok.Audience, want)
			}
			if !tok.Expiry.Equal(time.Unix(claims.Exp, 0)) {
				t.Errorf("expiry = %v, want %v", tok.Expiry, time.Unix(claims.Exp, 0))
			}
			if tok.Claims["jti"] == nil {
				t.Errorf("claims lack jti: %v", tok.Claims)
			}
		})
	}
}

func TestRefusesAlgNone(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	// Even listed, "none" is dropped from the allow-list.
	v := newVerifier(t, p, c, func(j *catalog.JWTVerification) { j.Algorithms = append(j.Algorithms, "none") }, Options{})
	raw := unsigned(t,
		map[string]any{"alg": "none", "typ": "at+jwt", "kid": p.Key(t, "RS256").KeyID},
		goodClaims(p, c.Now()))
	_, err := v.Verify(context.Background(), raw)
	wantInvalid(t, err, ReasonAlgorithm)
	if n := p.Counts(t).JWKS; n != 0 {
		t.Errorf("an alg none token caused %d JWKS fetches, want 0", n)
	}
}

func TestRefusesHS256SignedWithTheRSAPublicKey(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, func(j *catalog.JWTVerification) { j.Algorithms = append(j.Algorithms, "HS256") }, Options{})
	// Prime the key cache with a good token, so that the forged one meets
	// the RSA key it names.
	if _, err := v.Verify(context.Background(), token(t, p, idptest.ClientRS256, "")); err != nil {
		t.Fatalf("Verify a good token: %v", err)
	}
	rsaKey := p.Key(t, "RS256")
	der, err := x509.MarshalPKIXPublicKey(rsaKey.Public().Key.(*rsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		secret []byte
	}{
		{"PEM of the public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})},
		{"DER of the public key", der},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := forge(t, tc.secret, jose.HS256,
				map[jose.HeaderKey]any{"kid": rsaKey.KeyID, jose.HeaderType: "at+jwt"},
				goodClaims(p, c.Now()))
			_, err := v.Verify(context.Background(), raw)
			wantInvalid(t, err, ReasonAlgorithm)
		})
	}
}

func TestRefusesExpiredTokenBeyondClockSkew(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, func(j *catalog.JWTVerification) { j.ClockSkew = 30 * time.Second }, Options{})
	raw := token(t, p, idptest.ClientRS256, "")
	tok, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify a fresh token: %v", err)
	}
	cases := []struct {
		name    string
		at      time.Time
		refused bool
	}{
		{"just before exp", tok.Expiry.Add(-time.Second), false},
		{"past exp within the skew", tok.Expiry.Add(29 * time.Second), false},
		{"at exp plus the skew", tok.Expiry.Add(30 * time.Second), true},
		{"an hour past exp", tok.Expiry.Add(time.Hour), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at := newClock(tc.at)
			v := newVerifier(t, p, at, func(j *catalog.JWTVerification) { j.ClockSkew = 30 * time.Second }, Options{})
			_, err := v.Verify(context.Background(), raw)
			if !tc.refused {
				if err != nil {
					t.Fatalf("Verify at exp%+v: %v", tc.at.Sub(tok.Expiry), err)
				}
				return
			}
			wantInvalid(t, err, ReasonExpired)
		})
	}
}

func TestRefusesTokenBeforeItsNotBefore(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, func(j *catalog.JWTVerification) { j.ClockSkew = 10 * time.Second }, Options{})
	key := p.Key(t, "RS256")
	cases := []struct {
		name    string
		nbf     time.Duration // from now
		refused bool
	}{
		{"nbf in the past", -time.Minute, false},
		{"nbf ahead within the skew", 9 * time.Second, false},
		// go-oidc alone would accept this: its nbf leeway is five minutes.
		{"nbf a minute ahead", time.Minute, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := goodClaims(p, c.Now())
			claims["nbf"] = c.Now().Add(tc.nbf).Unix()
			raw := forge(t, key, jose.RS256, nil, claims)
			_, err := v.Verify(context.Background(), raw)
			if !tc.refused {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantInvalid(t, err, ReasonNotYetValid)
		})
	}
}

func TestRefusesTokenIssuedInTheFutureOrWithoutExpiry(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{})
	key := p.Key(t, "ES256")
	cases := []struct {
		name   string
		edit   func(map[string]any)
		reason Reason
	}{
		{"iat a minute ahead", func(m map[string]any) { m["iat"] = c.Now().Add(time.Minute).Unix() }, ReasonIssuedInFuture},
		{"no exp", func(m map[string]any) { delete(m, "exp") }, ReasonNoExpiry},
		{"exp a string", func(m map[string]any) { m["exp"] = "tomorrow" }, ReasonMalformed},
		{"nbf a string", func(m map[string]any) { m["nbf"] = "now" }, ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := goodClaims(p, c.Now())
			tc.edit(claims)
			_, err := v.Verify(context.Background(), forge(t, key, jose.ES256, nil, claims))
			wantInvalid(t, err, tc.reason)
		})
	}
}

func TestRefusesWrongIssuer(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{})
	claims := goodClaims(p, c.Now())
	claims["iss"] = "https://evil.example"
	_, err := v.Verify(context.Background(), forge(t, p.Key(t, "RS256"), jose.RS256, nil, claims))
	wantInvalid(t, err, ReasonIssuer)
	if n := p.Counts(t).JWKS; n != 0 {
		t.Errorf("a token from another issuer caused %d JWKS fetches, want 0", n)
	}
}

func TestRefusesWrongAudience(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	// Trusts only the ES256 resource: a token for the RS256 one is for
	// another API.
	v := newVerifier(t, p, c, func(j *catalog.JWTVerification) {
		j.Audiences = []string{"https://other.example", idptest.Audience(idptest.ClientES256)}
	}, Options{})
	if _, err := v.Verify(context.Background(), token(t, p, idptest.ClientES256, "")); err != nil {
		t.Fatalf("the second configured audience is refused: %v", err)
	}
	_, err := v.Verify(context.Background(), token(t, p, idptest.ClientRS256, ""))
	wantInvalid(t, err, ReasonAudience)
}

func TestRefusesTypeMismatchWhenRequired(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	key := p.Key(t, "RS256")
	cases := []struct {
		name    string
		require string
		typ     any // nil: no typ header
		refused bool
	}{
		{"at+jwt required, JWT given", "at+jwt", "JWT", true},
		{"at+jwt required, none given", "at+jwt", nil, true},
		{"at+jwt required, application/at+jwt given", "at+jwt", "application/at+jwt", false},
		{"application/at+jwt required, AT+JWT given", "application/at+jwt", "AT+JWT", false},
		{"nothing required, JWT given", "", "JWT", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, p, c, func(j *catalog.JWTVerification) { j.RequireType = tc.require }, Options{})
			h := map[jose.HeaderKey]any{}
			if tc.typ != nil {
				h[jose.HeaderType] = tc.typ
			}
			_, err := v.Verify(context.Background(), forge(t, key, jose.RS256, h, goodClaims(p, c.Now())))
			if !tc.refused {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantInvalid(t, err, ReasonType)
		})
	}
}

func TestRefusesTamperedSignatureWithoutFetching(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{})
	raw := token(t, p, idptest.ClientRS256, "")
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	before := p.Counts(t).JWKS
	c.Advance(time.Minute) // no cooldown holds a refresh back
	// Signed by a key that is not the provider's, under the provider's kid.
	forged := forge(t, ecKey(t), jose.ES256, map[jose.HeaderKey]any{"kid": p.Key(t, "ES256").KeyID}, goodClaims(p, c.Now()))
	_, err := v.Verify(context.Background(), forged)
	wantInvalid(t, err, ReasonSignature)
	if after := p.Counts(t).JWKS; after != before {
		t.Errorf("a bad signature under a known kid caused %d JWKS fetches, want 0", after-before)
	}
}

func TestClaimsMapping(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	key := p.Key(t, "RS256")
	cases := []struct {
		name        string
		clientClaim string
		edit        func(map[string]any)
		client      string
		scopes      []string
	}{
		{"scope string", "client_id", func(m map[string]any) { m["scope"] = "a  b c" }, "forged-client", []string{"a", "b", "c"}},
		{"scp array", "client_id", func(m map[string]any) { delete(m, "scope"); m["scp"] = []any{"a", "b", 3} }, "forged-client", []string{"a", "b"}},
		{"scp string", "client_id", func(m map[string]any) { delete(m, "scope"); m["scp"] = "a b" }, "forged-client", []string{"a", "b"}},
		{"no scopes", "client_id", func(m map[string]any) { delete(m, "scope") }, "forged-client", nil},
		{"client id from azp", "azp", func(m map[string]any) { m["azp"] = "the-azp" }, "the-azp", []string{idptest.ScopeRead}},
		{"configured claim missing", "azp", func(map[string]any) {}, "", []string{idptest.ScopeRead}},
		{"aud as an array", "client_id", func(m map[string]any) {
			m["aud"] = []any{"https://other.example", idptest.Audience(idptest.ClientRS256)}
		}, "forged-client", []string{idptest.ScopeRead}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, p, c, func(j *catalog.JWTVerification) { j.ClientIDClaim = tc.clientClaim }, Options{})
			claims := goodClaims(p, c.Now())
			tc.edit(claims)
			tok, err := v.Verify(context.Background(), forge(t, key, jose.RS256, nil, claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tok.ClientID != tc.client || !slices.Equal(tok.Scopes, tc.scopes) {
				t.Fatalf("client, scopes = %q, %q; want %q, %q", tok.ClientID, tok.Scopes, tc.client, tc.scopes)
			}
		})
	}
}

func TestUnknownKidFloodCausesFewFetches(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{})
	ctx := context.Background()
	if _, err := v.Verify(ctx, token(t, p, idptest.ClientES256, "")); err != nil {
		t.Fatalf("Verify a good token: %v", err)
	}
	// Past the cooldown, the flood may cause one fetch, shared by all.
	c.Advance(DefaultRefreshCooldown)

	const n, workers = 1000, 16
	forger := ecKey(t)
	tokens := make([]string, n)
	for i := range tokens {
		kid := make([]byte, 8)
		if _, err := rand.Read(kid); err != nil {
			t.Fatal(err)
		}
		tokens[i] = forge(t, forger, jose.ES256, map[jose.HeaderKey]any{"kid": hex.EncodeToString(kid)}, goodClaims(p, c.Now()))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan string)
	for range workers {
		wg.Go(func() {
			for raw := range next {
				_, err := v.Verify(ctx, raw)
				errs <- err
			}
		})
	}
	for _, raw := range tokens {
		next <- raw
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		wantInvalid(t, err, ReasonUnknownKey)
	}
	if got := p.Counts(t).JWKS; got > 2 {
		t.Fatalf("priming and %d tokens with unknown kids caused %d JWKS fetches, want at most 2", n, got)
	} else {
		t.Logf("priming and %d tokens with unknown kids: %d JWKS fetches", n, got)
	}
}

func TestRotatedKeyIsAcceptedWithinTheCooldown(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{})
	ctx := context.Background()
	old := token(t, p, idptest.ClientRS256, "")
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("Verify before rotation: %v", err)
	}
	p.RotateKeys(t)
	fresh := token(t, p, idptest.ClientRS256, "")

	// Keys were fetched just now: the new kid waits for the cooldown.
	_, err := v.Verify(ctx, fresh)
	wantInvalid(t, err, ReasonUnknownKey)

	c.Advance(DefaultRefreshCooldown)
	if DefaultRefreshCooldown > 15*time.Second {
		t.Fatalf("DefaultRefreshCooldown = %s, above the 15 s a rotated key may wait", DefaultRefreshCooldown)
	}
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("Verify with the new kid one cooldown later: %v", err)
	}
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("Verify with the old kid, still published: %v", err)
	}
}

func TestWithdrawnKeyIsRefusedAfterRefresh(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{MaxKeyAge: time.Minute})
	ctx := context.Background()
	old := token(t, p, idptest.ClientES256, "")
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	p.RotateKeysDroppingOld(t)
	c.Advance(DefaultRefreshCooldown)
	// A token with the new kid refreshes the keys; the old kid is gone.
	if _, err := v.Verify(ctx, token(t, p, idptest.ClientES256, "")); err != nil {
		t.Fatalf("Verify with the new kid: %v", err)
	}
	_, err := v.Verify(ctx, old)
	wantInvalid(t, err, ReasonUnknownKey)
}

func TestKeysOlderThanMaxKeyAgeAreRefreshedInTheBackground(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{MaxKeyAge: time.Minute})
	ctx := context.Background()
	raw := token(t, p, idptest.ClientRS256, "")
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatalf("Verify while refreshing: %v", err)
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for p.Counts(t).JWKS < 2 {
		select {
		case <-deadline.C:
			t.Fatalf("no background JWKS fetch after MaxKeyAge; counts %+v", p.Counts(t))
		case <-poll.C:
		}
	}
}

func TestProviderDownWithoutCachedKeysIsUnavailable(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	raw := token(t, p, idptest.ClientRS256, "")
	v := newVerifier(t, p, c, nil, Options{})
	ctx := context.Background()
	p.Stop()

	_, err := v.Verify(ctx, raw)
	if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrInvalid) {
		t.Fatalf("Verify with the provider down and no keys: %v, want ErrUnavailable only", err)
	}
	if err := v.Prefetch(ctx); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Prefetch with the provider down: %v, want ErrUnavailable", err)
	}

	p.Restart()
	// Within the retry interval the last failure is repeated, not retried.
	if _, err := v.Verify(ctx, raw); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Verify within the retry interval: %v, want ErrUnavailable", err)
	}
	c.Advance(DefaultRetryInterval)
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatalf("Verify once the provider is back: %v", err)
	}
}

func TestCachedKeysServeWhileProviderIsDown(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	v := newVerifier(t, p, c, nil, Options{})
	ctx := context.Background()
	raw := token(t, p, idptest.ClientRS256, "")
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	c.Advance(2 * DefaultRefreshCooldown)
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatalf("Verify with cached keys while the provider is down: %v", err)
	}
	// An unknown kid is refused, not UNAVAILABLE: a fail-open gateway must
	// not let forged kids through while the provider is down.
	forged := forge(t, ecKey(t), jose.ES256, map[jose.HeaderKey]any{"kid": "no-such-kid"}, goodClaims(p, c.Now()))
	_, err := v.Verify(ctx, forged)
	wantInvalid(t, err, ReasonUnknownKey)
}

func TestHungProviderIsUnavailableWithinFetchTimeout(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	raw := token(t, p, idptest.ClientRS256, "")
	v := newVerifier(t, p, c, nil, Options{FetchTimeout: 200 * time.Millisecond})
	p.Pause()
	defer p.Resume()
	start := time.Now()
	_, err := v.Verify(context.Background(), raw)
	if !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Verify against a hung provider: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Verify took %s against a hung provider with a 200ms fetch timeout", d)
	}
}

func TestCallerDeadlineBoundsTheWaitForKeys(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	raw := token(t, p, idptest.ClientRS256, "")
	v := newVerifier(t, p, c, nil, Options{FetchTimeout: time.Minute})
	p.Pause()
	defer p.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, raw)
	if !errors.Is(err, identity.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify past the caller's deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
}

func TestNewRefusesUnusableConfiguration(t *testing.T) {
	cases := []struct {
		name string
		idp  *catalog.CompiledIdentityProvider
	}{
		{"nil", nil},
		{"no jwt section", &catalog.CompiledIdentityProvider{Name: "x", Issuer: "https://x"}},
		{"no audiences", &catalog.CompiledIdentityProvider{Name: "x", Issuer: "https://x", JWT: &catalog.JWTVerification{}}},
		{"only symmetric algorithms", &catalog.CompiledIdentityProvider{Name: "x", Issuer: "https://x", JWT: &catalog.JWTVerification{
			Audiences: []string{"a"}, Algorithms: []string{"HS256", "none"},
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := New(context.Background(), tc.idp, Options{}); err == nil {
				t.Fatalf("New = %v, want an error", v)
			}
		})
	}
}
