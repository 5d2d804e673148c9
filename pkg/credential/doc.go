// Package credential reads the credential a request presents, from where
// the matched operation accepts one: a bearer token in Authorization, or an
// API key in one of the API's key headers or query parameters.
//
// On the request path it runs in authz right after pkg/route: the
// operation's effective security says which kinds to look for, and the
// Credential that comes back goes to token verification (pkg/jwtverify,
// pkg/introspect through pkg/tokencache) or to the API-key lookup
// (pkg/apikey and the catalog). Its removal lists feed the Allow
// response's headers_to_remove and query_parameters_to_remove, so that no
// credential Portcullis consumed reaches the upstream.
//
// It reads, it does not verify: a well-formed token that is forged passes
// here and fails later.
//
// # Rules
//
//   - Authorization holds a bearer token as RFC 6750 section 2.1 says:
//     the scheme "Bearer" in any case, one or more spaces, and a b64token
//     (letters, digits, "-._~+/", then any "="). Anything else in
//     Authorization, when the operation accepts oauth2, is refused rather
//     than ignored: another scheme (Basic, Digest) is ErrUnsupportedScheme,
//     a bearer without a token or with characters outside b64token is
//     ErrMalformed. Ignoring it would let a request that meant to
//     authenticate fall through to an API key or to anonymous access.
//   - An API key is any run of visible ASCII other than ",", at most
//     MaxAPIKeyLen bytes. Envoy joins repeated headers with ",", so a comma
//     means two keys were sent. An API that lists Authorization among its
//     key headers gets its whole value as the key, unless the operation
//     accepts oauth2 and the value is a bearer token.
//   - Two different API keys in one request (two headers, a header and a
//     query parameter, a parameter repeated) are ErrAmbiguous: a request
//     identifies one application. The same key in two places is one key.
//   - When the operation accepts both kinds and both are present, the
//     bearer token wins: it is what RFC 6750 clients send deliberately, it
//     can name an end user as well as an application, and WSO2 API Manager,
//     whose APIs Portcullis takes over, tries OAuth2 before API keys. The
//     unused key is still removed from the request.
//   - A query parameter is recognised only under its exact name as
//     configured. A name that only percent-decodes to it (api%5Fkey) is
//     ErrMalformed, because Envoy's query_parameters_to_remove might not
//     remove it and the upstream might decode it.
//   - Nothing present, when the operation needs a credential, is
//     ErrMissing.
//
// Every error wraps identity.ErrInvalid, so authz refuses the request
// (RFC 6750: ErrMissing is 401 without an error code, ErrUnsupportedScheme
// 401 with the Bearer challenge, ErrMalformed and ErrAmbiguous 400
// invalid_request). No error, and no formatting of a Credential, contains
// the secret.
package credential
