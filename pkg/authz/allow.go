package authz

import (
	"errors"
	"fmt"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/credential"
)

// IdentityHeaders name the headers that tell the upstream who is calling.
// The upstream trusts them, so authz always overwrites them on an allowed
// request and strips any client-sent copy it does not overwrite.
type IdentityHeaders struct {
	Application string // the application's name
	Owner       string // the application's owner
	User        string // the end user, when the token names one
	KeyType     string // PRODUCTION or SANDBOX
}

// DefaultIdentityHeaders are the x-portcullis-* names.
func DefaultIdentityHeaders() IdentityHeaders {
	return IdentityHeaders{
		Application: "x-portcullis-application",
		Owner:       "x-portcullis-application-owner",
		User:        "x-portcullis-user",
		KeyType:     "x-portcullis-key-type",
	}
}

// reservedHeaders are headers an identity header must not replace: the
// proxy or the credential depend on them.
var reservedHeaders = map[string]bool{
	"authorization": true, "host": true, "cookie": true, "content-length": true,
	"content-type": true, "transfer-encoding": true, "connection": true, "te": true,
	"upgrade": true, "x-forwarded-for": true, "x-request-id": true, "x-envoy-original-path": true,
}

// Validate checks that every name is a usable, distinct header name.
func (h IdentityHeaders) Validate() error {
	var errs []error
	seen := map[string]string{}
	for _, f := range h.fields() {
		name := strings.ToLower(f.value)
		switch {
		case f.value == "":
			errs = append(errs, fmt.Errorf("%s: required", f.field))
		case !isToken(f.value):
			errs = append(errs, fmt.Errorf("%s: %q is not an HTTP header name", f.field, f.value))
		case reservedHeaders[name]:
			errs = append(errs, fmt.Errorf("%s: %q is reserved", f.field, f.value))
		case seen[name] != "":
			errs = append(errs, fmt.Errorf("%s: %q is also %s", f.field, f.value, seen[name]))
		}
		seen[name] = f.field
	}
	return errors.Join(errs...)
}

type headerField struct{ field, value string }

func (h IdentityHeaders) fields() []headerField {
	return []headerField{
		{"application", h.Application}, {"owner", h.Owner}, {"user", h.User}, {"keyType", h.KeyType},
	}
}

func (h IdentityHeaders) normalised() IdentityHeaders {
	return IdentityHeaders{
		Application: strings.ToLower(h.Application),
		Owner:       strings.ToLower(h.Owner),
		User:        strings.ToLower(h.User),
		KeyType:     strings.ToLower(h.KeyType),
	}
}

// isToken reports whether s is an RFC 9110 token, what a field name is.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return s != ""
}

// allow builds the allowed decision: identity headers, the consumed
// credential's removal and the rate-limit metadata.
func (f *flow) allow(op *catalog.CompiledOperation, id Identity, sub *catalog.CompiledSubscription, cred *credential.Credential) Decision {
	api := op.API
	allow := &Allow{Operation: op}
	md := &allow.Metadata
	md.API = api.ID
	md.Operation = op.Name
	md.RequestID = f.reqID
	if app := id.Application; app != nil {
		md.Application = app.Name
		md.KeyType = id.KeyType.String()
		md.User = id.User
		if sub != nil && sub.Policy != nil {
			md.SubscriptionCounter = sub.Counter
			md.SubscriptionPolicy = sub.Policy.Name
		}
		if app.Policy != nil {
			md.ApplicationCounter = app.Name
			if id.User != "" {
				md.ApplicationCounter = app.Name + ":" + id.User
			}
			md.ApplicationPolicy = app.Policy.Name
		}
	}
	if p := api.Policy; p != nil {
		md.APICounter = api.ID
		md.APIPolicy = p.Name
		md.APIPolicyGroup = groupName(p.Group(&f.attrs))
	}
	if p := op.Policy; p != nil {
		md.ResourceCounter = op.Counter
		md.ResourcePolicy = p.Name
		md.ResourcePolicyGroup = groupName(p.Group(&f.attrs))
	}
	id.ClientAddr = f.attrs.ClientAddr()
	allow.Identity = id

	h := f.a.headers
	// The header lists live in the Allow's own arrays: no allocation
	// unless a request needs more than they hold.
	allow.SetHeaders = allow.setBuf[:0]
	allow.RemoveHeaders = allow.removeBuf[:0]
	if app := id.Application; app != nil {
		allow.SetHeaders = append(allow.SetHeaders, Header{Name: h.Application, Value: app.Name})
		if app.Owner != "" {
			allow.SetHeaders = append(allow.SetHeaders, Header{Name: h.Owner, Value: app.Owner})
		}
		if id.User != "" {
			allow.SetHeaders = append(allow.SetHeaders, Header{Name: h.User, Value: id.User})
		}
		allow.SetHeaders = append(allow.SetHeaders, Header{Name: h.KeyType, Value: id.KeyType.String()})
	}
	if cred != nil {
		for _, h := range cred.HeadersToRemove() {
			if !isSet(allow.SetHeaders, h) {
				allow.RemoveHeaders = append(allow.RemoveHeaders, h)
			}
		}
		allow.RemoveQueryParams = cred.QueryParamsToRemove()
	}
	allow.RemoveHeaders = f.stripSpoofed(allow.RemoveHeaders, allow.SetHeaders)
	f.a.m.allow[allowLabel(id.Credential)].Inc()
	return Decision{Allow: allow}
}

// allowUnmanaged lets through a request that matches no API: no identity,
// no rate-limit metadata, and no client-sent identity header.
func (f *flow) allowUnmanaged() Decision {
	allow := &Allow{Metadata: Metadata{RequestID: f.reqID}}
	allow.RemoveHeaders = f.stripSpoofed(allow.removeBuf[:0], nil)
	f.a.m.allow[allowUnmanaged].Inc()
	return Decision{Allow: allow}
}

// stripSpoofed appends to remove every identity header the client sent
// that set does not overwrite: the upstream must never read a client's
// claim to be an application or user.
func (f *flow) stripSpoofed(remove []string, set []Header) []string {
	h := f.a.headers
	for _, name := range [...]string{h.Application, h.Owner, h.User, h.KeyType} {
		if _, sent := f.req.Headers[name]; sent && !isSet(set, name) && !contains(remove, name) {
			remove = append(remove, name)
		}
	}
	return remove
}

func isSet(set []Header, name string) bool {
	for _, h := range set {
		if h.Name == name {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func groupName(g *catalog.CompiledGroup) string {
	if g == nil {
		return catalog.DefaultGroup
	}
	return g.Description
}

func allowLabel(k CredentialKind) string {
	switch k {
	case CredentialAPIKey:
		return allowAPIKey
	case CredentialJWT:
		return allowJWT
	case CredentialOpaque:
		return allowOpaque
	}
	return allowAnonymous
}
