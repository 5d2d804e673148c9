package jwtverify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Defaults for Options left at zero.
const (
	// DefaultRefreshCooldown is the least time between two key fetches
	// prompted by tokens with unknown kids. A rotated key is accepted at
	// most this long after its first token arrives, within the 15 s the
	// gateway promises, and a flood of forged kids costs the identity
	// provider one request per cooldown.
	DefaultRefreshCooldown = 10 * time.Second
	// DefaultRetryInterval is the least time between two fetches while no
	// keys have ever been fetched (the provider was down when the first
	// tokens came): short, because every token fails until it succeeds.
	DefaultRetryInterval = time.Second
	// DefaultFetchTimeout bounds one discovery or JWKS request. It is
	// shorter than the ext_authz timeout Envoy is usually given, so that a
	// hung provider yields UNAVAILABLE rather than an Envoy timeout.
	DefaultFetchTimeout = 2 * time.Second
	// DefaultMaxKeyAge is how long fetched keys are used before a
	// background refresh, so that a key the provider withdraws stops being
	// accepted even if no token ever names an unknown kid.
	DefaultMaxKeyAge = time.Hour
	// MaxTokenBytes bounds the token accepted for parsing; real access
	// tokens are one or two kilobytes.
	MaxTokenBytes = 16 << 10
)

// Options tune a Verifier. The zero value is ready to use.
type Options struct {
	// HTTPClient fetches discovery documents and key sets. Nil means a
	// client of this package's own (not http.DefaultClient, which other
	// code may change); FetchTimeout applies either way.
	HTTPClient *http.Client
	// FetchTimeout bounds one discovery or JWKS request. Zero means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// RefreshCooldown is the least time between key fetches prompted by
	// unknown kids. Zero means DefaultRefreshCooldown.
	RefreshCooldown time.Duration
	// RetryInterval is the least time between fetches while no keys have
	// been fetched yet. Zero means DefaultRetryInterval.
	RetryInterval time.Duration
	// MaxKeyAge triggers a background refresh of keys fetched longer ago.
	// Zero means DefaultMaxKeyAge; negative never refreshes for age.
	MaxKeyAge time.Duration
	// Now is the clock tokens' exp, nbf and iat and the refresh cooldowns
	// are judged by. Nil means time.Now.
	Now func() time.Time
	// Registerer receives the metrics, labelled by identity provider name.
	// Nil registers nothing. Verifiers of several providers, and those
	// rebuilt after a catalog reload, share the series.
	Registerer prometheus.Registerer
	// Logger receives key-fetch failures (never a token). Nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.RefreshCooldown <= 0 {
		o.RefreshCooldown = DefaultRefreshCooldown
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.MaxKeyAge == 0 {
		o.MaxKeyAge = DefaultMaxKeyAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 4
		o.HTTPClient = &http.Client{Transport: t}
	}
	return o
}

// asymmetric are the algorithms a token may be signed with; catalog
// validation allows no others, and Verifier drops any other name it is
// given, so that "none" and the HMAC algorithms (whose key would be the
// provider's public key in a key-confusion attack) are refused even when
// configured.
var asymmetric = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// allowedByDefault are the algorithms of a provider whose IdentityProvider
// lists none.
var allowedByDefault = asymmetric

// parseable are the algorithms a token is parsed with, before the
// allow-list is applied, so that a refusal can say "algorithm" rather than
// "malformed". Parsing verifies nothing.
var parseable = append([]jose.SignatureAlgorithm{
	jose.HS256, jose.HS384, jose.HS512, "none",
}, asymmetric...)

func allowedAlgorithm(alg string) bool {
	return slices.Contains(asymmetric, jose.SignatureAlgorithm(alg))
}

// Verifier verifies the JWT access tokens of one identity provider: the
// signature against the provider's published keys, the algorithm, the
// issuer, the audience, the token type and the times, with the clock skew
// the catalog allows. It is safe for concurrent use and holds no goroutine
// between calls.
type Verifier struct {
	idp         string
	issuer      string
	audiences   []string
	algs        []string
	clientClaim string
	requireType string
	skew        time.Duration
	now         func() time.Time
	keys        *keySource
	oidc        *oidc.IDTokenVerifier
	metrics     *metrics
	cfg         jwtConfig // as given, to tell whether a reload changed it
}

// jwtConfig is a copy of the catalog's JWTVerification.
type jwtConfig catalog.JWTVerification

func (c *jwtConfig) equal(j *catalog.JWTVerification) bool {
	return c.JWKSURI == j.JWKSURI &&
		slices.Equal(c.Audiences, j.Audiences) &&
		slices.Equal(c.Algorithms, j.Algorithms) &&
		c.ClockSkew == j.ClockSkew &&
		c.ClientIDClaim == j.ClientIDClaim &&
		c.RequireType == j.RequireType
}

// New returns the Verifier for idp, which must have a JWT part. It does
// no I/O: the keys, and the JWKS URI when the catalog leaves it to
// discovery, are fetched when the first token needs them, so that authz
// starts while the provider is down. ctx bounds those fetches for the
// Verifier's life: once it is done, fetches fail and tokens whose keys are
// not cached are answered with identity.ErrUnavailable.
func New(ctx context.Context, idp *catalog.CompiledIdentityProvider, opts Options) (*Verifier, error) {
	if idp == nil || idp.JWT == nil {
		return nil, errors.New("jwtverify: new verifier: the identity provider has no jwt section")
	}
	j := idp.JWT
	if idp.Issuer == "" {
		return nil, fmt.Errorf("jwtverify: new verifier for %q: no issuer", idp.Name)
	}
	if len(j.Audiences) == 0 {
		return nil, fmt.Errorf("jwtverify: new verifier for %q: no audiences", idp.Name)
	}
	var algs []string
	for _, a := range j.Algorithms {
		if allowedAlgorithm(a) && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	if len(j.Algorithms) > 0 && len(algs) == 0 {
		return nil, fmt.Errorf("jwtverify: new verifier for %q: none of the algorithms %v is an allowed asymmetric algorithm", idp.Name, j.Algorithms)
	}
	if len(algs) == 0 {
		for _, a := range allowedByDefault {
			algs = append(algs, string(a))
		}
	}
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer, idp.Name)
	if err != nil {
		return nil, err
	}
	ks := &keySource{
		idp:     idp.Name,
		issuer:  idp.Issuer,
		jwksURI: j.JWKSURI,
		client:  opts.HTTPClient,
		base:    ctx,
		opts:    &opts,
		log:     opts.Logger,
		metrics: m,
	}
	clientClaim := j.ClientIDClaim
	if clientClaim == "" {
		clientClaim = "client_id"
	}
	v := &Verifier{
		idp:         idp.Name,
		issuer:      idp.Issuer,
		audiences:   slices.Clone(j.Audiences),
		algs:        algs,
		clientClaim: clientClaim,
		requireType: normalizeType(j.RequireType),
		skew:        j.ClockSkew,
		now:         opts.Now,
		keys:        ks,
		metrics:     m,
		cfg: jwtConfig{
			JWKSURI:       j.JWKSURI,
			Audiences:     slices.Clone(j.Audiences),
			Algorithms:    slices.Clone(j.Algorithms),
			ClockSkew:     j.ClockSkew,
			ClientIDClaim: j.ClientIDClaim,
			RequireType:   j.RequireType,
		},
		// The audience is checked against the whole list and the times
		// with the configured skew below: go-oidc checks one client id
		// and has a fixed five-minute nbf leeway and none for exp.
		oidc: oidc.NewVerifier(idp.Issuer, ks, &oidc.Config{
			SupportedSigningAlgs: algs,
			SkipClientIDCheck:    true,
			SkipExpiryCheck:      true,
			Now:                  opts.Now,
		}),
	}
	return v, nil
}

// Issuer is the iss this Verifier accepts.
func (v *Verifier) Issuer() string { return v.issuer }

// Name is the IdentityProvider's name, as in metrics and logs.
func (v *Verifier) Name() string { return v.idp }

// Prefetch fetches the provider's keys now, for a readiness check or to
// spare the first request the wait; it obeys the same retry interval and
// cooldown as a fetch prompted by a token. An error wraps
// identity.ErrUnavailable.
func (v *Verifier) Prefetch(ctx context.Context) error {
	if v.keys.keys.Load() != nil {
		return nil
	}
	_, err := v.keys.refresh(ctx, true)
	return err
}

// Verify checks raw, a JWT access token, and returns what it says. An
// error wraps identity.ErrInvalid (an *InvalidError with the reason) when
// the token is refused, or identity.ErrUnavailable when the provider's
// keys could not be fetched and none is cached. The error never contains
// the token.
func (v *Verifier) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	p, err := parse(raw)
	if err != nil {
		v.metrics.verified(err)
		return nil, err
	}
	tok, err := v.verify(ctx, raw, p)
	v.metrics.verified(err)
	return tok, err
}

// parsed is a token taken apart before anything about it is trusted.
type parsed struct {
	jws    *jose.JSONWebSignature
	claims map[string]any // unverified until go-oidc has checked the signature
	iss    string         // unverified
}

// parse takes raw apart with go-jose without verifying anything, and
// decodes its claims: the unverified iss chooses the verifier and lets a
// token from another issuer be refused before any key is looked up, and
// once the signature over these same bytes has been verified the claims
// are the token's, so they are decoded only once.
func parse(raw string) (*parsed, error) {
	if len(raw) > MaxTokenBytes {
		return nil, invalid(ReasonMalformed, "longer than %d bytes", MaxTokenBytes)
	}
	jws, err := jose.ParseSigned(raw, parseable)
	if err != nil {
		return nil, invalid(ReasonMalformed, "not a compact JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid(ReasonMalformed, "not exactly one signature")
	}
	payload := jws.UnsafePayloadWithoutVerification()
	var claims map[string]any
	if !isObject(payload) || json.Unmarshal(payload, &claims) != nil {
		return nil, invalid(ReasonMalformed, "the payload is not a JSON object")
	}
	iss, ok := claims["iss"].(string)
	if _, present := claims["iss"]; present && !ok {
		return nil, invalid(ReasonMalformed, "iss is not a string")
	}
	return &parsed{jws: jws, claims: claims, iss: iss}, nil
}

// isObject reports whether a JSON text starts as an object; null, an
// array or a string would decode into a struct without error.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// UnverifiedIssuer returns the iss of a JWT without verifying anything,
// so that a caller can choose the identity provider, and its token cache,
// before verifying. An error wraps identity.ErrInvalid.
func UnverifiedIssuer(raw string) (string, error) {
	p, err := parse(raw)
	if err != nil {
		return "", err
	}
	return p.iss, nil
}

func (v *Verifier) verify(ctx context.Context, raw string, p *parsed) (*identity.Token, error) {
	h := p.jws.Signatures[0].Header
	if !slices.Contains(v.algs, h.Algorithm) {
		return nil, invalid(ReasonAlgorithm, "allowed: %s", strings.Join(v.algs, ", "))
	}
	if v.requireType != "" {
		typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
		if normalizeType(typ) != v.requireType {
			return nil, invalid(ReasonType, "typ must be %s", v.requireType)
		}
	}
	if p.iss != v.issuer {
		return nil, invalid(ReasonIssuer, "want %s", v.issuer)
	}

	f := &inFlight{jws: p.jws}
	idt, err := v.oidc.Verify(context.WithValue(ctx, parsedKey{}, f), raw)
	if err != nil {
		if f.err != nil {
			return nil, f.err // the key set's own error, with its class
		}
		// The signature verified, so go-oidc refused the claims: they do
		// not decode as its ID-token claims (a mistyped exp, aud or iat).
		return nil, invalid(ReasonMalformed, "claims of the wrong type")
	}

	claims := p.claims
	if !v.audienceOK(idt.Audience) {
		return nil, invalid(ReasonAudience, "want one of %s", strings.Join(v.audiences, ", "))
	}
	if err := v.timesOK(idt, claims); err != nil {
		return nil, err
	}
	return &identity.Token{
		Issuer:   idt.Issuer,
		Subject:  idt.Subject,
		ClientID: stringClaim(claims, v.clientClaim),
		Scopes:   scopes(claims),
		Audience: idt.Audience,
		Expiry:   idt.Expiry,
		Claims:   claims,
	}, nil
}

func (v *Verifier) audienceOK(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(v.audiences, a) {
			return true
		}
	}
	return false
}

// timesOK checks exp, nbf and iat against the clock with the configured
// skew either way. exp is required: an access token without one would be
// valid forever (RFC 9068 §2.2).
func (v *Verifier) timesOK(idt *oidc.IDToken, claims map[string]any) error {
	now := v.now()
	if idt.Expiry.IsZero() {
		return invalid(ReasonNoExpiry, "")
	}
	if !now.Before(idt.Expiry.Add(v.skew)) {
		return invalid(ReasonExpired, "clock skew allowed: %s", v.skew)
	}
	if raw, ok := claims["nbf"]; ok {
		nbf, ok := numericDate(raw)
		if !ok {
			return invalid(ReasonMalformed, "nbf is not a number")
		}
		if now.Add(v.skew).Before(nbf) {
			return invalid(ReasonNotYetValid, "clock skew allowed: %s", v.skew)
		}
	}
	if !idt.IssuedAt.IsZero() && now.Add(v.skew).Before(idt.IssuedAt) {
		return invalid(ReasonIssuedInFuture, "clock skew allowed: %s", v.skew)
	}
	return nil
}

// numericDate reads a JSON number of seconds since the epoch (RFC 7519
// §2), fractions allowed.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// normalizeType compares typ values as RFC 7515 §4.1.9 says: media types
// case-insensitively, with "application/" optional.
func normalizeType(typ string) string {
	t := strings.ToLower(strings.TrimSpace(typ))
	return strings.TrimPrefix(t, "application/")
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// scopes reads the granted scopes from scope, a space-separated string
// (RFC 8693 §4.2, RFC 9068), or from scp, an array of strings or a string,
// as Azure AD and Okta issue it.
func scopes(claims map[string]any) []string {
	if s, ok := claims["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch scp := claims["scp"].(type) {
	case string:
		return strings.Fields(scp)
	case []any:
		out := make([]string, 0, len(scp))
		for _, v := range scp {
			if s, ok := v.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
