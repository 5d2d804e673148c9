package authz

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Request is one request to authorise, as the proxy saw it. It is
// transport-neutral: pkg/extauthz fills it from an ext_authz CheckRequest
// or from an HTTP-mode call.
type Request struct {
	// Host is the :authority, possibly with a port.
	Host string
	// Method is the HTTP method, upper case.
	Method string
	// Path is the path and query as Envoy normalised it ("/a/b?k=v").
	Path string
	// Headers are the request headers by lower-case name. Envoy joins
	// repeated headers with ","; so does pkg/extauthz's HTTP mode.
	Headers map[string]string
	// SourceAddr is the downstream peer's address (ext_authz's
	// attributes.source.address), "IP" or "IP:PORT"; empty when unknown.
	// The client address is derived from it and x-forwarded-for
	// (Options.TrustedHops).
	SourceAddr string
	// RequestID is Envoy's x-request-id, echoed in metadata and problem
	// bodies so a refusal can be traced. Empty falls back to the
	// x-request-id header.
	RequestID string
}

// Decision is the outcome of Decide: exactly one of Allow and Deny is set.
// It is a value the transports render, so that what is decided can be
// tested without a proxy and rendered the same way over gRPC and HTTP.
type Decision struct {
	Allow *Allow
	Deny  *Deny
}

// Allowed reports whether the request may proceed.
func (d Decision) Allowed() bool { return d.Allow != nil }

// Header is one header to set.
type Header struct {
	Name  string // lower case
	Value string
}

// Allow is what to do with an allowed request on its way upstream.
type Allow struct {
	// Identity is who is calling; its zero value is an anonymous caller.
	Identity Identity
	// Operation is the matched operation; nil for a request allowed
	// because it matched no API and Options.AllowUnmanaged is set.
	Operation *catalog.CompiledOperation
	// SetHeaders replace any header of the same name: the transports must
	// overwrite, never append, or a client-sent copy would survive.
	SetHeaders []Header
	// RemoveHeaders are the credential headers read and the client-sent
	// identity headers this decision does not set. A header never appears
	// both here and in SetHeaders, since Envoy removes after it sets.
	RemoveHeaders []string
	// RemoveQueryParams are the API-key query parameters present.
	RemoveQueryParams []string
	// Metadata is the dynamic metadata of DESIGN's contract table.
	Metadata Metadata

	setBuf    [4]Header
	removeBuf [5]string
}

// CredentialKind is how a caller proved who it is.
type CredentialKind uint8

// Credential kinds.
const (
	CredentialNone   CredentialKind = iota // anonymous operation or unmanaged path
	CredentialAPIKey                       // an API key from the catalog
	CredentialJWT                          // a JWT access token, verified locally
	CredentialOpaque                       // an opaque token, introspected
)

var credentialNames = [...]string{"none", "api_key", "jwt", "opaque"}

func (k CredentialKind) String() string {
	if int(k) < len(credentialNames) {
		return credentialNames[k]
	}
	return "unknown"
}

// Identity is who an allowed request is from.
type Identity struct {
	Credential CredentialKind
	// Application is nil for an anonymous caller.
	Application *catalog.CompiledApplication
	KeyType     catalog.KeyType
	// User is the end user: the token's subject when it names someone
	// other than the OAuth client itself. Empty for API keys and
	// client-credentials tokens.
	User string
	// ClientID is the OAuth client of a token.
	ClientID string
	// KeyID is the catalog id of an API key, safe to log.
	KeyID string
	// Token is the verified token; nil for API keys. Shared with the
	// token cache: do not modify.
	Token *identity.Token
	// ClientAddr is the client address the key and policy conditions were
	// checked against; invalid when unknown.
	ClientAddr netip.Addr
}

// Deny is a refusal.
type Deny struct {
	Reason Reason
	// Scopes are the scopes the operation requires, named in the
	// insufficient_scope challenge.
	Scopes []string
	// Accepts is what the operation accepts, which decides the
	// WWW-Authenticate challenges of a 401.
	Accepts catalog.Security
	// Presented is the credential the request carried, if any.
	Presented CredentialKind
	// Realm is the challenges' realm.
	Realm string
	// RequestID is echoed in the problem body.
	RequestID string
	// Operation is the matched operation, nil when none matched; for logs
	// and analytics only.
	Operation *catalog.CompiledOperation
	// Application is the caller's application when it was known before
	// the refusal (subscription and scope refusals).
	Application *catalog.CompiledApplication
}

// Metadata is the dynamic metadata of a refusal: its code, the request id
// and what was known of the request when it was refused (API, operation,
// application). Envoy passes a denied check's metadata to the access log
// too, so analytics can count refusals by API and reason. No rate-limit
// level is set: a refused request is not counted.
func (d *Deny) Metadata() Metadata {
	m := Metadata{ErrorCode: d.Reason.String(), RequestID: d.RequestID}
	if op := d.Operation; op != nil {
		m.API = op.API.ID
		m.Operation = op.Name
	}
	if d.Application != nil {
		m.Application = d.Application.Name
	}
	return m
}

// Response is a refusal rendered for HTTP.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
}

// ProblemContentType is the media type of every refusal's body (RFC 9457).
const ProblemContentType = "application/problem+json"

// problem is the RFC 9457 body; Code and RequestID are extension members.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"requestId,omitempty"`
}

// Response renders the refusal from its reason's row: status, challenge
// and problem+json body. Nothing from the request but its id is echoed.
func (d *Deny) Response() Response {
	ri := d.Reason.Info()
	body, err := json.Marshal(problem{
		Type: ri.Type(), Title: ri.Title, Status: ri.Status, Detail: ri.Detail,
		Code: ri.Code, RequestID: d.RequestID,
	})
	if err != nil { // strings and an int cannot fail to marshal
		body = []byte(`{"title":"Forbidden"}`)
	}
	h := make([]Header, 0, 2)
	h = append(h, Header{Name: "content-type", Value: ProblemContentType})
	if c := d.challenge(ri.challenge); c != "" {
		h = append(h, Header{Name: "www-authenticate", Value: c})
	}
	return Response{Status: ri.Status, Headers: h, Body: body}
}

// challenge builds WWW-Authenticate. RFC 6750 §3.1: a request without
// credentials gets the scheme and realm only, no error code; a bad token
// gets error="invalid_token"; a token without a required scope gets
// error="insufficient_scope" and the scopes. An operation that accepts API
// keys also gets an APIKey challenge (no registered scheme exists for API
// keys; RFC 9110 §11.6.1 wants a challenge on every 401, and naming the
// scheme tells a client what to send).
func (d *Deny) challenge(c challenge) string {
	realm := quote(d.Realm)
	bearer := d.Accepts.Has(catalog.SecurityOAuth2)
	apiKey := d.Accepts.Has(catalog.SecurityAPIKey)
	switch c {
	case challengeAbsent:
		var parts []string
		if bearer || !apiKey {
			parts = append(parts, "Bearer realm="+realm)
		}
		if apiKey {
			parts = append(parts, "APIKey realm="+realm)
		}
		return strings.Join(parts, ", ")
	case challengeInvalidToken:
		if d.Presented == CredentialAPIKey {
			return "APIKey realm=" + realm
		}
		return "Bearer realm=" + realm + `, error="invalid_token"`
	case challengeInvalidRequest:
		if bearer {
			return "Bearer realm=" + realm + `, error="invalid_request"`
		}
		return ""
	case challengeInsufficient:
		return "Bearer realm=" + realm + `, error="insufficient_scope", scope=` + quote(strings.Join(d.Scopes, " "))
	}
	return ""
}

// quote makes s an RFC 9110 quoted-string. Realms and scopes come from
// configuration and the catalog, never from the request.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// control characters cannot appear in a header value
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
