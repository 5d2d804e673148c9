package catalog

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// Identity providers: where tokens come from and how to verify them.

var jwtAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (b *builder) duration(d *Document, field, s string) (time.Duration, bool) {
	if s == "" {
		return 0, true
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		b.add(d, field, err)
		return 0, false
	}
	if v < 0 {
		b.addf(d, field, "%s is negative", s)
		return 0, false
	}
	return v, true
}

// httpURL checks an absolute http or https URL; http is allowed for an
// identity provider inside the mesh or in tests.
func httpURL(s string) error {
	if s == "" {
		return errRequired
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is not an http or https URL", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return fmt.Errorf("%q carries credentials; reference a secret instead", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q has a query or fragment", s)
	}
	return nil
}

func (b *builder) identityProvider(d *Document) {
	idp := d.Object.(*IdentityProvider)
	spec := &idp.Spec
	ok := true
	c := &CompiledIdentityProvider{Name: d.Name, Issuer: spec.Issuer, Pos: d.Pos, Doc: idp}
	if err := httpURL(spec.Issuer); err != nil {
		b.add(d, "spec.issuer", err)
		ok = false
	} else if first, dup := b.snap.idpsByIssuer[spec.Issuer]; dup {
		b.addf(d, "spec.issuer", "issuer %q is also IdentityProvider %q (%s); a token's issuer must name one provider", spec.Issuer, first.Name, first.Pos)
		ok = false
	} else {
		// Claimed even if this provider has other problems, so that a
		// second provider with the issuer is reported too.
		b.snap.idpsByIssuer[spec.Issuer] = c
	}
	if spec.JWT == nil && spec.Introspection == nil {
		b.add(d, "spec", errors.New("needs jwt, introspection or both: there is no other way to verify a token"))
		ok = false
	}
	if j := spec.JWT; j != nil {
		v := &JWTVerification{
			JWKSURI:       j.JWKSURI,
			Audiences:     j.Audiences,
			Algorithms:    j.Algorithms,
			ClientIDClaim: cmp.Or(j.ClientIDClaim, "client_id"),
			RequireType:   j.RequireType,
		}
		if j.JWKSURI != "" {
			if err := httpURL(j.JWKSURI); err != nil {
				b.add(d, "spec.jwt.jwksURI", err)
				ok = false
			}
		}
		if len(j.Audiences) == 0 {
			b.add(d, "spec.jwt.audiences", errors.New("at least one audience is required, so that a token minted for another service is refused"))
			ok = false
		}
		for i, a := range j.Audiences {
			if a == "" {
				b.add(d, fmt.Sprintf("spec.jwt.audiences[%d]", i), errors.New("empty audience"))
				ok = false
			}
		}
		for i, a := range j.Algorithms {
			if !jwtAlgorithms[a] {
				b.addf(d, fmt.Sprintf("spec.jwt.algorithms[%d]", i), "%q is not allowed (want an asymmetric algorithm: RS*, PS*, ES* or EdDSA)", a)
				ok = false
			}
		}
		skew, good := b.duration(d, "spec.jwt.clockSkew", j.ClockSkew)
		ok = ok && good
		v.ClockSkew = skew
		c.JWT = v
	}
	if in := spec.Introspection; in != nil {
		if err := httpURL(in.Endpoint); err != nil {
			b.add(d, "spec.introspection.endpoint", err)
			ok = false
		}
		if in.ClientID == "" {
			b.add(d, "spec.introspection.clientId", errRequired)
			ok = false
		}
		switch {
		case in.ClientSecretFile == "" && in.ClientSecretEnv == "":
			b.add(d, "spec.introspection", errors.New("needs clientSecretFile or clientSecretEnv"))
			ok = false
		case in.ClientSecretFile != "" && in.ClientSecretEnv != "":
			b.add(d, "spec.introspection.clientSecretEnv", errors.New("set clientSecretFile or clientSecretEnv, not both"))
			ok = false
		case in.ClientSecretEnv != "" && !envNameRE.MatchString(in.ClientSecretEnv):
			b.addf(d, "spec.introspection.clientSecretEnv", "%q is not an environment variable name", in.ClientSecretEnv)
			ok = false
		}
		method := cmp.Or(in.AuthMethod, "client_secret_basic")
		if method != "client_secret_basic" && method != "client_secret_post" {
			b.addf(d, "spec.introspection.authMethod", "unknown %q (want client_secret_basic or client_secret_post)", in.AuthMethod)
			ok = false
		}
		c.Introspection = &Introspection{
			Endpoint:     in.Endpoint,
			ClientID:     in.ClientID,
			ClientSecret: SecretRef{File: in.ClientSecretFile, Env: in.ClientSecretEnv},
			AuthMethod:   method,
		}
	}
	var good bool
	c.Cache.MaxTTL, good = b.duration(d, "spec.cache.maxTTL", spec.Cache.MaxTTL)
	ok = ok && good
	c.Cache.NegativeTTL, good = b.duration(d, "spec.cache.negativeTTL", spec.Cache.NegativeTTL)
	ok = ok && good
	c.Cache.StaleIfError, good = b.duration(d, "spec.cache.staleIfError", spec.Cache.StaleIfError)
	ok = ok && good
	if !ok {
		return
	}
	b.snap.idps[d.Name] = c
}
