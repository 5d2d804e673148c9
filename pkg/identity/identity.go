// Package identity is the value every credential check produces, and the
// two ways a check can fail. jwtverify, introspect and tokencache speak it,
// and authz consumes it, so a bad token and an unreachable identity
// provider are told apart the same way everywhere: errors.Is(err,
// ErrInvalid) means refuse the caller (401), errors.Is(err, ErrUnavailable)
// means we could not decide (gRPC UNAVAILABLE, so Envoy's failOpen decides).
package identity

import (
	"errors"
	"time"
)

// Token is what a verified access token says. It never holds the token
// itself: callers keep the raw string only as long as they must.
type Token struct {
	Issuer   string
	Subject  string
	ClientID string
	Scopes   []string
	Audience []string
	// Expiry is when the token stops being valid; zero when it carries no exp.
	Expiry time.Time
	// Claims are the JWT claims or introspection response members, for
	// policy conditions on claims.
	Claims map[string]any
}

// HasScopes reports whether every scope in want was granted.
func (t *Token) HasScopes(want []string) bool {
	for _, w := range want {
		found := false
		for _, s := range t.Scopes {
			if s == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

var (
	// ErrInvalid wraps every refusal of the credential itself: bad
	// signature, expired, wrong audience, inactive, unknown issuer.
	ErrInvalid = errors.New("invalid credential")
	// ErrUnavailable wraps every failure to reach a decision: the identity
	// provider did not answer, answered garbage, or timed out.
	ErrUnavailable = errors.New("identity provider unavailable")
)
