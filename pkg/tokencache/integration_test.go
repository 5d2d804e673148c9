package tokencache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/introspect"
	"github.com/portcullis-dev/portcullis/pkg/tokencache"
)

// stack is authz's opaque-token path: a token cache over an introspection
// client over the real test provider.
//
// The cache and the client share an injected clock that starts at the real
// time, while the provider keeps its own real clock. Advancing the injected
// clock ends cache entries without waiting; the provider still judges
// tokens by its clock, so the test advances less than the tokens' ten
// minute life and the provider and the client agree that they have not
// expired.
type stack struct {
	idp   *idptest.Provider
	clk   *clock
	cache *tokencache.Cache
	reg   *prometheus.Registry
}

var stackPolicy = catalog.TokenCachePolicy{
	MaxTTL:       time.Minute,
	NegativeTTL:  10 * time.Second,
	StaleIfError: 2 * time.Minute,
}

func newStack(t *testing.T) *stack {
	t.Helper()
	idp := idptest.Start(t)
	if idp.TokenTTL() < 5*time.Minute {
		t.Fatalf("the provider's token TTL %v is too short for this test's clock steps", idp.TokenTTL())
	}
	s := &stack{idp: idp, clk: &clock{t: time.Now()}, reg: prometheus.NewPedanticRegistry()}
	client, err := introspect.New(&catalog.CompiledIdentityProvider{
		Name:   "oidc-provider",
		Issuer: idp.Issuer(),
		Introspection: &catalog.Introspection{
			Endpoint:     idp.IntrospectionURL(),
			ClientID:     idptest.ClientPortcullis,
			ClientSecret: catalog.SecretRef{Env: "PORTCULLIS_IDP_SECRET"},
		},
		Cache: stackPolicy,
	}, introspect.Options{
		Clock:        s.clk.Now,
		Timeout:      2 * time.Second,
		SecretLookup: func(catalog.SecretRef) (string, error) { return idptest.Secret(idptest.ClientPortcullis), nil },
		Registerer:   s.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.cache, err = tokencache.New(tokencache.VerifierFunc(client.Introspect), stackPolicy,
		tokencache.Options{Clock: s.clk.Now, Registerer: s.reg, Name: "oidc-provider"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) token(t *testing.T) string {
	t.Helper()
	tok, err := s.idp.Token(context.Background(), idptest.ClientOpaque, idptest.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *stack) advance(d time.Duration) {
	s.clk.Set(s.clk.Now().Add(d))
}

func (s *stack) introspections(t *testing.T) int {
	t.Helper()
	return s.idp.Counts(t).Introspection
}

func (s *stack) mustVerify(t *testing.T, raw, what string) *identity.Token {
	t.Helper()
	tok, err := s.cache.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if tok.ClientID != idptest.ClientOpaque || !tok.HasScopes([]string{idptest.ScopeRead}) {
		t.Fatalf("%s: token %+v", what, tok)
	}
	return tok
}

func (s *stack) mustFail(t *testing.T, raw, what string, want error) {
	t.Helper()
	if tok, err := s.cache.Verify(context.Background(), raw); !errors.Is(err, want) {
		t.Fatalf("%s = (%+v, %v), want an error wrapping %v", what, tok, err, want)
	}
}

func TestAnOpaqueTokenIsIntrospectedOnceThenServedFromTheCache(t *testing.T) {
	s := newStack(t)
	raw := s.token(t)
	before := s.introspections(t)
	for i := range 20 {
		s.mustVerify(t, raw, "lookup")
		if i == 10 {
			s.advance(30 * time.Second)
		}
	}
	if n := s.introspections(t) - before; n != 1 {
		t.Fatalf("%d introspections for 20 lookups within maxTTL, want 1", n)
	}
	s.advance(time.Minute)
	s.mustVerify(t, raw, "lookup after maxTTL")
	if n := s.introspections(t) - before; n != 2 {
		t.Fatalf("%d introspections after maxTTL, want 2", n)
	}
}

func TestConcurrentLookupsOfANewTokenIntrospectOnce(t *testing.T) {
	s := newStack(t)
	raw := s.token(t)
	before := s.introspections(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := s.cache.Verify(context.Background(), raw); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent lookup: %v", err)
	}
	if n := s.introspections(t) - before; n != 1 {
		t.Fatalf("%d introspections for 32 concurrent lookups, want 1", n)
	}
}

func TestARevokedTokenIsRefusedOnceItsCacheEntryEnds(t *testing.T) {
	s := newStack(t)
	raw := s.token(t)
	s.mustVerify(t, raw, "before revocation")
	if err := s.idp.Revoke(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	// Within maxTTL the cache still trusts it: that is the revocation
	// delay maxTTL buys.
	s.advance(59 * time.Second)
	s.mustVerify(t, raw, "revoked, within maxTTL")

	s.advance(time.Second)
	s.mustFail(t, raw, "revoked, past maxTTL", identity.ErrInvalid)
	// The refusal is remembered: no further introspection within
	// negativeTTL, however the provider is doing.
	before := s.introspections(t)
	s.advance(9 * time.Second)
	s.mustFail(t, raw, "revoked, within negativeTTL", identity.ErrInvalid)
	if n := s.introspections(t) - before; n != 0 {
		t.Fatalf("%d introspections within negativeTTL, want 0", n)
	}
}

func TestAStoppedProviderServesCachedTokensWithinStaleIfError(t *testing.T) {
	s := newStack(t)
	cached := s.token(t)
	fresh := s.token(t) // issued, never looked up
	s.mustVerify(t, cached, "while the provider is up")

	s.idp.Stop()
	s.mustVerify(t, cached, "provider down, entry fresh")
	s.advance(time.Minute + time.Second)
	s.mustVerify(t, cached, "provider down, entry stale within staleIfError")
	s.mustFail(t, fresh, "provider down, a token never seen", identity.ErrUnavailable)
	s.mustFail(t, fresh, "provider down, the same token again: the failure was not cached", identity.ErrUnavailable)

	s.advance(2 * time.Minute) // past maxTTL + staleIfError
	s.mustFail(t, cached, "provider down, past staleIfError", identity.ErrUnavailable)

	got := metricValues(t, s.reg)
	if n := got[`portcullis_tokencache_stale_serves_total{cache="oidc-provider"}`]; n != 1 {
		t.Errorf("stale serves = %v, want 1", n)
	}
	if n := got[`portcullis_introspect_calls_total{provider="oidc-provider",result="unreachable"}`]; n != 4 {
		t.Errorf("unreachable introspections = %v, want 4", n)
	}

	// Restarted, the provider answers again. It keeps opaque tokens in
	// memory, so tokens issued before the restart are unknown to it now:
	// refused, which shows the cache asked rather than served stale.
	s.idp.Restart()
	s.mustFail(t, cached, "after restart, a token the provider forgot", identity.ErrInvalid)
	s.mustVerify(t, s.token(t), "after restart, a new token")
}
