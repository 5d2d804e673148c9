package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/introspect"
	"github.com/portcullis-dev/portcullis/pkg/jwtverify"
	"github.com/portcullis-dev/portcullis/pkg/tokencache"
)

// verifiers builds the token verifiers of a catalog's identity providers,
// each behind its own token cache, and carries them over a reload when
// the provider's configuration has not changed: a reload must not empty
// the caches or make every provider's keys be fetched again. It is used
// from the catalog's OnUpdate, whose calls are serialised.
type verifiers struct {
	ctx     context.Context // bounds key fetches for the process's life
	timeout time.Duration
	entries int
	reg     prometheus.Registerer
	log     *slog.Logger

	jwt  *jwtverify.Set
	prev map[string]*idpVerifiers // by provider name
}

// idpVerifiers are one provider's verifiers and what they were built from.
type idpVerifiers struct {
	idp        *catalog.CompiledIdentityProvider
	jwt        *jwtverify.Verifier
	jwtCache   *tokencache.Cache
	introspect *introspect.Client
	introCache *tokencache.Cache
}

// build returns the verifiers for snap.
func (b *verifiers) build(snap *catalog.Snapshot) (authz.Verifiers, error) {
	idps := snap.IdentityProviders()
	set, err := b.jwt.Update(b.ctx, idps, jwtverify.Options{
		FetchTimeout: b.timeout, Registerer: b.reg, Logger: b.log,
	})
	if err != nil {
		return nil, fmt.Errorf("build JWT verifiers: %w", err)
	}
	next := make(map[string]*idpVerifiers, len(idps))
	out := make(authz.Verifiers, len(idps))
	for _, idp := range idps {
		old := b.prev[idp.Name]
		v := &idpVerifiers{idp: idp}
		sameCache := old != nil && old.idp.Cache == idp.Cache
		if idp.JWT != nil {
			jv, ok := set.Verifier(idp.Issuer)
			if !ok {
				return nil, fmt.Errorf("build JWT verifier for %s: missing from the set", idp.Name)
			}
			v.jwt = jv
			if sameCache && old.jwt == jv {
				v.jwtCache = old.jwtCache
			} else if v.jwtCache, err = b.cache(jv, idp, "jwt"); err != nil {
				return nil, err
			}
		}
		if idp.Introspection != nil {
			if sameCache && old.introspect != nil && sameIntrospection(old.idp, idp) {
				v.introspect, v.introCache = old.introspect, old.introCache
			} else {
				var skew time.Duration
				if idp.JWT != nil {
					skew = idp.JWT.ClockSkew
				}
				v.introspect, err = introspect.New(idp, introspect.Options{
					Timeout: b.timeout, ClockSkew: skew, Registerer: b.reg, Logger: b.log,
				})
				if err != nil {
					return nil, fmt.Errorf("build introspection client: %w", err)
				}
				if v.introCache, err = b.cache(tokencache.VerifierFunc(v.introspect.Introspect), idp, "introspection"); err != nil {
					return nil, err
				}
			}
		}
		next[idp.Name] = v
		iv := authz.IdPVerifiers{}
		if v.jwtCache != nil {
			iv.JWT = v.jwtCache
		}
		if v.introCache != nil {
			iv.Introspection = v.introCache
		}
		out[idp.Name] = iv
	}
	b.jwt, b.prev = set, next
	return out, nil
}

func (b *verifiers) cache(v tokencache.Verifier, idp *catalog.CompiledIdentityProvider, kind string) (*tokencache.Cache, error) {
	c, err := tokencache.New(v, idp.Cache, tokencache.Options{
		MaxEntries: b.entries, Registerer: b.reg, Name: idp.Name + "/" + kind,
	})
	if err != nil {
		return nil, fmt.Errorf("build token cache for %s: %w", idp.Name, err)
	}
	return c, nil
}

// sameIntrospection reports whether an introspection client built for a
// can serve b unchanged.
func sameIntrospection(a, b *catalog.CompiledIdentityProvider) bool {
	if a.Issuer != b.Issuer || *a.Introspection != *b.Introspection {
		return false
	}
	var sa, sb time.Duration
	if a.JWT != nil {
		sa = a.JWT.ClockSkew
	}
	if b.JWT != nil {
		sb = b.JWT.ClockSkew
	}
	return sa == sb
}
