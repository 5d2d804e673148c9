package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/portcullis-dev/portcullis/pkg/authz"
)

// Decider makes the decision; *authz.Authorizer in production. Its error
// contract is authz.Decide's: a refusal is a Decision, and an error means
// no decision could be reached (it wraps authz.ErrUnavailable).
type Decider interface {
	Decide(ctx context.Context, req authz.Request) (authz.Decision, error)
}

// UnavailableMode is how a check is answered when no decision can be
// reached (the identity provider is down and nothing is cached).
type UnavailableMode uint8

const (
	// UnavailableGRPC answers gRPC UNAVAILABLE, so that Envoy's
	// failure_mode_allow (Istio's failOpen) and status_on_error decide.
	UnavailableGRPC UnavailableMode = iota
	// UnavailableDeny503 answers a 503 refusal with a problem+json body,
	// whatever Envoy's failure mode says.
	UnavailableDeny503
)

// ParseUnavailableMode reads the config values grpc-unavailable and
// deny-503.
func ParseUnavailableMode(s string) (UnavailableMode, error) {
	switch s {
	case "grpc-unavailable", "":
		return UnavailableGRPC, nil
	case "deny-503":
		return UnavailableDeny503, nil
	}
	return 0, fmt.Errorf("unknown idpUnavailable mode %q (want grpc-unavailable or deny-503)", s)
}

func (m UnavailableMode) String() string {
	if m == UnavailableDeny503 {
		return "deny-503"
	}
	return "grpc-unavailable"
}

// Options configure a Server.
type Options struct {
	// Unavailable is how a check with no decision is answered over gRPC.
	// HTTP mode always answers 503: its protocol has no error to return.
	Unavailable UnavailableMode
	// HTTPPrefix is where the HTTP mode is mounted, such as "/authz":
	// Envoy's path_prefix, and nginx's auth_request target. It must start
	// with "/" and not end with one.
	HTTPPrefix string
	// HTTPClientAddrHeader names the request header that carries the
	// client's address in HTTP mode (nginx: proxy_set_header X-Real-IP
	// $remote_addr; Envoy: headers_to_add with
	// %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%). The proxy must overwrite
	// it, or a client could choose its own address. Empty: the address is
	// unknown in HTTP mode, which refuses every key restricted to CIDRs.
	// The HTTP peer is never used: it is the proxy, not the client.
	HTTPClientAddrHeader string
	// Logger receives malformed checks and unavailable decisions; never a
	// credential. Nil discards.
	Logger *slog.Logger
	// Registerer receives the check metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Server answers Envoy's ext_authz over gRPC (Check) and over HTTP
// (ServeHTTP) from one Decider.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	d          Decider
	mode       UnavailableMode
	prefix     string
	addrHeader string
	log        *slog.Logger
	m          *metrics
}

var _ authv3.AuthorizationServer = (*Server)(nil)
var _ http.Handler = (*Server)(nil)

// New returns a Server answering from d.
func New(d Decider, opts Options) (*Server, error) {
	if opts.HTTPPrefix != "" {
		if err := ValidatePrefix(opts.HTTPPrefix); err != nil {
			return nil, fmt.Errorf("new ext_authz server: %w", err)
		}
	}
	s := &Server{d: d, mode: opts.Unavailable, prefix: opts.HTTPPrefix, addrHeader: lowerASCII(opts.HTTPClientAddrHeader), log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("new ext_authz server: %w", err)
	}
	return s, nil
}

// ValidatePrefix checks an HTTP-mode prefix: absolute, without a trailing
// slash, and clear of the admin port's own paths.
func ValidatePrefix(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return fmt.Errorf("http prefix %q must start with /", p)
	case p == "/":
		return errors.New(`http prefix "/" would take the whole admin port; use a path such as /authz`)
	case p[len(p)-1] == '/':
		return fmt.Errorf("http prefix %q must not end with /", p)
	}
	for _, taken := range []string{"/metrics", "/healthz", "/readyz", "/debug"} {
		if p == taken || len(p) > len(taken) && p[:len(taken)+1] == taken+"/" {
			return fmt.Errorf("http prefix %q collides with the admin port's %s", p, taken)
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%' || c == '{' || c == '}' {
			return fmt.Errorf("http prefix %q holds a character a plain path cannot", p)
		}
	}
	return nil
}

// Check answers one ext_authz v3 check.
func (s *Server) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	req, err := RequestFromCheck(cr)
	if err != nil {
		s.m.checks(transportGRPC, outcomeMalformed).Inc()
		s.log.WarnContext(ctx, "malformed ext_authz check request", slog.String("error", err.Error()))
		return denied(&authz.Deny{Reason: authz.ReasonMalformedRequest}), nil
	}
	d, err := s.d.Decide(ctx, req)
	if err != nil {
		s.m.checks(transportGRPC, outcomeUnavailable).Inc()
		s.log.WarnContext(ctx, "no authorization decision", slog.String("error", err.Error()),
			slog.String("request_id", req.RequestID), slog.String("answer", s.mode.String()))
		if s.mode == UnavailableDeny503 {
			return denied(&authz.Deny{Reason: authz.ReasonIdPUnavailable, RequestID: req.RequestID}), nil
		}
		return nil, status.Error(codes.Unavailable, "authorization unavailable: identity provider unreachable")
	}
	if d.Deny != nil {
		s.m.checks(transportGRPC, outcomeDenied).Inc()
		return denied(d.Deny), nil
	}
	s.m.checks(transportGRPC, outcomeOK).Inc()
	return allowed(d.Allow), nil
}

// allowed renders an Allow: identity headers overwrite whatever the client
// sent (Envoy's default append action would keep a spoofed copy beside
// ours), then Envoy removes the listed headers and query parameters.
func allowed(a *authz.Allow) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{
		Headers:                 headerOptions(a.SetHeaders),
		HeadersToRemove:         a.RemoveHeaders,
		QueryParametersToRemove: a.RemoveQueryParams,
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: metadataStruct(&a.Metadata),
	}
}

// denied renders a Deny. The gRPC code is UNAUTHENTICATED for a 401 and
// PERMISSION_DENIED otherwise: Envoy counts both as denials and sends the
// DeniedHttpResponse to the client.
func denied(d *authz.Deny) *authv3.CheckResponse {
	resp := d.Response()
	code := codes.PermissionDenied
	if resp.Status == http.StatusUnauthorized {
		code = codes.Unauthenticated
	}
	md := d.Metadata()
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: d.Reason.String()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(resp.Status)},
			Headers: headerOptions(resp.Headers),
			Body:    string(resp.Body),
		}},
		DynamicMetadata: metadataStruct(&md),
	}
}

func headerOptions(hs []authz.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		out[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return out
}

// metadataStruct is the dynamic metadata as a Struct of string values,
// the only kind Envoy's rate-limit metadata actions match.
func metadataStruct(m *authz.Metadata) *structpb.Struct {
	fields := make(map[string]*structpb.Value, m.Len())
	m.Each(func(k, v string) { fields[k] = structpb.NewStringValue(v) })
	return &structpb.Struct{Fields: fields}
}
