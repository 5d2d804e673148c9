// Package idptest starts a real OpenID provider for tests: the certified
// oidc-provider npm package, configured by test/idp/server.js, on a free
// loopback port, stopped by t.Cleanup.
//
// It is not on the request path. It exists so that JWT verification,
// RFC 7662 introspection, revocation, key rotation and an identity
// provider that is down are tested against an issuer that behaves as real
// ones do, not against a mock that agrees with our own reading of the
// RFCs. The provider issues client-credentials tokens in three shapes (a
// JWT signed RS256, a JWT signed ES256, an opaque token), introspects and
// revokes them for the ClientPortcullis client, and counts the JWKS,
// token, introspection and revocation requests it serves so that tests can
// assert how often the code under test called it.
//
// Node and test/idp/node_modules are required: a missing one fails the
// test (run `npm ci` in test/idp), because a suite that skipped its
// identity-provider tests would pass in a CI image that forgot them.
package idptest
