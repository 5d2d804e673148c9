package authz

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/apikey"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// attributes is one request as policy conditions read it.
type attributes struct {
	req   *Request
	query string // raw query, without "?"
	token *identity.Token
	hops  int

	client   netip.Addr
	resolved bool
}

var _ catalog.Attributes = (*attributes)(nil)

// ClientAddr resolves the client address on first use: most requests need
// it only for an API key's CIDRs or an IP condition. An address that does
// not parse is unknown, which fails only keys and conditions that need one.
func (a *attributes) ClientAddr() netip.Addr {
	if !a.resolved {
		a.resolved = true
		a.client, _ = apikey.ClientAddr(a.req.SourceAddr, a.req.Headers["x-forwarded-for"], a.hops)
	}
	return a.client
}

func (a *attributes) Header(name string) (string, bool) {
	v, ok := a.req.Headers[name]
	return v, ok
}

func (a *attributes) QueryParam(name string) (string, bool) { return queryParam(a.query, name) }

// Claim reads a top-level claim of the verified token as a string:
// strings as they are, numbers in their shortest decimal form, booleans as
// "true"/"false", and arrays of strings joined by spaces (as "scope" is
// written). Objects and absent claims are absent; so is every claim of an
// API-key or anonymous request.
func (a *attributes) Claim(name string) (string, bool) {
	if a.token == nil {
		return "", false
	}
	return claimString(a.token.Claims[name])
}

func claimString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case int:
		return strconv.Itoa(v), true
	case bool:
		return strconv.FormatBool(v), true
	case []string:
		return strings.Join(v, " "), true
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " "), true
	}
	return "", false
}

// queryParam returns the first value of name in a raw query, decoded as a
// form value. It walks the query instead of parsing it into a map, since
// most requests look up one name or none. A pair that does not decode is
// skipped, as url.ParseQuery would.
func queryParam(query, name string) (string, bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if !keyEquals(k, name) {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				continue
			}
			return dv, true
		}
		return v, true
	}
	return "", false
}

// keyEquals compares a raw query key with a decoded name, decoding only
// when the key is escaped.
func keyEquals(raw, name string) bool {
	if !strings.ContainsAny(raw, "%+") {
		return raw == name
	}
	k, err := url.QueryUnescape(raw)
	return err == nil && k == name
}
