// Package extauthz speaks Envoy's external-authorization protocols for
// pkg/authz: it turns a check into an authz.Request, and the authz.Decision
// back into the proxy's answer. It decides nothing itself.
//
// It is step 1 of the request path, on the wire: Envoy's ext_authz filter
// (Istio's envoyExtAuthzGrpc or envoyExtAuthzHttp provider, or nginx's
// auth_request) calls it before routing a request upstream.
//
// # gRPC (envoy.service.auth.v3.Authorization/Check)
//
// An allow is status OK with an OkHttpResponse: the identity headers with
// append_action OVERWRITE_IF_EXISTS_OR_ADD (Envoy's default appends, which
// would keep a client's spoofed copy beside ours), headers_to_remove and
// query_parameters_to_remove for the consumed credential and spoofed
// identity headers, and dynamic_metadata, a Struct of string values that
// Envoy files under the namespace envoy.filters.http.ext_authz for the
// rate-limit filter and the access log. A refusal is UNAUTHENTICATED (401)
// or PERMISSION_DENIED (403, 404, 400) with a DeniedHttpResponse carrying
// the status, WWW-Authenticate and a problem+json body; its metadata holds
// error_code, request_id and the API, operation and application when they
// were known. No decision (identity provider down, nothing cached) is a
// gRPC UNAVAILABLE error by default, so Envoy's failure_mode_allow and
// status_on_error decide; UnavailableDeny503 answers a 503 refusal
// instead. A check without attributes.request.http, a method or an
// origin-form path is refused with 400, never failed open.
//
// # HTTP mode
//
// Server is also an http.Handler for the admin HTTP port, mounted at a
// prefix (cmd/authz: -http-addr, config http.prefix, default /authz).
//
// Envoy's HTTP ext_authz: set http_service.path_prefix to the prefix;
// Envoy then sends the original method and prefix + original path. Allow
// the headers authz reads in authorization_request.allowed_headers
// (authorization and the APIs' key headers, x-forwarded-for when hops are
// trusted, the headers policy conditions read) and add the client address
// with headers_to_add (x-real-ip: %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%)
// named by Options.HTTPClientAddrHeader. On allow, authz answers 200 with
// the identity headers (list them in
// authorization_response.allowed_upstream_headers: Envoy then overwrites
// the request's copies), x-envoy-auth-headers-to-remove (which Envoy
// applies itself) and one x-portcullis-meta-KEY header per metadata key
// (for dynamic_metadata_from_headers). Envoy's HTTP mode cannot remove
// query parameters: an API key sent in the query reaches the upstream
// unless the gRPC mode is used.
//
// nginx auth_request: point the auth location at the bare prefix with the
// original request line in headers, and forward the answer's headers:
//
//	location = /_portcullis {
//	    internal;
//	    proxy_pass              http://127.0.0.1:9000/authz;
//	    proxy_pass_request_body off;
//	    proxy_set_header        Content-Length "";
//	    proxy_set_header        Host $host;
//	    proxy_set_header        X-Original-URI $request_uri;
//	    proxy_set_header        X-Original-Method $request_method;
//	    proxy_set_header        X-Real-IP $remote_addr;
//	}
//	location /petstore/ {
//	    auth_request     /_portcullis;
//	    auth_request_set $pc_app $upstream_http_x_portcullis_application;
//	    auth_request_set $pc_uri $upstream_http_x_portcullis_upstream_uri;
//	    proxy_set_header X-Portcullis-Application $pc_app;
//	    proxy_set_header Authorization "";
//	    proxy_set_header X-Api-Key "";
//	    proxy_pass       http://upstream$pc_uri;
//	}
//
// (and so on for the other identity headers). nginx sets a header to an
// empty variable by omitting it, so a client's spoofed identity header is
// replaced or dropped. nginx passes 401 and 403 through and turns any other
// refusal status into 500; the problem body is nginx's to replace.
//
// X-Original-URI is read only at the bare prefix, never under it, where
// Envoy calls: a client cannot make authz judge another path than the one
// the proxy routes. With no decision the HTTP mode answers 503 with
// Retry-After, whatever the gRPC setting.
package extauthz
