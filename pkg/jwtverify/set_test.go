package jwtverify

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

func TestSetPicksTheVerifierByIssuerAmongTrustedProviders(t *testing.T) {
	a, b := idptest.Start(t), idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	idpA, idpB := providerIDP(a, nil), providerIDP(b, nil)
	idpA.Name, idpB.Name = "a", "b"
	introspectOnly := &catalog.CompiledIdentityProvider{Name: "opaque", Issuer: "https://opaque.example", Introspection: &catalog.Introspection{}}
	set, err := NewSet(context.Background(), []*catalog.CompiledIdentityProvider{idpA, idpB, introspectOnly}, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Verifier(introspectOnly.Issuer); ok {
		t.Fatal("an introspection-only provider got a JWT verifier")
	}
	ctx := context.Background()
	fromA, fromB := token(t, a, idptest.ClientRS256, ""), token(t, b, idptest.ClientES256, "")
	cases := []struct {
		name    string
		raw     string
		trusted []*catalog.CompiledIdentityProvider
		issuer  string // "" when refused as untrusted
	}{
		{"a's token, a trusted", fromA, []*catalog.CompiledIdentityProvider{idpA}, a.Issuer()},
		{"b's token, both trusted", fromB, []*catalog.CompiledIdentityProvider{idpA, idpB}, b.Issuer()},
		{"b's token, only a trusted", fromB, []*catalog.CompiledIdentityProvider{idpA}, ""},
		{"a's token, none trusted", fromA, nil, ""},
		{"a's token, only a JWT-less provider trusted", fromA, []*catalog.CompiledIdentityProvider{introspectOnly}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := set.Verify(ctx, tc.raw, tc.trusted)
			if tc.issuer == "" {
				wantInvalid(t, err, ReasonUntrustedIssuer)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tok.Issuer != tc.issuer {
				t.Fatalf("issuer = %q, want %q", tok.Issuer, tc.issuer)
			}
		})
	}
	if n := b.Counts(t).JWKS; n != 1 {
		t.Errorf("b served %d JWKS fetches, want 1: an untrusted token must not fetch keys", n)
	}
}

func TestSetUpdateKeepsVerifiersOfUnchangedProviders(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	ctx := context.Background()
	idp := providerIDP(p, nil)
	set, err := NewSet(ctx, []*catalog.CompiledIdentityProvider{idp}, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Verify(ctx, token(t, p, idptest.ClientRS256, ""), []*catalog.CompiledIdentityProvider{idp}); err != nil {
		t.Fatal(err)
	}
	before, _ := set.Verifier(p.Issuer())

	same := providerIDP(p, nil) // a reload: equal, not the same pointer
	next, err := set.Update(ctx, []*catalog.CompiledIdentityProvider{same}, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := next.Verifier(p.Issuer()); v != before {
		t.Fatal("Update rebuilt the verifier of an unchanged provider")
	}
	changed := providerIDP(p, func(j *catalog.JWTVerification) { j.ClockSkew = time.Second })
	next, err = next.Update(ctx, []*catalog.CompiledIdentityProvider{changed}, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := next.Verifier(p.Issuer()); v == before {
		t.Fatal("Update kept the verifier of a provider whose clock skew changed")
	}
}

func TestMetricsCountVerificationsAndFetches(t *testing.T) {
	p := idptest.Start(t)
	c := newClock(time.Now().Add(clockLead))
	reg := prometheus.NewRegistry()
	ctx := context.Background()
	idp := providerIDP(p, nil)
	set, err := NewSet(ctx, []*catalog.CompiledIdentityProvider{idp}, Options{Now: c.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	trusted := []*catalog.CompiledIdentityProvider{idp}
	if _, err := set.Verify(ctx, token(t, p, idptest.ClientRS256, ""), trusted); err != nil {
		t.Fatal(err)
	}
	_, err = set.Verify(ctx, "not a token", trusted)
	wantInvalid(t, err, ReasonMalformed)
	// A second verifier for the same registry, as after a reload that
	// changed the provider, shares the series instead of failing.
	v, err := New(ctx, idp, Options{Now: c.Now, Registerer: reg})
	if err != nil {
		t.Fatalf("New on a registry that already has the metrics: %v", err)
	}
	_, err = v.Verify(ctx, token(t, p, idptest.ClientOpaque, ""))
	wantInvalid(t, err, ReasonMalformed)

	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"ok", counterValue(t, reg, "portcullis_jwt_verifications_total", map[string]string{"idp": "test-idp", "result": "ok", "reason": ""}), 1},
		{"malformed from the provider's verifier", counterValue(t, reg, "portcullis_jwt_verifications_total", map[string]string{"idp": "test-idp", "result": "invalid", "reason": "malformed"}), 1},
		{"malformed before a provider was chosen", counterValue(t, reg, "portcullis_jwt_verifications_total", map[string]string{"idp": unattributed, "result": "invalid", "reason": "malformed"}), 1},
		{"jwks fetched", counterValue(t, reg, "portcullis_jwt_key_fetches_total", map[string]string{"idp": "test-idp", "kind": "jwks", "result": "ok"}), 1},
		{"discovery fetched", counterValue(t, reg, "portcullis_jwt_key_fetches_total", map[string]string{"idp": "test-idp", "kind": "discovery", "result": "ok"}), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("= %v, want %v", tc.got, tc.want)
			}
		})
	}
}

// counterValue returns the value of the counter name with exactly labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s%v in the registry", name, labels)
	return 0
}
