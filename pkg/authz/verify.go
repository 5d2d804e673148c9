package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/apikey"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// apiKey checks an API key: its format, its hash in the catalog, then its
// own restrictions. On success it fills id; otherwise it returns the deny.
func (f *flow) apiKey(op *catalog.CompiledOperation, key string, id *Identity) (Decision, bool) {
	deny := func(r Reason) (Decision, bool) {
		return f.deny(&Deny{Reason: r, Operation: op, Accepts: op.Security, Presented: CredentialAPIKey}), false
	}
	// A mistyped Portcullis key is refused without a lookup; a key in
	// another format (migrated) goes straight to the lookup.
	if apikey.CheckFormat(key) != nil {
		return deny(ReasonInvalidCredential)
	}
	app, k, ok := f.st.snap.ApplicationByKeyHash(apikey.Hash(key))
	if !ok {
		return deny(ReasonInvalidCredential)
	}
	if err := apikey.Check(k, f.a.now(), f.attrs.ClientAddr(), f.req.Headers["referer"]); err != nil {
		switch {
		case errors.Is(err, apikey.ErrExpired):
			return deny(ReasonKeyExpired)
		case errors.Is(err, apikey.ErrNoReferrer), errors.Is(err, apikey.ErrReferrerNotAllowed):
			return deny(ReasonKeyReferrerNotAllowed)
		case errors.Is(err, apikey.ErrRestricted):
			return deny(ReasonKeyIPNotAllowed)
		}
		return deny(ReasonInvalidCredential)
	}
	*id = Identity{
		Credential:  CredentialAPIKey,
		Application: app,
		KeyType:     k.KeyType,
		KeyID:       k.ID,
	}
	return Decision{}, true
}

// bearer verifies an OAuth2 access token and maps its client to an
// application. A token that looks like a JWT goes to the provider its iss
// names, if the API trusts it; any other token is introspected at the
// API's providers that introspect, in the order the API lists them.
func (f *flow) bearer(ctx context.Context, op *catalog.CompiledOperation, raw string, id *Identity) (Decision, bool, error) {
	deny := func(r Reason, kind CredentialKind) (Decision, bool, error) {
		return f.deny(&Deny{Reason: r, Operation: op, Accepts: op.Security, Presented: kind}), false, nil
	}
	tok, kind, err := f.verifyToken(ctx, op.API, raw)
	switch {
	case err == nil:
	case errors.Is(err, identity.ErrInvalid):
		return deny(ReasonInvalidCredential, kind)
	default:
		return Decision{}, false, fmt.Errorf("decide: verify bearer token: %w: %w", ErrUnavailable, err)
	}
	if tok.ClientID == "" {
		return deny(ReasonUnknownApplication, kind)
	}
	app, kt, ok := f.st.snap.ApplicationByClientID(tok.ClientID)
	if !ok {
		return deny(ReasonUnknownApplication, kind)
	}
	*id = Identity{
		Credential:  kind,
		Application: app,
		KeyType:     kt,
		ClientID:    tok.ClientID,
		Token:       tok,
	}
	// A client-credentials token's subject is the client itself; only a
	// subject naming someone else is an end user.
	if tok.Subject != tok.ClientID {
		id.User = tok.Subject
	}
	f.attrs.token = tok
	return Decision{}, true, nil
}

var errUntrustedIssuer = fmt.Errorf("token issuer not trusted by this API: %w", identity.ErrInvalid)

// verifyToken picks the verifier and asks it. Errors follow pkg/identity.
func (f *flow) verifyToken(ctx context.Context, api *catalog.CompiledAPI, raw string) (*identity.Token, CredentialKind, error) {
	if looksLikeJWT(raw) {
		idp, err := trustedIssuer(api, raw)
		if err != nil {
			return nil, CredentialJWT, err
		}
		v := f.st.verifiers[idp.Name]
		switch {
		case idp.JWT != nil && v.JWT != nil:
			tok, err := v.JWT.Verify(ctx, raw)
			return tok, CredentialJWT, err
		case idp.Introspection != nil && v.Introspection != nil:
			// A provider that issues JWT-shaped tokens but is configured
			// for introspection only is asked about them.
			tok, err := v.Introspection.Verify(ctx, raw)
			return tok, CredentialOpaque, err
		}
		return nil, CredentialJWT, fmt.Errorf("no verifier for identity provider %s: %w", idp.Name, identity.ErrInvalid)
	}
	var unavailable error
	for _, idp := range api.IdentityProviders {
		v := f.st.verifiers[idp.Name].Introspection
		if idp.Introspection == nil || v == nil {
			continue
		}
		tok, err := v.Verify(ctx, raw)
		if err == nil {
			return tok, CredentialOpaque, nil
		}
		if !errors.Is(err, identity.ErrInvalid) && unavailable == nil {
			unavailable = err
		}
	}
	// A provider that could not answer might have known the token: that is
	// no decision, not a refusal.
	if unavailable != nil {
		return nil, CredentialOpaque, unavailable
	}
	return nil, CredentialOpaque, fmt.Errorf("opaque token not active at any trusted provider: %w", identity.ErrInvalid)
}

// looksLikeJWT reports whether raw has the JWS compact form's three
// dot-separated parts.
func looksLikeJWT(raw string) bool {
	return strings.Count(raw, ".") == 2
}

var errBadJWT = fmt.Errorf("malformed JWT: %w", identity.ErrInvalid)

// maxStackPayload is the JWT payload size decoded without allocating;
// larger payloads (rare: big claim sets) are decoded on the heap.
const maxStackPayload = 1024

// trustedIssuer reads the iss claim of a JWT without verifying it, only to
// choose the provider whose verifier then checks everything, iss
// included, and returns that provider if the API trusts it. This runs on
// every bearer request, cached or not, so it decodes into a stack buffer
// and scans the payload's top level rather than unmarshalling it.
func trustedIssuer(api *catalog.CompiledAPI, raw string) (*catalog.CompiledIdentityProvider, error) {
	first := strings.IndexByte(raw, '.')
	last := strings.LastIndexByte(raw, '.')
	payload := raw[first+1 : last]
	var stack [maxStackPayload]byte
	var src [maxStackPayload * 4 / 3]byte
	buf, in := stack[:], src[:]
	if n := base64.RawURLEncoding.DecodedLen(len(payload)); n > len(buf) || len(payload) > len(in) {
		buf, in = make([]byte, n), make([]byte, len(payload))
	}
	in = in[:copy(in, payload)]
	n, err := base64.RawURLEncoding.Decode(buf, in)
	if err != nil {
		return nil, errBadJWT
	}
	iss, ok := topLevelString(buf[:n], "iss")
	if !ok {
		return nil, errBadJWT
	}
	for _, p := range api.IdentityProviders {
		if string(iss) == p.Issuer {
			return p, nil
		}
	}
	return nil, errUntrustedIssuer
}

// topLevelString finds member name of the JSON object in doc and returns
// its value if it is a string. Nested objects and arrays are skipped, so a
// claim such as {"act":{"iss":…}} cannot stand in for the token's own iss,
// and a repeated member yields its last value, as encoding/json (and so
// the verifier) reads it. ok is false for anything but an object holding
// the member as a string; the verifier parses the payload fully
// afterwards, so this scan only has to agree with it on well-formed JSON.
func topLevelString(doc []byte, name string) (value []byte, ok bool) {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return nil, false
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return nil, false
	}
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return nil, false
		}
		end, escaped := scanString(doc, i)
		if end < 0 {
			return nil, false
		}
		isName := !escaped && string(doc[i+1:end-1]) == name
		if escaped {
			var k string
			isName = json.Unmarshal(append([]byte(nil), doc[i:end]...), &k) == nil && k == name
		}
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return nil, false
		}
		i = skipSpace(doc, i+1)
		if i >= len(doc) {
			return nil, false
		}
		if isName {
			value, ok = nil, false
			if doc[i] == '"' {
				vend, vesc := scanString(doc, i)
				if vend < 0 {
					return nil, false
				}
				value, ok = doc[i+1:vend-1], true
				if vesc {
					// A copy, so doc (a stack buffer) does not escape.
					var s string
					if json.Unmarshal(append([]byte(nil), doc[i:vend]...), &s) != nil {
						return nil, false
					}
					value = []byte(s)
				}
			}
		}
		if i = skipValue(doc, i); i < 0 {
			return nil, false
		}
		i = skipSpace(doc, i)
		if i >= len(doc) {
			return nil, false
		}
		switch doc[i] {
		case ',':
			i++
		case '}':
			return value, ok
		default:
			return nil, false
		}
	}
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at doc[i]
// (a '"'), and whether it needs decoding: an escape, or a byte outside
// ASCII (which encoding/json would check as UTF-8); -1 if it does not end.
func scanString(doc []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(doc); j++ {
		switch c := doc[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			return j + 1, escaped
		case c >= 0x80:
			escaped = true
		}
	}
	return -1, escaped
}

// skipValue returns the index just past the JSON value starting at
// doc[i], or -1. Scalars are skipped to the next delimiter; their syntax
// is the verifier's business.
func skipValue(doc []byte, i int) int {
	depth := 0
	for i < len(doc) {
		switch c := doc[i]; c {
		case '"':
			end, _ := scanString(doc, i)
			if end < 0 {
				return -1
			}
			i = end
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	if depth == 0 {
		return i
	}
	return -1
}
