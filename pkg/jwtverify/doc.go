// Package jwtverify verifies JWT access tokens locally, against the keys
// their identity provider publishes, so that most requests never wait on
// the provider.
//
// On the request path it sits under authz's credential step: authz finds
// a bearer token, picks the identity provider by the token's iss among
// those the API trusts (Set), and the provider's Verifier checks it (often
// behind pkg/tokencache). The result is an identity.Token; a refusal wraps
// identity.ErrInvalid with a Reason, and a provider whose keys cannot be
// fetched, with none cached, wraps identity.ErrUnavailable, so Envoy's
// failOpen decides.
//
// Signatures are verified by go-oidc and go-jose; this package adds what
// an API gateway needs on top of them and they lack: an algorithm
// allow-list that never admits "none" or HMAC; audience against a list;
// exp, nbf and iat against an injected clock with the configured skew
// (go-oidc's nbf leeway is a fixed five minutes and exp has none); RFC 9068
// typ; the client id from a configurable claim; scopes from scope or scp.
// And a key set that does not let forged tokens drive fetches: go-oidc's
// RemoteKeySet fetches the JWKS again after every failed verification,
// where this one fetches only for an unknown kid, at most once per
// cooldown, with concurrent misses sharing one fetch.
package jwtverify
