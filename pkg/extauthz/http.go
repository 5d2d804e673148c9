package extauthz

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/authz"
)

// Headers of the HTTP mode's answers.
const (
	// HeaderHeadersToRemove lists, comma-separated, the request headers
	// the proxy must remove before going upstream. Envoy's HTTP ext_authz
	// client reads this very header and removes them; nginx cannot remove
	// headers by a list, so its config clears the credential headers
	// itself (see the package doc).
	HeaderHeadersToRemove = "x-envoy-auth-headers-to-remove"
	// HeaderUpstreamURI is the original path and query with the consumed
	// API key's query parameters taken out, for a proxy that forwards it
	// (nginx: proxy_pass http://upstream$portcullis_uri).
	HeaderUpstreamURI = "x-portcullis-upstream-uri"
	// HeaderMetadataPrefix starts one answer header per dynamic metadata
	// key, such as x-portcullis-meta-api_counter (Envoy:
	// dynamic_metadata_from_headers; nginx: auth_request_set).
	HeaderMetadataPrefix = "x-portcullis-meta-"
	// HeaderOriginalURI and HeaderOriginalMethod carry the original request
	// line to a request at the bare prefix (nginx auth_request).
	HeaderOriginalURI    = "X-Original-URI"
	HeaderOriginalMethod = "X-Original-Method"
)

var (
	errNoOriginalURI = errors.New("HTTP-mode check at the bare prefix without " + HeaderOriginalURI)
	errNotUnderPfx   = errors.New("HTTP-mode check outside the prefix")
)

// ServeHTTP answers a check in HTTP mode, mounted at Options.HTTPPrefix
// (both the prefix and the prefix with a trailing slash). Two callers are
// told apart by the path:
//
//   - Envoy's HTTP ext_authz with path_prefix set to the prefix sends the
//     original method and PREFIX + original path and query: the request
//     line is the original one, prefixed.
//   - nginx auth_request (and Traefik/Caddy-style forward auth) calls the
//     bare prefix and names the original request in X-Original-URI and
//     X-Original-Method.
//
// X-Original-URI is read only at the bare prefix, which Envoy never
// calls (it always appends a path starting with "/"): a client whose
// headers Envoy forwards cannot make authz judge another path than the
// one Envoy routes.
//
// The answer is 200 with the identity headers, the removal instructions
// and the metadata as headers; or the refusal's status, headers and
// problem+json body; or, with no decision, a 503 with Retry-After (HTTP
// mode has no error the proxy would treat as "fail open").
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := s.requestFromHTTP(r)
	if err != nil {
		s.m.checks(transportHTTP, outcomeMalformed).Inc()
		s.log.WarnContext(r.Context(), "malformed HTTP-mode check", slog.String("error", err.Error()))
		writeDeny(w, &authz.Deny{Reason: authz.ReasonMalformedRequest, RequestID: r.Header.Get("x-request-id")})
		return
	}
	d, err := s.d.Decide(r.Context(), req)
	switch {
	case err != nil:
		s.m.checks(transportHTTP, outcomeUnavailable).Inc()
		s.log.WarnContext(r.Context(), "no authorization decision", slog.String("error", err.Error()),
			slog.String("request_id", req.RequestID))
		w.Header().Set("Retry-After", "1")
		writeDeny(w, &authz.Deny{Reason: authz.ReasonIdPUnavailable, RequestID: req.RequestID})
	case d.Deny != nil:
		s.m.checks(transportHTTP, outcomeDenied).Inc()
		writeDeny(w, d.Deny)
	default:
		s.m.checks(transportHTTP, outcomeOK).Inc()
		writeAllow(w, d.Allow, req.Path)
	}
}

func (s *Server) requestFromHTTP(r *http.Request) (authz.Request, error) {
	req := authz.Request{Host: r.Host, Method: r.Method, Headers: make(map[string]string, len(r.Header))}
	for name, values := range r.Header {
		req.Headers[lowerASCII(name)] = strings.Join(values, ",")
	}
	escaped := r.URL.EscapedPath()
	switch {
	case escaped == s.prefix || escaped == s.prefix+"/":
		req.Path = r.Header.Get(HeaderOriginalURI)
		if req.Path == "" {
			return req, errNoOriginalURI
		}
		if m := r.Header.Get(HeaderOriginalMethod); m != "" {
			req.Method = m
		}
	case strings.HasPrefix(escaped, s.prefix+"/"):
		req.Path = escaped[len(s.prefix):]
		if r.URL.RawQuery != "" {
			req.Path += "?" + r.URL.RawQuery
		}
	default:
		return req, errNotUnderPfx
	}
	if req.Path[0] != '/' {
		return req, ErrBadPath
	}
	req.RequestID = req.Headers["x-request-id"]
	if s.addrHeader != "" {
		req.SourceAddr = strings.TrimSpace(req.Headers[s.addrHeader])
	}
	return req, nil
}

func writeAllow(w http.ResponseWriter, a *authz.Allow, path string) {
	h := w.Header()
	for _, sh := range a.SetHeaders {
		h.Set(sh.Name, sh.Value)
	}
	if len(a.RemoveHeaders) > 0 {
		h.Set(HeaderHeadersToRemove, strings.Join(a.RemoveHeaders, ","))
	}
	h.Set(HeaderUpstreamURI, withoutQueryParams(path, a.RemoveQueryParams))
	a.Metadata.Each(func(k, v string) {
		// Set through the map so the underscore in the name survives.
		h[HeaderMetadataPrefix+k] = []string{v}
	})
	w.WriteHeader(http.StatusOK)
}

func writeDeny(w http.ResponseWriter, d *authz.Deny) {
	resp := d.Response()
	h := w.Header()
	for _, rh := range resp.Headers {
		h.Set(rh.Name, rh.Value)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// withoutQueryParams removes every occurrence of the named parameters from
// path's query, keeping the other pairs as written.
func withoutQueryParams(path string, names []string) string {
	if len(names) == 0 {
		return path
	}
	p, q, ok := strings.Cut(path, "?")
	if !ok {
		return path
	}
	var kept []string
	for _, pair := range strings.Split(q, "&") {
		k, _, _ := strings.Cut(pair, "=")
		drop := false
		for _, n := range names {
			if queryKeyIs(k, n) {
				drop = true
				break
			}
		}
		if !drop {
			kept = append(kept, pair)
		}
	}
	if len(kept) == 0 {
		return p
	}
	return p + "?" + strings.Join(kept, "&")
}

// queryKeyIs compares a raw query key with a decoded name, as authz found
// the key.
func queryKeyIs(raw, name string) bool {
	if !strings.ContainsAny(raw, "%+") {
		return raw == name
	}
	k, err := url.QueryUnescape(raw)
	return err == nil && k == name
}
