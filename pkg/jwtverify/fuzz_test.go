package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

var genFuzzSeeds = flag.Bool("gen-fuzz-seeds", false, "regenerate testdata/keys.json and the FuzzVerify seed corpus")

// The fuzz verifier's fixed world: the seed tokens in testdata were
// signed by testdata/keys.json for this issuer and audience, and expire in
// 2100; the clock stands in 2030.
const (
	fuzzIssuer   = "https://idp.fuzz.example"
	fuzzAudience = "https://api.fuzz.example"
)

var fuzzNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func fuzzKeys(t testing.TB) jose.JSONWebKeySet {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys.json"))
	if err != nil {
		t.Fatalf("read the fuzz keys (regenerate with -gen-fuzz-seeds): %v", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("decode testdata/keys.json: %v", err)
	}
	return set
}

// fuzzVerifier verifies against testdata/keys.json served by a local
// JWKS endpoint, with the keys already fetched, so that no input can make
// it wait on the network.
func fuzzVerifier(t testing.TB) *Verifier {
	t.Helper()
	s := startStaticIdP(t, publicJWKS(t, fuzzKeys(t).Keys...))
	c := newClock(fuzzNow)
	idp := &catalog.CompiledIdentityProvider{Name: "fuzz", Issuer: fuzzIssuer, JWT: &catalog.JWTVerification{
		JWKSURI: s.srv.URL + "/jwks", Audiences: []string{fuzzAudience}, ClientIDClaim: "client_id",
		ClockSkew: time.Minute, RequireType: "at+jwt",
	}}
	v, err := New(context.Background(), idp, Options{Now: c.Now, MaxKeyAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Prefetch(context.Background()); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	return v
}

// FuzzVerify feeds random strings and mutated tokens to Verify: it must
// never panic and must refuse everything it does not accept as invalid,
// never as unavailable (its keys are cached); what it accepts must come
// from the issuer for the audience.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJ9.eyJ9.", "Bearer x"} {
		f.Add(s)
	}
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(context.Background(), raw)
		if err != nil {
			if !errors.Is(err, identity.ErrInvalid) || errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("Verify error %v, want ErrInvalid only", err)
			}
			if _, ok := errors.AsType[*InvalidError](err); !ok {
				t.Fatalf("Verify error %v is not an *InvalidError", err)
			}
			return
		}
		if tok.Issuer != fuzzIssuer || !v.audienceOK(tok.Audience) || tok.Expiry.IsZero() {
			t.Fatalf("accepted a token of issuer %q, audience %q, expiry %v", tok.Issuer, tok.Audience, tok.Expiry)
		}
	})
}

// TestCommittedFuzzSeedsStillVerify rewrites testdata/keys.json and the seed corpus
// when run with -gen-fuzz-seeds; otherwise it checks that the committed
// seeds still verify, so that the corpus keeps starting the fuzzer from
// valid tokens.
func TestCommittedFuzzSeedsStillVerify(t *testing.T) {
	if *genFuzzSeeds {
		writeFuzzSeeds(t)
	}
	v := fuzzVerifier(t)
	valid := 0
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read the seed corpus: %v", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := corpusString(b)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if _, err := v.Verify(context.Background(), raw); err == nil {
			valid++
		}
	}
	if valid < 2 {
		t.Fatalf("%d seeds verify, want at least the RS256 and ES256 ones", valid)
	}
}

// corpusString reads a one-string file in the go test fuzz v1 format.
func corpusString(b []byte) (string, error) {
	const header = "go test fuzz v1\nstring("
	s := string(b)
	if len(s) < len(header)+2 || s[:len(header)] != header {
		return "", errors.New("not a go test fuzz v1 string entry")
	}
	body := s[len(header):]
	end := len(body) - 1
	for end >= 0 && (body[end] == '\n' || body[end] == ')') {
		end--
	}
	return strconv.Unquote(body[:end+1])
}

func writeFuzzSeeds(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: rsaKey, KeyID: "fuzz-rsa", Algorithm: "RS256", Use: "sig"},
		{Key: ecKey, KeyID: "fuzz-ec", Algorithm: "ES256", Use: "sig"},
	}}
	b, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "keys.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(map[string]any)) map[string]any {
		m := map[string]any{
			"iss": fuzzIssuer, "aud": fuzzAudience, "sub": "fuzz-subject", "client_id": "fuzz-client",
			"scope": "pets:read pets:write", "iat": fuzzNow.Unix(), "exp": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
		}
		if edit != nil {
			edit(m)
		}
		return m
	}
	typ := map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}
	seeds := map[string]string{
		"valid_rs256":     forge(t, set.Keys[0], jose.RS256, typ, claims(nil)),
		"valid_es256":     forge(t, set.Keys[1], jose.ES256, typ, claims(nil)),
		"scp_array_azp":   forge(t, set.Keys[1], jose.ES256, typ, claims(func(m map[string]any) { delete(m, "scope"); m["scp"] = []string{"a", "b"}; m["azp"] = "x" })),
		"aud_array":       forge(t, set.Keys[1], jose.ES256, typ, claims(func(m map[string]any) { m["aud"] = []string{"other", fuzzAudience} })),
		"expired":         forge(t, set.Keys[0], jose.RS256, typ, claims(func(m map[string]any) { m["exp"] = fuzzNow.Add(-time.Hour).Unix() })),
		"nbf_ahead":       forge(t, set.Keys[1], jose.ES256, typ, claims(func(m map[string]any) { m["nbf"] = fuzzNow.Add(time.Hour).Unix() })),
		"wrong_aud":       forge(t, set.Keys[1], jose.ES256, typ, claims(func(m map[string]any) { m["aud"] = "other" })),
		"wrong_typ":       forge(t, set.Keys[1], jose.ES256, map[jose.HeaderKey]any{jose.HeaderType: "JWT"}, claims(nil)),
		"unknown_kid":     forge(t, jose.JSONWebKey{Key: ecKey, KeyID: "nope", Algorithm: "ES256"}, jose.ES256, typ, claims(nil)),
		"alg_none":        unsigned(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "fuzz-rsa"}, claims(nil)),
		"hs256_public":    forge(t, []byte(fmt.Sprintf("%x", rsaKey.PublicKey.N.Bytes())), jose.HS256, map[jose.HeaderKey]any{"kid": "fuzz-rsa"}, claims(nil)),
		"claims_not_json": unsigned(t, map[string]any{"alg": "RS256", "kid": "fuzz-rsa"}, "just a string"),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, raw := range seeds {
		body := "go test fuzz v1\nstring(" + strconv.Quote(raw) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
