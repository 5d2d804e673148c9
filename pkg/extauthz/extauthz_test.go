package extauthz_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/extauthz"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Keys of pkg/authz's test catalog, whose hashes it holds.
const (
	keyOK       = "legacy-key-ok"
	keyCIDR     = "legacy-key-cidr"
	keyBlocked  = "legacy-key-blocked"
	testCatalog = "../authz/testdata/catalog.yaml"
	requestID   = "7f1c1a2e-req"
)

func newAuthorizer(t testing.TB) *authz.Authorizer {
	t.Helper()
	snap, err := catalog.LoadPath(context.Background(), testCatalog)
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	a, err := authz.New(authz.Options{Now: func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(snap, nil); err != nil {
		t.Fatal(err)
	}
	return a
}

func newServer(t testing.TB, d extauthz.Decider, opts extauthz.Options) *extauthz.Server {
	t.Helper()
	if opts.HTTPPrefix == "" {
		opts.HTTPPrefix = "/authz"
	}
	s, err := extauthz.New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// check builds a CheckRequest as Envoy sends it.
func check(method, path string, headers ...string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": method, ":path": path, "x-request-id": requestID}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "192.0.2.10", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: requestID, Method: method, Path: path, Host: "api.example.com", Headers: h, Protocol: "HTTP/1.1",
		}},
	}}
}

func overwrite(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func strs(kv ...string) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := 0; i < len(kv); i += 2 {
		s.Fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return s
}

func TestCheckAllowsWithOverwrittenHeadersRemovalsAndMetadata(t *testing.T) {
	t.Parallel()
	s := newServer(t, newAuthorizer(t), extauthz.Options{})
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want *authv3.OkHttpResponse
	}{
		{
			name: "a key in a header is removed and a spoofed user header stripped",
			req:  check("GET", "/petstore/v1/pets", "x-api-key: "+keyOK, "x-portcullis-user: root", "x-portcullis-application: evil"),
			want: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					overwrite("x-portcullis-application", "mobile-app"),
					overwrite("x-portcullis-application-owner", "alice"),
					overwrite("x-portcullis-key-type", "PRODUCTION"),
				},
				HeadersToRemove: []string{"x-api-key", "x-portcullis-user"},
			},
		},
		{
			name: "a key in the query is removed from the query",
			req:  check("GET", "/petstore/v1/pets?api_key="+keyOK+"&limit=2"),
			want: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					overwrite("x-portcullis-application", "mobile-app"),
					overwrite("x-portcullis-application-owner", "alice"),
					overwrite("x-portcullis-key-type", "PRODUCTION"),
				},
				QueryParametersToRemove: []string{"api_key"},
			},
		},
	}
	wantMeta := strs(
		"api", "petstore:v1", "operation", "GET /pets", "application", "mobile-app", "key_type", "PRODUCTION",
		"subscription_counter", "mobile-app:petstore:v1", "subscription_policy", "gold",
		"application_counter", "mobile-app", "application_policy", "app-per-user",
		"api_counter", "petstore:v1", "api_policy", "petstore-api", "api_policy_group", "default",
		"request_id", requestID,
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			want := &authv3.CheckResponse{
				Status:          &rpcstatus.Status{Code: int32(codes.OK)},
				HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: tt.want},
				DynamicMetadata: wantMeta,
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CheckResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckDeniesWithStatusChallengeAndProblem(t *testing.T) {
	t.Parallel()
	s := newServer(t, newAuthorizer(t), extauthz.Options{})
	tests := []struct {
		name       string
		req        *authv3.CheckRequest
		wantCode   codes.Code
		wantStatus typev3.StatusCode
		wantHdrs   []*corev3.HeaderValueOption
		wantMeta   *structpb.Struct
	}{
		{
			name: "no credential is unauthenticated", req: check("GET", "/petstore/v1/pets"),
			wantCode: codes.Unauthenticated, wantStatus: typev3.StatusCode_Unauthorized,
			wantHdrs: []*corev3.HeaderValueOption{
				overwrite("content-type", "application/problem+json"),
				overwrite("www-authenticate", `Bearer realm="portcullis", APIKey realm="portcullis"`),
			},
			wantMeta: strs("error_code", "missing_credential", "request_id", requestID, "api", "petstore:v1", "operation", "GET /pets"),
		},
		{
			name: "a key outside its CIDR is forbidden", req: check("GET", "/petstore/v1/pets", "x-api-key: "+keyCIDR),
			wantCode: codes.PermissionDenied, wantStatus: typev3.StatusCode_Forbidden,
			wantHdrs: []*corev3.HeaderValueOption{overwrite("content-type", "application/problem+json")},
			wantMeta: strs("error_code", "key_ip_not_allowed", "request_id", requestID, "api", "petstore:v1", "operation", "GET /pets"),
		},
		{
			name: "a blocked subscription names the application", req: check("GET", "/petstore/v1/pets", "x-api-key: "+keyBlocked),
			wantCode: codes.PermissionDenied, wantStatus: typev3.StatusCode_Forbidden,
			wantHdrs: []*corev3.HeaderValueOption{overwrite("content-type", "application/problem+json")},
			wantMeta: strs("error_code", "subscription_blocked", "request_id", requestID, "api", "petstore:v1", "operation", "GET /pets", "application", "blocked-app"),
		},
		{
			name: "an unknown path is not found", req: check("GET", "/elsewhere"),
			wantCode: codes.PermissionDenied, wantStatus: typev3.StatusCode_NotFound,
			wantHdrs: []*corev3.HeaderValueOption{overwrite("content-type", "application/problem+json")},
			wantMeta: strs("error_code", "no_route", "request_id", requestID),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if c := codes.Code(got.GetStatus().GetCode()); c != tt.wantCode {
				t.Errorf("status code = %v, want %v", c, tt.wantCode)
			}
			dr := got.GetDeniedResponse()
			if dr == nil {
				t.Fatalf("no DeniedResponse in %v", got)
			}
			if dr.GetStatus().GetCode() != tt.wantStatus {
				t.Errorf("HTTP status = %v, want %v", dr.GetStatus().GetCode(), tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantHdrs, dr.GetHeaders(), protocmp.Transform()); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMeta, got.GetDynamicMetadata(), protocmp.Transform()); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			code := tt.wantMeta.GetFields()["error_code"].GetStringValue()
			if !strings.Contains(dr.GetBody(), `"code":"`+code+`"`) {
				t.Errorf("body %s does not carry code %s", dr.GetBody(), code)
			}
		})
	}
}

// deciderFunc is a Decider for answers the real one gives only with a
// provider down.
type deciderFunc func(context.Context, authz.Request) (authz.Decision, error)

func (f deciderFunc) Decide(ctx context.Context, r authz.Request) (authz.Decision, error) {
	return f(ctx, r)
}

var unavailable = deciderFunc(func(context.Context, authz.Request) (authz.Decision, error) {
	return authz.Decision{}, fmt.Errorf("decide: verify bearer token: %w: %w", authz.ErrUnavailable, identity.ErrUnavailable)
})

func TestCheckWithoutADecisionIsUnavailableOrA503(t *testing.T) {
	t.Parallel()
	t.Run("grpc-unavailable answers UNAVAILABLE so Envoy's failure mode decides", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, unavailable, extauthz.Options{Unavailable: extauthz.UnavailableGRPC})
		resp, err := s.Check(context.Background(), check("GET", "/petstore/v1/pets", "authorization: Bearer x"))
		if status.Code(err) != codes.Unavailable || resp != nil {
			t.Fatalf("Check = %v, %v; want a nil response and UNAVAILABLE", resp, err)
		}
	})
	t.Run("deny-503 answers a 503 refusal", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, unavailable, extauthz.Options{Unavailable: extauthz.UnavailableDeny503})
		resp, err := s.Check(context.Background(), check("GET", "/petstore/v1/pets", "authorization: Bearer x"))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
			t.Fatalf("HTTP status = %v, want 503", got)
		}
		if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied {
			t.Errorf("gRPC code = %v, want PERMISSION_DENIED so Envoy sends the 503", resp.GetStatus().GetCode())
		}
	})
}

func TestMalformedChecksAreRefusedNotFailedOpen(t *testing.T) {
	t.Parallel()
	s := newServer(t, newAuthorizer(t), extauthz.Options{})
	noMethod := check("", "/petstore/v1/health")
	absolute := check("GET", "http://api.example.com/petstore/v1/health")
	for name, req := range map[string]*authv3.CheckRequest{
		"a nil request":        nil,
		"no attributes":        {},
		"no http request":      {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		"no method":            noMethod,
		"an absolute-form URI": absolute,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, err := s.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != typev3.StatusCode_BadRequest {
				t.Fatalf("HTTP status = %v, want 400", got)
			}
		})
	}
}

func TestRequestFromCheck(t *testing.T) {
	t.Parallel()
	raw := check("GET", "/x")
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.Host = ""
	raw.Attributes.Request.Http.Id = ""
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":authority", RawValue: []byte("raw.example.com")},
		{Key: "X-Dup", RawValue: []byte("a")},
		{Key: "x-dup", Value: "b"},
		{Key: "x-request-id", RawValue: []byte("from-header")},
	}}
	mixed := check("GET", "/x")
	mixed.Attributes.Request.Http.Headers = map[string]string{"X-Api-Key": "k", "accept": "*/*"}
	tests := []struct {
		name string
		in   *authv3.CheckRequest
		want authz.Request
	}{
		{
			name: "the headers map, host, id and source address",
			in:   check("POST", "/a?b=c", "x-api-key: k"),
			want: authz.Request{Host: "api.example.com", Method: "POST", Path: "/a?b=c", RequestID: requestID, SourceAddr: "192.0.2.10",
				Headers: map[string]string{":authority": "api.example.com", ":method": "POST", ":path": "/a?b=c", "x-request-id": requestID, "x-api-key": "k"}},
		},
		{
			name: "raw header_map with repeated names joined, host and id from headers",
			in:   raw,
			want: authz.Request{Host: "raw.example.com", Method: "GET", Path: "/x", RequestID: "from-header", SourceAddr: "192.0.2.10",
				Headers: map[string]string{":authority": "raw.example.com", "x-dup": "a,b", "x-request-id": "from-header"}},
		},
		{
			name: "header names are lower-cased",
			in:   mixed,
			want: authz.Request{Host: "api.example.com", Method: "GET", Path: "/x", RequestID: requestID, SourceAddr: "192.0.2.10",
				Headers: map[string]string{"x-api-key": "k", "accept": "*/*"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := extauthz.RequestFromCheck(tt.in)
			if err != nil {
				t.Fatalf("RequestFromCheck: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Request (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := extauthz.RequestFromCheck(check("GET", "")); !errors.Is(err, extauthz.ErrBadPath) {
		t.Errorf("empty path: error %v, want ErrBadPath", err)
	}
}

func TestParseUnavailableMode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]extauthz.UnavailableMode{"": extauthz.UnavailableGRPC, "grpc-unavailable": extauthz.UnavailableGRPC, "deny-503": extauthz.UnavailableDeny503} {
		got, err := extauthz.ParseUnavailableMode(in)
		if err != nil || got != want {
			t.Errorf("ParseUnavailableMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := extauthz.ParseUnavailableMode("open"); err == nil {
		t.Error(`ParseUnavailableMode("open") succeeded`)
	}
}

func TestValidatePrefix(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"/authz", "/ext/authz", "/metricsx"} {
		if err := extauthz.ValidatePrefix(ok); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "authz", "/", "/authz/", "/metrics", "/debug/x", "/a b", "/a?b", "/{x}"} {
		if err := extauthz.ValidatePrefix(bad); err == nil {
			t.Errorf("ValidatePrefix(%q) succeeded", bad)
		}
	}
}

func TestHTTPMode(t *testing.T) {
	t.Parallel()
	s := newServer(t, newAuthorizer(t), extauthz.Options{HTTPClientAddrHeader: "X-Real-IP"})
	mux := http.NewServeMux()
	mux.Handle("/authz", s)
	mux.Handle("/authz/", s)
	tests := []struct {
		name       string
		method     string
		target     string
		headers    map[string]string
		wantStatus int
		wantHdrs   map[string]string // "" asserts absence
	}{
		{
			name: "Envoy's path_prefix form: the request line is the original, prefixed", method: "GET",
			target:     "/authz/petstore/v1/pets?api_key=" + keyOK + "&limit=2",
			headers:    map[string]string{"X-Portcullis-User": "root", "X-Request-Id": requestID},
			wantStatus: 200,
			wantHdrs: map[string]string{
				"x-portcullis-application": "mobile-app", "x-portcullis-key-type": "PRODUCTION", "x-portcullis-user": "",
				extauthz.HeaderHeadersToRemove:  "x-portcullis-user",
				extauthz.HeaderUpstreamURI:      "/petstore/v1/pets?limit=2",
				"x-portcullis-meta-api_counter": "petstore:v1", "x-portcullis-meta-request_id": requestID,
			},
		},
		{
			name: "nginx's form: the bare prefix with X-Original-URI and X-Original-Method", method: "GET", target: "/authz",
			headers:    map[string]string{"X-Original-URI": "/petstore/v1/pets", "X-Original-Method": "GET", "X-Api-Key": keyOK},
			wantStatus: 200,
			wantHdrs: map[string]string{
				"x-portcullis-application": "mobile-app", extauthz.HeaderHeadersToRemove: "x-api-key",
				extauthz.HeaderUpstreamURI: "/petstore/v1/pets", "x-portcullis-meta-operation": "GET /pets",
			},
		},
		{
			name: "the client address comes from the configured header, not the peer", method: "GET", target: "/authz/petstore/v1/pets",
			headers:    map[string]string{"X-Api-Key": keyCIDR, "X-Real-IP": "203.0.113.4"},
			wantStatus: 200, wantHdrs: map[string]string{"x-portcullis-application": "mobile-app"},
		},
		{
			name: "X-Original-URI is ignored under the prefix, where Envoy calls", method: "GET", target: "/authz/petstore/v1/pets",
			headers:    map[string]string{"X-Original-URI": "/petstore/v1/health"},
			wantStatus: 401, wantHdrs: map[string]string{"www-authenticate": `Bearer realm="portcullis", APIKey realm="portcullis"`},
		},
		{
			name: "a refusal carries its status, challenge and problem body", method: "GET", target: "/authz/petstore/v1/pets",
			headers:    map[string]string{"X-Api-Key": keyBlocked},
			wantStatus: 403, wantHdrs: map[string]string{"content-type": "application/problem+json", "x-portcullis-application": ""},
		},
		{
			name: "the bare prefix without X-Original-URI is malformed", method: "GET", target: "/authz",
			wantStatus: 400, wantHdrs: map[string]string{"content-type": "application/problem+json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Host = "api.example.com"
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			for k, want := range tt.wantHdrs {
				got := ""
				if vs := w.Result().Header.Values(k); len(vs) > 0 {
					got = vs[0]
				} else if vs := w.Result().Header[k]; len(vs) > 0 {
					got = vs[0]
				}
				if got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if tt.wantStatus != 200 && !strings.Contains(w.Body.String(), `"status":`) {
				t.Errorf("refusal body is not a problem: %s", w.Body)
			}
		})
	}
}

func TestHTTPModeWithoutADecisionIs503(t *testing.T) {
	t.Parallel()
	s := newServer(t, unavailable, extauthz.Options{})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/authz/petstore/v1/pets", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}
