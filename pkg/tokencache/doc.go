// Package tokencache remembers what a token verifier said about a token, so
// that a bearer token costs one identity-provider call (or one signature
// check) per cache life instead of one per request.
//
// On the request path it sits between pkg/authz and a verifier
// (pkg/introspect for opaque tokens, pkg/jwtverify for JWTs): authz asks the
// Cache, and the Cache asks the verifier only on a miss. One Cache serves one
// identity provider and applies that provider's catalog.TokenCachePolicy:
//
//   - a verified token is reused until the earlier of its exp and MaxTTL;
//   - a refusal (identity.ErrInvalid) is reused for NegativeTTL;
//   - an identity.ErrUnavailable is never remembered as a refusal, and while
//     the verifier keeps failing that way an expired entry may still serve
//     for StaleIfError past its life, never past the token's own exp;
//   - concurrent lookups of one token share one verifier call.
//
// Entries are keyed by the SHA-256 of the token, never the token, so that a
// heap dump or a debugger shows no usable credential. Memory is bounded by
// Options.MaxEntries.
package tokencache
