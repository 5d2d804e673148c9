package credential

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Kind is what sort of credential a request presented.
type Kind uint8

const (
	// KindNone is no credential, for an operation that needs none.
	KindNone Kind = iota
	// KindBearer is an OAuth2 access token from Authorization.
	KindBearer
	// KindAPIKey is an API key from a header or query parameter.
	KindAPIKey
)

// String is the kind's name in logs and metric labels.
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindBearer:
		return "bearer"
	case KindAPIKey:
		return "apiKey"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits on a credential's length. A longer value is ErrMalformed: no
// real token or key is that long, and hashing or verifying an arbitrary
// amount of attacker-chosen bytes is work for nothing.
const (
	MaxTokenLen  = 16 << 10
	MaxAPIKeyLen = 1 << 10
)

// AuthorizationHeader is where a bearer token is read from, lower case as
// Envoy gives header names.
const AuthorizationHeader = "authorization"

// Errors. Each wraps identity.ErrInvalid; Read wraps them again with the
// header or parameter name (never its value).
var (
	ErrMissing           = fmt.Errorf("no credential: %w", identity.ErrInvalid)
	ErrMalformed         = fmt.Errorf("malformed credential: %w", identity.ErrInvalid)
	ErrUnsupportedScheme = fmt.Errorf("authorization scheme is not Bearer: %w", identity.ErrInvalid)
	ErrAmbiguous         = fmt.Errorf("more than one credential: %w", identity.ErrInvalid)
)

// Credential is the credential a request presented. Value is the secret:
// the type formats as a redacted value under every fmt verb, in slog and
// in JSON, so it cannot be logged by accident; read Value itself only to
// verify it.
type Credential struct {
	Kind  Kind
	Value string
	// Header is the lower-case header Value came from; "" when it came
	// from the query.
	Header string
	// QueryParam is the query parameter Value came from; "" when it came
	// from a header.
	QueryParam string

	removeHeaders []string
	removeParams  []string
}

// HeadersToRemove are the request headers the Allow response removes
// before the request goes upstream: every header this package read a
// credential from, used or not. The slice is the caller's.
func (c Credential) HeadersToRemove() []string { return c.removeHeaders }

// QueryParamsToRemove are the query parameters the Allow response removes:
// every configured key parameter present in the request. The slice is the
// caller's.
func (c Credential) QueryParamsToRemove() []string { return c.removeParams }

// String redacts the credential: its kind and where it came from.
func (c Credential) String() string {
	switch {
	case c.Kind == KindNone:
		return "credential(none)"
	case c.QueryParam != "":
		return "credential(" + c.Kind.String() + " from query " + c.QueryParam + ": [REDACTED])"
	default:
		return "credential(" + c.Kind.String() + " from header " + c.Header + ": [REDACTED])"
	}
}

// GoString redacts the credential under %#v.
func (c Credential) GoString() string { return "credential.Credential(" + c.String() + ")" }

// Format redacts the credential under every verb: without it %x or %d
// would print the fields of a value that has a String method.
func (c Credential) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, c.GoString())
		return
	}
	io.WriteString(f, c.String())
}

// LogValue redacts the credential in slog, keeping what helps debugging.
func (c Credential) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("kind", c.Kind.String())}
	if c.Header != "" {
		attrs = append(attrs, slog.String("header", c.Header))
	}
	if c.QueryParam != "" {
		attrs = append(attrs, slog.String("queryParam", c.QueryParam))
	}
	return slog.GroupValue(attrs...)
}

// MarshalText redacts the credential in encoding/json and friends.
func (c Credential) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Read finds the credential a request presents for op, whose Security
// says which kinds it accepts and whose API (op.API) says where API keys
// are carried. headers are the request's headers with lower-case names,
// as Envoy's CheckRequest gives them (repeated headers joined with ","),
// query its query string without the "?". See the package documentation
// for the rules; every error wraps identity.ErrInvalid.
//
// For an operation that needs no credential Read returns KindNone and
// nothing is read, but configured API-key headers and parameters present
// are still listed for removal: a Portcullis key never goes upstream.
func Read(op *catalog.CompiledOperation, headers map[string]string, query string) (Credential, error) {
	var (
		c       Credential
		api     = op.API
		sec     = op.Security
		wantKey = sec.Has(catalog.SecurityAPIKey)
		bearer  string
		hasBear bool
		key     string
		keyHdr  string
		keyPar  string
	)
	if sec.Has(catalog.SecurityOAuth2) {
		if v, ok := headers[AuthorizationHeader]; ok {
			c.removeHeaders = append(c.removeHeaders, AuthorizationHeader)
			tok, err := BearerToken(v)
			switch {
			case err == nil:
				bearer, hasBear = tok, true
			case wantKey && isKeyHeader(api, AuthorizationHeader):
				// The API reads its keys from Authorization too: what is
				// not a bearer token is a key, and checked as one below.
			default:
				return Credential{}, fmt.Errorf("read credential from header %s: %w", AuthorizationHeader, err)
			}
		}
	}
	for _, h := range api.APIKeyHeaders {
		v, ok := headers[h]
		if !ok || (hasBear && h == AuthorizationHeader) {
			continue
		}
		if h != AuthorizationHeader || !sec.Has(catalog.SecurityOAuth2) {
			c.removeHeaders = append(c.removeHeaders, h)
		}
		if !wantKey {
			continue
		}
		if err := checkKey(v); err != nil {
			return Credential{}, fmt.Errorf("read API key from header %s: %w", h, err)
		}
		if keyHdr == "" && keyPar == "" {
			key, keyHdr = v, h
		} else if v != key {
			return Credential{}, fmt.Errorf("read API key from header %s: %w", h, ErrAmbiguous)
		}
	}
	if len(api.APIKeyQueryParams) > 0 && query != "" {
		for pair := range strings.SplitSeq(query, "&") {
			name, value, hasValue := strings.Cut(pair, "=")
			p, exact := keyParam(api, name)
			if p == "" || (!exact && !wantKey) {
				continue
			}
			if !exact {
				return Credential{}, fmt.Errorf("read API key from query parameter %s: percent-encoded name: %w", p, ErrMalformed)
			}
			if !contains(c.removeParams, p) {
				c.removeParams = append(c.removeParams, p)
			}
			if !wantKey {
				continue
			}
			v, err := url.QueryUnescape(value)
			if err == nil && !hasValue {
				err = ErrMalformed
			}
			if err == nil {
				err = checkKey(v)
			}
			if err != nil {
				return Credential{}, fmt.Errorf("read API key from query parameter %s: %w", p, ErrMalformed)
			}
			if keyHdr == "" && keyPar == "" {
				key, keyPar = v, p
			} else if v != key {
				return Credential{}, fmt.Errorf("read API key from query parameter %s: %w", p, ErrAmbiguous)
			}
		}
	}
	switch {
	case sec == catalog.SecurityNone:
		c.Kind = KindNone
	case hasBear:
		c.Kind, c.Value, c.Header = KindBearer, bearer, AuthorizationHeader
	case keyHdr != "" || keyPar != "":
		c.Kind, c.Value, c.Header, c.QueryParam = KindAPIKey, key, keyHdr, keyPar
	default:
		return Credential{}, ErrMissing
	}
	return c, nil
}

// BearerToken reads the token of an Authorization header value as RFC
// 6750 section 2.1 writes it. The errors are ErrUnsupportedScheme and
// ErrMalformed, and never hold the value.
func BearerToken(authorization string) (string, error) {
	scheme, rest, found := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if !found && strings.EqualFold(strings.TrimRight(scheme, " \t"), "Bearer") {
			return "", ErrMalformed
		}
		return "", ErrUnsupportedScheme
	}
	tok := strings.TrimLeft(rest, " ")
	if !isB64Token(tok) {
		return "", ErrMalformed
	}
	return tok, nil
}

// isB64Token reports whether s is RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	if s == "" || len(s) > MaxTokenLen {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// checkKey refuses an API key that cannot be one: empty, too long, or
// holding a space, a control character, a comma or a byte outside ASCII.
func checkKey(v string) error {
	if v == "" || len(v) > MaxAPIKeyLen {
		return ErrMalformed
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return ErrMalformed
		}
	}
	return nil
}

func isKeyHeader(api *catalog.CompiledAPI, h string) bool {
	return contains(api.APIKeyHeaders, h)
}

// keyParam returns the configured key parameter that the raw query name
// is, and whether it is it exactly; "" when it is none of them.
func keyParam(api *catalog.CompiledAPI, raw string) (string, bool) {
	for _, p := range api.APIKeyQueryParams {
		if raw == p {
			return p, true
		}
	}
	if strings.ContainsAny(raw, "%+") {
		if d, err := url.QueryUnescape(raw); err == nil {
			for _, p := range api.APIKeyQueryParams {
				if d == p {
					return p, false
				}
			}
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
