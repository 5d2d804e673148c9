package jwtverify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// staticIdP serves a discovery document and a JWKS from memory, for the
// key-handling cases a real provider cannot be made to produce: odd keys,
// wrong content types, a discovery document naming another issuer.
type staticIdP struct {
	srv        *httptest.Server
	jwks       atomic.Pointer[[]byte]
	jwksType   string
	discovered string // issuer named by discovery; "" means the server's own
	fetches    atomic.Int64
}

func startStaticIdP(t testing.TB, jwks []byte) *staticIdP {
	t.Helper()
	s := &staticIdP{jwksType: "application/json"}
	s.jwks.Store(&jwks)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		iss := s.discovered
		if iss == "" {
			iss = s.srv.URL
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": s.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", s.jwksType)
		_, _ = w.Write(*s.jwks.Load())
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *staticIdP) idp() *catalog.CompiledIdentityProvider {
	return &catalog.CompiledIdentityProvider{Name: "static", Issuer: s.srv.URL, JWT: &catalog.JWTVerification{
		Audiences: []string{"api"}, ClientIDClaim: "client_id",
	}}
}

func (s *staticIdP) claims(now time.Time) map[string]any {
	return map[string]any{"iss": s.srv.URL, "aud": "api", "sub": "s", "exp": now.Add(time.Minute).Unix()}
}

func publicJWKS(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.Public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWKSKeepsOnlyAsymmetricSignatureKeys(t *testing.T) {
	good := jose.JSONWebKey{Key: ecKey(t), KeyID: "good", Algorithm: "ES256", Use: "sig"}
	enc := jose.JSONWebKey{Key: ecKey(t), KeyID: "enc", Algorithm: "ES256", Use: "enc"}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(publicJWKS(t, good, enc), &set); err != nil {
		t.Fatal(err)
	}
	set.Keys = append(set.Keys,
		json.RawMessage(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}`),
		json.RawMessage(`{"kty":"XYZ","kid":"alien"}`),
	)
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s := startStaticIdP(t, body)
	c := newClock(time.Now().Add(clockLead))
	v, err := New(context.Background(), s.idp(), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, forge(t, good, jose.ES256, nil, s.claims(c.Now()))); err != nil {
		t.Fatalf("Verify with the good key beside unusable ones: %v", err)
	}
	cases := []struct {
		name string
		raw  string
	}{
		{"encryption key", forge(t, enc, jose.ES256, nil, s.claims(c.Now()))},
		{"HMAC key from the JWKS", forge(t, []byte("secret-secret-secret-secret-secret"), jose.HS256, map[jose.HeaderKey]any{"kid": "hmac"}, s.claims(c.Now()))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.raw)
			if !errors.Is(err, identity.ErrInvalid) {
				t.Fatalf("Verify = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestKeyFetchFailuresAreUnavailable(t *testing.T) {
	key := jose.JSONWebKey{Key: ecKey(t), KeyID: "k", Algorithm: "ES256"}
	cases := []struct {
		name  string
		setup func(*staticIdP)
	}{
		{"JWKS served as HTML", func(s *staticIdP) { s.jwksType = "text/html" }},
		{"discovery names another issuer", func(s *staticIdP) { s.discovered = "https://elsewhere.example" }},
		{"JWKS without usable keys", func(s *staticIdP) { b := []byte(`{"keys":[]}`); s.jwks.Store(&b) }},
		{"JWKS not JSON", func(s *staticIdP) { b := []byte(`{"keys":`); s.jwks.Store(&b) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startStaticIdP(t, publicJWKS(t, key))
			tc.setup(s)
			c := newClock(time.Now().Add(clockLead))
			v, err := New(context.Background(), s.idp(), Options{Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), forge(t, key, jose.ES256, nil, s.claims(c.Now())))
			if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrInvalid) {
				t.Fatalf("Verify = %v, want ErrUnavailable only", err)
			}
		})
	}
}

func TestTokenWithoutKidIsTriedAgainstEveryKey(t *testing.T) {
	a := jose.JSONWebKey{Key: ecKey(t), KeyID: "a", Algorithm: "ES256"}
	b := jose.JSONWebKey{Key: ecKey(t), KeyID: "b", Algorithm: "ES256"}
	s := startStaticIdP(t, publicJWKS(t, a, b))
	c := newClock(time.Now().Add(clockLead))
	v, err := New(context.Background(), s.idp(), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	noKid := func(k jose.JSONWebKey) any { return k.Key } // a raw key: go-jose sets no kid
	ctx := context.Background()
	if _, err := v.Verify(ctx, forge(t, noKid(b), jose.ES256, nil, s.claims(c.Now()))); err != nil {
		t.Fatalf("Verify without kid, signed by the second key: %v", err)
	}
	_, err = v.Verify(ctx, forge(t, ecKey(t), jose.ES256, nil, s.claims(c.Now())))
	wantInvalid(t, err, ReasonSignature)
	if n := s.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (the miss is within the cooldown)", n)
	}
}

func TestUnverifiedIssuer(t *testing.T) {
	key := jose.JSONWebKey{Key: ecKey(t), KeyID: "k", Algorithm: "ES256"}
	cases := []struct {
		name   string
		raw    string
		iss    string
		reason Reason // "" when no error
	}{
		{"signed token", forge(t, key, jose.ES256, nil, map[string]any{"iss": "https://idp.example"}), "https://idp.example", ""},
		{"no iss", forge(t, key, jose.ES256, nil, map[string]any{"sub": "x"}), "", ""},
		{"iss a number", forge(t, key, jose.ES256, nil, map[string]any{"iss": 7}), "", ReasonMalformed},
		{"payload an array", unsigned(t, map[string]any{"alg": "none"}, []string{"iss"}), "", ReasonMalformed},
		{"not a JWS", "abc.def", "", ReasonMalformed},
		{"too long", string(make([]byte, MaxTokenBytes+1)), "", ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := UnverifiedIssuer(tc.raw)
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				return
			}
			if err != nil || iss != tc.iss {
				t.Fatalf("UnverifiedIssuer = %q, %v; want %q", iss, err, tc.iss)
			}
		})
	}
}
