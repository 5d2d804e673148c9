package introspect_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/introspect"
)

// realIDP describes the test provider as the catalog would, with the
// gateway's client and the given authentication method.
func realIDP(p *idptest.Provider, clientID, method string) *catalog.CompiledIdentityProvider {
	return &catalog.CompiledIdentityProvider{
		Name:   "oidc-provider",
		Issuer: p.Issuer(),
		Introspection: &catalog.Introspection{
			Endpoint:     p.IntrospectionURL(),
			ClientID:     clientID,
			ClientSecret: catalog.SecretRef{Env: "PORTCULLIS_IDP_SECRET"},
			AuthMethod:   method,
		},
	}
}

func secretOf(clientID string) func(catalog.SecretRef) (string, error) {
	return func(catalog.SecretRef) (string, error) { return idptest.Secret(clientID), nil }
}

func TestAgainstARealProvider(t *testing.T) {
	idp := idptest.Start(t)
	ctx := context.Background()
	opaque, err := idp.Token(ctx, idptest.ClientOpaque, idptest.ScopeRead+" "+idptest.ScopeWrite)
	if err != nil {
		t.Fatal(err)
	}
	c, err := introspect.New(realIDP(idp, idptest.ClientPortcullis, ""), introspect.Options{SecretLookup: secretOf(idptest.ClientPortcullis)})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("an opaque token is active with its client, scopes, audience and exp", func(t *testing.T) {
		tok, err := c.Introspect(ctx, opaque)
		if err != nil {
			t.Fatalf("Introspect: %v", err)
		}
		if tok.ClientID != idptest.ClientOpaque || tok.Issuer != idp.Issuer() ||
			!tok.HasScopes([]string{idptest.ScopeRead, idptest.ScopeWrite}) ||
			!slices.Contains(tok.Audience, idptest.Audience(idptest.ClientOpaque)) {
			t.Fatalf("token %+v", tok)
		}
		if until := time.Until(tok.Expiry); until <= 0 || until > idp.TokenTTL()+time.Minute {
			t.Fatalf("exp %v is not about the token TTL %v ahead", tok.Expiry, idp.TokenTTL())
		}
	})

	t.Run("an unknown token is refused", func(t *testing.T) {
		if _, err := c.Introspect(ctx, "not-a-token-this-provider-issued"); !errors.Is(err, identity.ErrInvalid) {
			t.Fatalf("Introspect = %v, want ErrInvalid", err)
		}
	})

	t.Run("a JWT is refused by the provider's introspection and is unavailable, not a refusal", func(t *testing.T) {
		// oidc-provider answers 400 for structured tokens: those are
		// authz's to verify locally, and a 400 says nothing about the
		// token's validity.
		jwt, err := idp.Token(ctx, idptest.ClientRS256, idptest.ScopeRead)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Introspect(ctx, jwt); !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("Introspect = %v, want ErrUnavailable", err)
		}
	})

	t.Run("a revoked token is refused", func(t *testing.T) {
		tok, err := idp.Token(ctx, idptest.ClientOpaque, idptest.ScopeRead)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Introspect(ctx, tok); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
		if err := idp.Revoke(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Introspect(ctx, tok); !errors.Is(err, identity.ErrInvalid) {
			t.Fatalf("after revocation = %v, want ErrInvalid", err)
		}
	})

	t.Run("a client may introspect only its own tokens under the provider's policy", func(t *testing.T) {
		other, err := introspect.New(realIDP(idp, idptest.ClientRS256, ""), introspect.Options{SecretLookup: secretOf(idptest.ClientRS256)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Introspect(ctx, opaque); !errors.Is(err, identity.ErrInvalid) {
			t.Fatalf("Introspect = %v, want ErrInvalid (the provider answers active: false)", err)
		}
	})

	t.Run("a wrong client secret is unavailable and logged once", func(t *testing.T) {
		var logs logBuffer
		reg := prometheus.NewPedanticRegistry()
		bad, err := introspect.New(realIDP(idp, idptest.ClientPortcullis, ""), introspect.Options{
			SecretLookup: func(catalog.SecretRef) (string, error) { return "wrong-secret", nil },
			Logger:       logs.logger(), Registerer: reg,
		})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := bad.Introspect(ctx, opaque); !errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("Introspect = %v, want ErrUnavailable", err)
			}
		}
		if n := strings.Count(logs.String(), "refused Portcullis's client credentials"); n != 1 {
			t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
		}
		if strings.Contains(logs.String(), opaque) || strings.Contains(logs.String(), "wrong-secret") {
			t.Fatalf("log leaks the token or the secret:\n%s", logs.String())
		}
		if n := metricValues(t, reg)[`portcullis_introspect_calls_total{provider="oidc-provider",result="client_auth"}`]; n != 2 {
			t.Errorf("calls{result=client_auth} = %v, want 2", n)
		}
	})

	t.Run("a hung provider times out", func(t *testing.T) {
		fast, err := introspect.New(realIDP(idp, idptest.ClientPortcullis, ""), introspect.Options{
			SecretLookup: secretOf(idptest.ClientPortcullis), Timeout: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		idp.Pause()
		_, err = fast.Introspect(ctx, opaque)
		idp.Resume()
		if !errors.Is(err, identity.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Introspect = %v, want ErrUnavailable wrapping DeadlineExceeded", err)
		}
	})
}

func TestClientSecretPostAgainstARealProvider(t *testing.T) {
	idp := idptest.Start(t)
	ctx := context.Background()
	opaque, err := idp.Token(ctx, idptest.ClientOpaque, idptest.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	c, err := introspect.New(realIDP(idp, idptest.ClientPortcullis, "client_secret_post"), introspect.Options{SecretLookup: secretOf(idptest.ClientPortcullis)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.Introspect(ctx, opaque)
	if err != nil {
		t.Fatalf("Introspect with client_secret_post: %v", err)
	}
	if tok.ClientID != idptest.ClientOpaque {
		t.Fatalf("token %+v", tok)
	}
}
