package extauthz

import (
	"errors"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/portcullis-dev/portcullis/pkg/authz"
)

// Malformed check requests: Envoy always sends these fields, so their
// absence means something other than Envoy is calling, or a proxy
// between mangled the call. Either way the request is refused (400), not
// failed open.
var (
	ErrNoHTTPRequest = errors.New("check request has no attributes.request.http")
	ErrNoMethod      = errors.New("check request has no HTTP method")
	ErrBadPath       = errors.New("check request path is not an origin-form path")
)

// RequestFromCheck reads what authz needs from an ext_authz CheckRequest:
// attributes.request.http's host, method, path (with its query, as Envoy
// normalised it), headers and id, and attributes.source.address. Headers
// come from the headers map, or from header_map when Envoy is configured
// with encode_raw_headers; names are lower-cased and repeated headers
// joined with ",", as Envoy itself joins them in the map.
func RequestFromCheck(cr *authv3.CheckRequest) (authz.Request, error) {
	h := cr.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return authz.Request{}, ErrNoHTTPRequest
	}
	if h.GetMethod() == "" {
		return authz.Request{}, ErrNoMethod
	}
	if p := h.GetPath(); p == "" || p[0] != '/' {
		// Not echoed: a path can carry an API key in its query.
		return authz.Request{}, ErrBadPath
	}
	req := authz.Request{
		Host:      h.GetHost(),
		Method:    h.GetMethod(),
		Path:      h.GetPath(),
		RequestID: h.GetId(),
		Headers:   lowerKeys(h.GetHeaders()),
	}
	if hm := h.GetHeaderMap(); len(req.Headers) == 0 && hm != nil {
		req.Headers = make(map[string]string, len(hm.GetHeaders()))
		for _, hv := range hm.GetHeaders() {
			v := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			addHeader(req.Headers, hv.GetKey(), v)
		}
	}
	if req.Headers == nil {
		req.Headers = map[string]string{}
	}
	if req.Host == "" {
		req.Host = req.Headers[":authority"]
	}
	if req.RequestID == "" {
		req.RequestID = req.Headers["x-request-id"]
	}
	// The port is not needed: only the address is checked against CIDRs.
	req.SourceAddr = cr.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	return req, nil
}

// lowerKeys returns m if its keys are already lower case, as Envoy sends
// them, and a lower-cased copy otherwise (joining names that differ only
// in case).
func lowerKeys(m map[string]string) map[string]string {
	for k := range m {
		if hasUpper(k) {
			out := make(map[string]string, len(m))
			for k, v := range m {
				addHeader(out, k, v)
			}
			return out
		}
	}
	return m
}

func addHeader(m map[string]string, name, value string) {
	name = lowerASCII(name)
	if prev, ok := m[name]; ok {
		value = prev + "," + value
	}
	m[name] = value
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func lowerASCII(s string) string {
	if !hasUpper(s) {
		return s
	}
	return strings.ToLower(s)
}
