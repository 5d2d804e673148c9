package jwtverify

import (
	"context"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// unattributed labels the metrics of tokens refused before an identity
// provider was chosen (malformed, or from an issuer the API does not
// trust).
const unattributed = "-"

// Set holds one Verifier per identity provider of a catalog that issues
// JWTs, and verifies a token with the one its iss names. It is immutable
// and safe for concurrent use.
type Set struct {
	byIssuer map[string]*Verifier
	metrics  *metrics
}

// NewSet builds a Verifier for every provider in idps that has a jwt
// section; the others are skipped (they are introspection only). Like New
// it does no I/O, and ctx bounds the Verifiers' key fetches.
func NewSet(ctx context.Context, idps []*catalog.CompiledIdentityProvider, opts Options) (*Set, error) {
	return (*Set)(nil).Update(ctx, idps, opts)
}

// Update returns a Set for idps that reuses this Set's Verifiers, and so
// their cached keys and cooldowns, for providers whose issuer and jwt
// section have not changed: a catalog reload does not make every provider
// fetch its keys again. The receiver may be nil; it is not modified.
func (s *Set) Update(ctx context.Context, idps []*catalog.CompiledIdentityProvider, opts Options) (*Set, error) {
	m, err := newMetrics(opts.Registerer, unattributed)
	if err != nil {
		return nil, err
	}
	next := &Set{byIssuer: make(map[string]*Verifier, len(idps)), metrics: m}
	for _, idp := range idps {
		if idp == nil || idp.JWT == nil {
			continue
		}
		if s != nil {
			if old, ok := s.byIssuer[idp.Issuer]; ok && old.sameConfig(idp) {
				next.byIssuer[idp.Issuer] = old
				continue
			}
		}
		v, err := New(ctx, idp, opts)
		if err != nil {
			return nil, err
		}
		next.byIssuer[idp.Issuer] = v
	}
	return next, nil
}

// sameConfig reports whether v was built from a provider configured as
// idp is.
func (v *Verifier) sameConfig(idp *catalog.CompiledIdentityProvider) bool {
	return v.idp == idp.Name && v.issuer == idp.Issuer && v.cfg.equal(idp.JWT)
}

// Verifier returns the Verifier for issuer.
func (s *Set) Verifier(issuer string) (*Verifier, bool) {
	v, ok := s.byIssuer[issuer]
	return v, ok
}

// Verify verifies raw with the Verifier of the issuer its iss names,
// provided that issuer is one of trusted (the API's identity providers;
// nil trusts none). Errors are as for Verifier.Verify; a token from any
// other issuer is refused with ReasonUntrustedIssuer before a key is
// looked up.
func (s *Set) Verify(ctx context.Context, raw string, trusted []*catalog.CompiledIdentityProvider) (*identity.Token, error) {
	p, err := parse(raw)
	if err != nil {
		s.metrics.verified(err)
		return nil, err
	}
	v, ok := s.byIssuer[p.iss]
	if !ok || !trusts(trusted, p.iss) {
		err := invalid(ReasonUntrustedIssuer, "the API trusts no JWT issuer of that name")
		s.metrics.verified(err)
		return nil, err
	}
	tok, err := v.verify(ctx, raw, p)
	v.metrics.verified(err)
	return tok, err
}

func trusts(trusted []*catalog.CompiledIdentityProvider, iss string) bool {
	for _, idp := range trusted {
		if idp != nil && idp.Issuer == iss {
			return true
		}
	}
	return false
}
