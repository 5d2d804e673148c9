package authz

import (
	"fmt"
	"net/http"
)

// Reason is why a request is refused. The set is closed: every Reason has
// one row in the reasons table, which fixes its HTTP status, its
// WWW-Authenticate challenge, its problem+json type, title and code, and
// its metric label, so the gRPC and HTTP front ends, the metrics and the
// analytics events cannot disagree about what a refusal means.
type Reason uint8

// The reasons, in the order a request meets them.
const (
	// ReasonMalformedRequest: the check request itself was unusable (no
	// method or path). Only the transports produce it; Decide never does.
	ReasonMalformedRequest Reason = iota + 1
	// ReasonBadPath: a path that could mean something else to the upstream
	// than to the route matcher (dot segments, encoded slashes; see
	// pkg/route), refused rather than matched.
	ReasonBadPath
	ReasonNoRoute
	ReasonMissingCredential
	// ReasonUnsupportedScheme: Authorization with another scheme (Basic)
	// where a Bearer token is accepted.
	ReasonUnsupportedScheme
	// ReasonInvalidRequest: a credential that cannot be one (a malformed
	// bearer token or key) or two different API keys (RFC 6750's
	// invalid_request).
	ReasonInvalidRequest
	ReasonInvalidCredential
	ReasonKeyExpired
	ReasonKeyIPNotAllowed
	ReasonKeyReferrerNotAllowed
	ReasonUnknownApplication
	ReasonNotSubscribed
	ReasonSubscriptionBlocked
	ReasonSubscriptionOnHold
	ReasonProdKeyBlocked
	ReasonInsufficientScope
	// ReasonIdPUnavailable is not a refusal of the caller. Decide reports
	// an unreachable identity provider as an error wrapping ErrUnavailable;
	// a transport configured to answer 503 rather than gRPC UNAVAILABLE
	// renders that error with this row.
	ReasonIdPUnavailable

	reasonCount // keep last
)

// challenge is what a refusal puts in WWW-Authenticate.
type challenge uint8

const (
	challengeNone           challenge = iota
	challengeAbsent                   // credentials absent: scheme and realm only (RFC 6750 §3.1)
	challengeInvalidToken             // error="invalid_token"
	challengeInvalidRequest           // error="invalid_request", where Bearer is accepted
	challengeInsufficient             // error="insufficient_scope", scope="…"
)

// ReasonInfo is a Reason's row: everything a transport needs to render it.
type ReasonInfo struct {
	// Code is the stable, machine-readable name: the problem+json "code"
	// member, the metric label and the analytics error code. It never
	// changes once released.
	Code string
	// Status is the HTTP status of the refusal.
	Status int
	// Title is the problem+json title, fixed per reason (RFC 9457 §3.1.4).
	Title string
	// Detail is the problem+json detail. It is fixed per reason and never
	// quotes the request, so no credential can leak through it.
	Detail string

	challenge challenge
}

// Type is the problem+json "type" URI. It names the reason's
// documentation; it need not resolve.
func (ri ReasonInfo) Type() string { return problemTypeBase + ri.Code }

const problemTypeBase = "https://portcullis.dev/problems/"

// reasons is the one table. Statuses follow RFC 9110 and RFC 6750: 401
// when the caller must present (another) credential, 403 when the
// credential is good but not enough, 404 when no API is there.
var reasons = [reasonCount]ReasonInfo{
	ReasonMalformedRequest: {
		Code: "malformed_request", Status: http.StatusBadRequest,
		Title:  "Malformed authorization request",
		Detail: "The proxy sent an authorization check without the request's method or path.",
	},
	ReasonBadPath: {
		Code: "bad_path", Status: http.StatusBadRequest,
		Title:  "Path not accepted",
		Detail: "The request path has dot segments, encoded separators or characters that are refused before routing.",
	},
	ReasonNoRoute: {
		Code: "no_route", Status: http.StatusNotFound,
		Title:  "No such API",
		Detail: "No API operation matches this host, method and path.",
	},
	ReasonMissingCredential: {
		Code: "missing_credential", Status: http.StatusUnauthorized,
		Title:     "Credential required",
		Detail:    "This operation needs an access token or an API key, and the request carries neither.",
		challenge: challengeAbsent,
	},
	ReasonUnsupportedScheme: {
		Code: "unsupported_scheme", Status: http.StatusUnauthorized,
		Title:     "Unsupported authorization scheme",
		Detail:    "The Authorization header uses a scheme other than Bearer.",
		challenge: challengeAbsent,
	},
	ReasonInvalidRequest: {
		Code: "invalid_request", Status: http.StatusBadRequest,
		Title:     "Malformed credential",
		Detail:    "The credential is malformed, or the request carries more than one API key.",
		challenge: challengeInvalidRequest,
	},
	ReasonInvalidCredential: {
		Code: "invalid_credential", Status: http.StatusUnauthorized,
		Title:     "Invalid credential",
		Detail:    "The access token or API key is not valid: unknown, malformed, expired, revoked or issued for another audience.",
		challenge: challengeInvalidToken,
	},
	ReasonKeyExpired: {
		Code: "key_expired", Status: http.StatusUnauthorized,
		Title:     "API key expired",
		Detail:    "The API key has passed its expiry time.",
		challenge: challengeInvalidToken,
	},
	ReasonKeyIPNotAllowed: {
		Code: "key_ip_not_allowed", Status: http.StatusForbidden,
		Title:  "Client address not allowed for this API key",
		Detail: "The API key may only be used from its allowed networks.",
	},
	ReasonKeyReferrerNotAllowed: {
		Code: "key_referrer_not_allowed", Status: http.StatusForbidden,
		Title:  "Referrer not allowed for this API key",
		Detail: "The API key may only be used from its allowed referrers.",
	},
	ReasonUnknownApplication: {
		Code: "unknown_application", Status: http.StatusForbidden,
		Title:  "Unknown application",
		Detail: "The token's OAuth client belongs to no application in the catalog.",
	},
	ReasonNotSubscribed: {
		Code: "not_subscribed", Status: http.StatusForbidden,
		Title:  "Not subscribed",
		Detail: "The application has no subscription to this API.",
	},
	ReasonSubscriptionBlocked: {
		Code: "subscription_blocked", Status: http.StatusForbidden,
		Title:  "Subscription blocked",
		Detail: "The application's subscription to this API is blocked.",
	},
	ReasonSubscriptionOnHold: {
		Code: "subscription_on_hold", Status: http.StatusForbidden,
		Title:  "Subscription on hold",
		Detail: "The application's subscription to this API awaits approval.",
	},
	ReasonProdKeyBlocked: {
		Code: "prod_key_blocked", Status: http.StatusForbidden,
		Title:  "Production access blocked",
		Detail: "The subscription is blocked for production credentials; sandbox credentials still work.",
	},
	ReasonInsufficientScope: {
		Code: "insufficient_scope", Status: http.StatusForbidden,
		Title:     "Insufficient scope",
		Detail:    "The access token lacks a scope this operation requires.",
		challenge: challengeInsufficient,
	},
	ReasonIdPUnavailable: {
		Code: "idp_unavailable", Status: http.StatusServiceUnavailable,
		Title:  "Identity provider unavailable",
		Detail: "The credential could not be verified because the identity provider did not answer. Retry later.",
	},
}

// Info returns r's row. An out-of-range Reason (never produced here) gets
// a 403 row named "unknown", so a transport never renders an allow.
func (r Reason) Info() ReasonInfo {
	if r > 0 && r < reasonCount {
		return reasons[r]
	}
	return ReasonInfo{Code: "unknown", Status: http.StatusForbidden, Title: "Forbidden", Detail: "The request is refused."}
}

// String is the reason's stable code.
func (r Reason) String() string {
	if r > 0 && r < reasonCount {
		return reasons[r].Code
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Reasons returns every Reason, for tests and for pre-creating metric
// series so that a rate() over a reason works before its first refusal.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonCount-1)
	for r := Reason(1); r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}
