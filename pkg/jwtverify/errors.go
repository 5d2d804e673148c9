package jwtverify

import (
	"fmt"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Reason is why a token was refused: a closed set, safe to log, to return
// to the caller and to use as a metric label, because it never carries
// anything from the token itself.
type Reason string

// The reasons a token is refused.
const (
	ReasonMalformed       Reason = "malformed"        // not a compact JWS with a JSON claims set
	ReasonAlgorithm       Reason = "algorithm"        // alg not in the allow-list (none and HS* never are)
	ReasonType            Reason = "type"             // typ header is not the required one
	ReasonUntrustedIssuer Reason = "untrusted_issuer" // iss is not a provider this API trusts
	ReasonIssuer          Reason = "issuer"           // iss is not the verifier's issuer
	ReasonUnknownKey      Reason = "unknown_key"      // no published key has the token's kid
	ReasonSignature       Reason = "signature"        // the signature does not verify
	ReasonAudience        Reason = "audience"         // none of the configured audiences is in aud
	ReasonNoExpiry        Reason = "no_expiry"        // exp is missing (RFC 9068 requires it)
	ReasonExpired         Reason = "expired"          // exp is past, beyond the clock skew
	ReasonNotYetValid     Reason = "not_yet_valid"    // nbf is ahead, beyond the clock skew
	ReasonIssuedInFuture  Reason = "issued_in_future" // iat is ahead, beyond the clock skew
)

// reasons lists every Reason, for metrics created up front.
var reasons = [...]Reason{
	ReasonMalformed, ReasonAlgorithm, ReasonType, ReasonUntrustedIssuer, ReasonIssuer,
	ReasonUnknownKey, ReasonSignature, ReasonAudience, ReasonNoExpiry, ReasonExpired,
	ReasonNotYetValid, ReasonIssuedInFuture,
}

// InvalidError refuses a token. It wraps identity.ErrInvalid, so callers
// that only need to tell a refusal from an outage use errors.Is; those
// that report why use errors.As and read Reason.
type InvalidError struct {
	Reason Reason
	// Detail explains the refusal in terms of the configuration (the
	// expected audiences, the allowed algorithms), never the token's
	// contents, so it is safe to log.
	Detail string
}

func (e *InvalidError) Error() string {
	if e.Detail == "" {
		return "jwtverify: token refused: " + string(e.Reason)
	}
	return "jwtverify: token refused: " + string(e.Reason) + ": " + e.Detail
}

// Unwrap makes errors.Is(err, identity.ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return identity.ErrInvalid }

func invalid(r Reason, format string, args ...any) *InvalidError {
	if len(args) == 0 {
		return &InvalidError{Reason: r, Detail: format}
	}
	return &InvalidError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// unavailable wraps err, the failure to fetch keys, so that
// errors.Is(err, identity.ErrUnavailable) holds and the cause is kept.
func unavailable(idp string, err error) error {
	return fmt.Errorf("jwtverify: keys of identity provider %q: %w: %w", idp, identity.ErrUnavailable, err)
}
