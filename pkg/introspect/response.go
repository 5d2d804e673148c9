package introspect

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// check is what an introspection answer is judged against.
type check struct {
	issuer    string   // the provider's; a present iss must equal it
	audiences []string // empty: aud is not checked
	now       time.Time
	skew      time.Duration
}

// errMalformed marks an answer that is not a valid RFC 7662 response. It
// always travels with identity.ErrUnavailable: a provider answering garbage
// has not refused the token.
var errMalformed = errors.New("malformed introspection response")

// errInactive is the provider's own refusal, active: false, told apart
// from our checks' refusals for the metrics.
var errInactive = errors.New("token is not active")

// maxNumericDate bounds exp and nbf (the year 5138) so that a hostile or
// broken answer cannot overflow time arithmetic.
const maxNumericDate = 1e11

// acceptedTypes are the token_type values of an access token usable as a
// bearer token, compared case-insensitively. RFC 7662 leaves token_type
// optional and free-form; providers send "Bearer" (RFC 6750's name, as
// oidc-provider, Keycloak and Hydra do), "access_token", or the RFC 8693
// URI. Anything else, notably refresh_token, id_token and DPoP, is refused:
// a refresh token must never open an API, and a DPoP-bound token is
// worthless without the proof of possession authz does not check.
var acceptedTypes = []string{"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"}

// parseResponse judges an introspection response body. It returns the
// token, or an error wrapping identity.ErrInvalid (the provider or our
// checks refuse it) or identity.ErrUnavailable (the body is not a valid
// response). Error texts name fields and values the provider sent, never
// the token, which the response does not contain.
func parseResponse(body []byte, c check) (*identity.Token, error) {
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		return nil, unavailable(fmt.Errorf("%w: %w", errMalformed, err))
	}
	if claims == nil {
		return nil, unavailable(fmt.Errorf("%w: null", errMalformed))
	}
	active, ok := claims["active"].(bool)
	if !ok {
		return nil, unavailable(fmt.Errorf("%w: \"active\" is %s, want a boolean", errMalformed, kind(claims["active"])))
	}
	if !active {
		return nil, invalid(errInactive)
	}

	tok := &identity.Token{Issuer: c.issuer, Claims: claims}
	var err error
	if tok.Subject, err = optString(claims, "sub"); err != nil {
		return nil, err
	}
	if tok.ClientID, err = optString(claims, "client_id"); err != nil {
		return nil, err
	}
	if tok.Audience, err = stringOrList(claims, "aud"); err != nil {
		return nil, err
	}
	if tok.Scopes, err = scopes(claims); err != nil {
		return nil, err
	}
	exp, err := optNumericDate(claims, "exp")
	if err != nil {
		return nil, err
	}
	nbf, err := optNumericDate(claims, "nbf")
	if err != nil {
		return nil, err
	}
	iss, err := optString(claims, "iss")
	if err != nil {
		return nil, err
	}
	typ, err := optString(claims, "token_type")
	if err != nil {
		return nil, err
	}

	switch {
	case iss != "" && iss != c.issuer:
		return nil, invalid(fmt.Errorf("issuer %q is not the provider's %q", iss, c.issuer))
	case typ != "" && !slices.ContainsFunc(acceptedTypes, func(a string) bool { return strings.EqualFold(a, typ) }):
		return nil, invalid(fmt.Errorf("token_type %q is not an access token usable as a bearer token", typ))
	case claims["cnf"] != nil:
		return nil, invalid(errors.New("token is sender-constrained (cnf), and its proof of possession is not checked here"))
	case !exp.IsZero() && !c.now.Before(exp.Add(c.skew)):
		return nil, invalid(fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339)))
	case !nbf.IsZero() && c.now.Add(c.skew).Before(nbf):
		return nil, invalid(fmt.Errorf("token not valid before %s", nbf.UTC().Format(time.RFC3339)))
	case len(c.audiences) > 0 && !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(c.audiences, a) }):
		return nil, invalid(fmt.Errorf("audience %q names none of %q", tok.Audience, c.audiences))
	}
	tok.Expiry = exp
	return tok, nil
}

func invalid(err error) error     { return fmt.Errorf("%w: %w", identity.ErrInvalid, err) }
func unavailable(err error) error { return fmt.Errorf("%w: %w", identity.ErrUnavailable, err) }

func malformed(name string, v any, want string) error {
	return unavailable(fmt.Errorf("%w: %q is %s, want %s", errMalformed, name, kind(v), want))
}

// kind names a JSON value's type without repeating the value, which could
// be long.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "absent or null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func optString(claims map[string]any, name string) (string, error) {
	switch v := claims[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", malformed(name, v, "a string")
	}
}

// stringOrList reads aud, which RFC 7662 (as RFC 7519) allows as one string
// or an array of strings.
func stringOrList(claims map[string]any, name string) ([]string, error) {
	switch v := claims[name].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, malformed(name, e, "strings in the array")
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, malformed(name, v, "a string or an array of strings")
	}
}

// scopes reads scope: a space-separated string by RFC 7662; an array of
// strings is accepted too, as some providers send one.
func scopes(claims map[string]any) ([]string, error) {
	if s, ok := claims["scope"].(string); ok {
		return strings.Fields(s), nil
	}
	list, err := stringOrList(claims, "scope")
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// optNumericDate reads a NumericDate (seconds since the epoch, possibly
// fractional); zero when absent.
func optNumericDate(claims map[string]any, name string) (time.Time, error) {
	switch v := claims[name].(type) {
	case nil:
		return time.Time{}, nil
	case float64:
		if math.IsNaN(v) || v <= 0 || v > maxNumericDate {
			return time.Time{}, unavailable(fmt.Errorf("%w: %q is %v, out of range", errMalformed, name, v))
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	default:
		return time.Time{}, malformed(name, v, "a number of seconds")
	}
}
