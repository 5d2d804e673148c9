// Package introspect asks an identity provider about an opaque OAuth 2.0
// access token (RFC 7662 token introspection) and turns the answer into an
// identity.Token.
//
// On the request path it sits under pkg/tokencache, which calls it only on a
// cache miss: authz finds a bearer token that is not a JWT (or an
// IdentityProvider that verifies by introspection only), the token cache
// misses, and a Client POSTs the token to the provider's introspection
// endpoint, authenticating as Portcullis with client_secret_basic or
// client_secret_post.
//
// Its errors follow pkg/identity: identity.ErrInvalid when the provider says
// the token is not active or the answer refuses it (expired, not yet valid,
// another issuer, a refresh token); identity.ErrUnavailable when no decision
// was reached (timeout, connection error, non-2xx status, a malformed or
// oversized answer, our own client credentials refused). The distinction
// matters downstream: a refusal is cached and answered 401, an unavailable
// provider is never cached as a refusal and lets Envoy's failOpen decide.
//
// The token is sent only in the request body: never in a URL, an error, a
// log line, a metric label or a trace attribute. The client secret is read
// from the file or environment variable the catalog names, re-read
// periodically so that a rotated Kubernetes Secret is picked up, and never
// logged.
package introspect
