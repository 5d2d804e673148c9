// Package authz decides whether a request to a managed API may proceed,
// and if so who it is from and how it is counted. The decision is a value
// (Decision: an Allow or a Deny) that pkg/extauthz renders for Envoy's
// ext_authz gRPC and HTTP protocols; nothing here knows either protocol.
//
// It is step 1 of the request path: Envoy's ext_authz filter asks, authz
// decides from the catalog in force, and the Allow's dynamic metadata is
// what the rate-limit filter of step 2 turns into descriptors.
//
// # The flow
//
//  1. Route (pkg/route): host, base path, method and template to an
//     operation. A path refused by the matcher is a 400 (bad_path); a path
//     no API serves is a 404 (no_route), or an allow with no identity when
//     Options.AllowUnmanaged is set; a path under an API that none of its
//     operations matches is always a 404, since letting it through would
//     bypass that API's security.
//  2. An operation with security none is allowed anonymously (after step
//     3 has listed any API key sent along for removal).
//  3. The credential (pkg/credential), where the operation accepts one: a
//     bearer token in Authorization, or an API key in one of the API's
//     headers or query parameters; a bearer token wins over a key. None is
//     a 401 (missing_credential); another Authorization scheme is a 401
//     (unsupported_scheme); a malformed credential or two different keys
//     are a 400 (invalid_request).
//  4. Verification. An API key is checked for Portcullis's format
//     (pkg/apikey), looked up by SHA-256 in O(1), then held to its expiry
//     (key_expired, 401), CIDRs (key_ip_not_allowed, 403; the client
//     address is apikey.ClientAddr with Options.TrustedHops) and referrers
//     (key_referrer_not_allowed, 403). A bearer token with three
//     dot-separated parts is a JWT: its unverified iss picks the identity
//     provider, which the API must trust, and that provider's verifier
//     checks everything, iss included. Any other token is introspected at
//     the API's providers that introspect, in the API's order. Verifiers
//     are TokenVerifiers, usually behind pkg/tokencache. A refusal is a 401
//     (invalid_credential); a provider that cannot be reached, with
//     nothing cached, is no decision at all: Decide returns an error
//     wrapping ErrUnavailable and identity.ErrUnavailable.
//  5. Application: the key's, or the one owning the token's OAuth client,
//     which also gives the key type (unknown_application, 403).
//  6. Subscription of that application to this API, and its state:
//     not_subscribed, subscription_blocked, subscription_on_hold,
//     prod_key_blocked (PROD_ONLY_BLOCKED with a PRODUCTION credential),
//     each a 403.
//  7. Scopes: a token must carry every scope the operation lists
//     (insufficient_scope, 403). API keys carry no scopes and are not held
//     to them: a key stands for its application's subscription, which is
//     the whole grant, as in WSO2 API Manager.
//  8. Throttling inputs: the first matching condition group of the API's
//     and of the operation's policy, evaluated here over the client
//     address, headers, query parameters and token claims, so that the
//     rate-limit server never needs the request.
//
// # What an Allow carries
//
// Metadata holds every key of DESIGN's contract table that applies, as
// strings: api, operation, application, user, key_type, the counter and
// policy of each rate-limit level (subscription, application, api,
// resource, with the matched group at the api and resource levels), and
// request_id. A level without a policy has none of its keys, so Envoy drops
// that level's descriptor instead of counting under an empty policy. The
// user is the token's subject when it differs from the OAuth client id: a
// client-credentials token names no end user.
//
// SetHeaders are the identity headers (IdentityHeaders), to be set with
// overwrite semantics. RemoveHeaders are the credential headers read
// (authorization, the API's key headers present) and every identity
// header the client sent that this decision does not set, so a caller
// cannot pass itself off as an application or user; a header is never
// both set and removed, since Envoy removes after it sets.
// RemoveQueryParams are the API's key parameters present. Keys are removed
// used or not, even on an operation that needs no credential, so a
// Portcullis key never goes upstream; Authorization is removed only where
// a bearer token is accepted.
//
// # Refusals
//
// Reasons are a closed set with one table (ReasonInfo) fixing each one's
// status, WWW-Authenticate challenge, RFC 9457 problem+json type, title and
// stable code, and metric label. Challenges follow RFC 6750 §3.1 rather
// than the wording: a request without any credential gets
// `Bearer realm="…"` with no error code ("If the request lacks any
// authentication information … the resource server SHOULD NOT include an
// error code"), so a client can tell "send a token" from "your token is
// bad"; an invalid token gets error="invalid_token"; a missing scope gets
// error="insufficient_scope" and scope="…". Operations that accept API
// keys add an `APIKey realm="…"` challenge, since no registered scheme
// exists for them and RFC 9110 wants a challenge on every 401.
//
// # Reloads
//
// Update installs a catalog snapshot, the route table built from it and
// the verifiers built for it as one immutable value behind an atomic
// pointer; each Decide reads it once.
//
// Tokens and keys never reach logs or metrics: refusals are logged at debug
// level with their reason, API, operation and application only, and metric
// labels come from closed sets.
package authz
