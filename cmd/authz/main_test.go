package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/internal/poll"
	"github.com/portcullis-dev/portcullis/pkg/apikey"
)

// syncBuffer collects the binary's logs for assertions while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is an authz started through the real wiring on ":0" ports.
type running struct {
	app    *app
	logs   *syncBuffer
	stdout *syncBuffer
	client authv3.AuthorizationClient
	stop   func(t *testing.T) // cancels serve and waits for it; idempotent
}

func env(extra map[string]string) func(string) (string, bool) {
	m := map[string]string{"PORTCULLIS_DRAIN_DELAY": "0s", "PORTCULLIS_SHUTDOWN_GRACE": "2s", "PORTCULLIS_LOG_LEVEL": "debug"}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func start(t *testing.T, lookup func(string) (string, bool), args ...string) *running {
	t.Helper()
	logs, stdout := &syncBuffer{}, &syncBuffer{}
	args = append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, args, lookup, stdout, logs)
	if err != nil {
		cancel()
		t.Fatalf("newApp: %v\nlogs:\n%s", err, logs)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx) }()
	conn, err := grpc.NewClient(a.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			conn.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("serve did not return after cancel")
			}
		})
	}
	t.Cleanup(func() {
		stop(t)
		if t.Failed() {
			t.Logf("authz logs:\n%s", logs)
		}
	})
	poll.Until(t, 5*time.Second, "health SERVING", func() bool {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{
			Service: authv3.Authorization_ServiceDesc.ServiceName})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	return &running{app: a, logs: logs, stdout: stdout, client: authv3.NewAuthorizationClient(conn), stop: stop}
}

// checkReq builds a CheckRequest as Envoy sends it for a request to the
// test API.
func checkReq(method, path string, headers ...string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.test", ":method": method, ":path": path, "x-request-id": "e2e-1"}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "192.0.2.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "e2e-1", Method: method, Path: path, Host: "api.test", Headers: h,
		}},
	}}
}

// testKey is the API key the e2e catalogs hold by hash.
const testKey = "e2e-legacy-key"

// writeCatalog writes the e2e catalog for an identity provider at issuer
// into dir; subState is the subscription's state.
func writeCatalog(t *testing.T, dir, issuer, introspectURL, secretFile, subState string) {
	t.Helper()
	hash := apikey.Hash(testKey)
	doc := fmt.Sprintf(`apiVersion: portcullis.dev/v1alpha1
kind: IdentityProvider
metadata: {name: test-idp}
spec:
  issuer: %[1]s
  jwt:
    audiences: [%[2]s, %[3]s]
    algorithms: [RS256, ES256]
    clockSkew: 5s
    requireType: at+jwt
  introspection:
    endpoint: %[4]s
    clientId: %[5]s
    clientSecretFile: %[6]s
  cache:
    maxTTL: 1s
    negativeTTL: 1s
    staleIfError: 1s
---
apiVersion: portcullis.dev/v1alpha1
kind: API
metadata: {name: petstore}
spec:
  version: v1
  basePath: /petstore/v1
  identityProviders: [test-idp]
  security: [oauth2, apiKey]
  apiKey: {headers: [x-api-key], queryParams: [api_key]}
  operations:
    - {method: GET, path: /pets, scopes: [pets:read]}
    - {method: POST, path: /pets, scopes: [pets:write]}
    - {method: GET, path: /health, security: [none]}
---
apiVersion: portcullis.dev/v1alpha1
kind: Application
metadata: {name: e2e-app}
spec:
  owner: team-e2e
  oauthClients:
    - {clientId: %[7]s, keyType: PRODUCTION}
    - {clientId: %[8]s, keyType: PRODUCTION}
    - {clientId: %[9]s, keyType: SANDBOX}
  apiKeys:
    - {id: e2e-key, sha256: %[10]x, keyType: PRODUCTION}
---
apiVersion: portcullis.dev/v1alpha1
kind: Subscription
metadata: {name: e2e-app.petstore}
spec: {application: e2e-app, api: petstore, policy: gold, state: %[11]s}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits: [{requests: 100, per: 1m}]
`, issuer, idptest.Audience(idptest.ClientRS256), idptest.Audience(idptest.ClientES256), introspectURL,
		idptest.ClientPortcullis, secretFile, idptest.ClientRS256, idptest.ClientES256, idptest.ClientOpaque, hash, subState)
	// Write and rename, as a ConfigMap update swaps files atomically.
	tmp := filepath.Join(dir, ".catalog.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "catalog.yaml")); err != nil {
		t.Fatal(err)
	}
}

// e2e is one authz wired to one real identity provider.
type e2e struct {
	idp    *idptest.Provider
	authz  *running
	dir    string
	secret string
}

func startE2E(t *testing.T, extraEnv map[string]string) *e2e {
	t.Helper()
	p := idptest.Start(t)
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "introspection-secret")
	if err := os.WriteFile(secret, []byte(idptest.Secret(idptest.ClientPortcullis)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeCatalog(t, dir, p.Issuer(), p.IntrospectionURL(), secret, "ACTIVE")
	r := start(t, env(extraEnv), "-catalog", dir)
	return &e2e{idp: p, authz: r, dir: dir, secret: secret}
}

func (e *e2e) token(t *testing.T, client, scope string) string {
	t.Helper()
	tok, err := e.idp.Token(context.Background(), client, scope)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *e2e) check(t *testing.T, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := e.authz.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func bearer(tok string) string { return "authorization: Bearer " + tok }

// wantAllowed fails unless resp is OK for application e2e-app, and returns
// its metadata as strings.
func wantAllowed(t *testing.T, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("denied: status %v, HTTP %v, body %s", resp.GetStatus(), resp.GetDeniedResponse().GetStatus().GetCode(),
			resp.GetDeniedResponse().GetBody())
	}
	md := map[string]string{}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		md[k] = v.GetStringValue()
	}
	if md["application"] != "e2e-app" {
		t.Errorf("application metadata = %q, want e2e-app", md["application"])
	}
	return md
}

func wantDenied(t *testing.T, resp *authv3.CheckResponse, status typev3.StatusCode, code string) {
	t.Helper()
	dr := resp.GetDeniedResponse()
	if dr == nil {
		t.Fatalf("allowed, want a %v refusal (%s)", status, code)
	}
	if dr.GetStatus().GetCode() != status || !strings.Contains(dr.GetBody(), `"code":"`+code+`"`) {
		t.Fatalf("refusal %v %s, want %v with code %s", dr.GetStatus().GetCode(), dr.GetBody(), status, code)
	}
}

func TestEndToEndWithARealIdentityProvider(t *testing.T) {
	e := startE2E(t, nil)
	read := idptest.ScopeRead

	t.Run("a JWT signed RS256 is verified and mapped to its application", func(t *testing.T) {
		md := wantAllowed(t, e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(e.token(t, idptest.ClientRS256, read)))))
		for k, want := range map[string]string{
			"api": "petstore:v1", "operation": "GET /pets", "key_type": "PRODUCTION",
			"subscription_counter": "e2e-app:petstore:v1", "subscription_policy": "gold", "request_id": "e2e-1",
		} {
			if md[k] != want {
				t.Errorf("metadata %s = %q, want %q", k, md[k], want)
			}
		}
	})
	t.Run("a JWT signed ES256 is verified", func(t *testing.T) {
		wantAllowed(t, e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(e.token(t, idptest.ClientES256, read)))))
	})
	t.Run("an opaque token is introspected and its client's key type applies", func(t *testing.T) {
		md := wantAllowed(t, e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(e.token(t, idptest.ClientOpaque, read)))))
		if md["key_type"] != "SANDBOX" {
			t.Errorf("key_type = %q, want SANDBOX", md["key_type"])
		}
	})
	t.Run("a token without the operation's scope is refused with 403", func(t *testing.T) {
		wantDenied(t, e.check(t, checkReq("POST", "/petstore/v1/pets", bearer(e.token(t, idptest.ClientRS256, read)))),
			typev3.StatusCode_Forbidden, "insufficient_scope")
	})
	t.Run("a tampered JWT is refused with 401", func(t *testing.T) {
		tok := e.token(t, idptest.ClientRS256, read)
		tampered := tok[:len(tok)-4] + "AAAA"
		wantDenied(t, e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(tampered))), typev3.StatusCode_Unauthorized, "invalid_credential")
	})
	t.Run("the consumed credential and spoofed identity headers are removed", func(t *testing.T) {
		resp := e.check(t, checkReq("GET", "/petstore/v1/pets?api_key="+testKey, "x-portcullis-user: root"))
		wantAllowed(t, resp)
		ok := resp.GetOkResponse()
		if got := ok.GetQueryParametersToRemove(); len(got) != 1 || got[0] != "api_key" {
			t.Errorf("query_parameters_to_remove = %v, want [api_key]", got)
		}
		if got := ok.GetHeadersToRemove(); len(got) != 1 || got[0] != "x-portcullis-user" {
			t.Errorf("headers_to_remove = %v, want [x-portcullis-user]", got)
		}
		for _, h := range ok.GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %s appends; identity headers must overwrite", h.GetHeader().GetKey())
			}
		}
	})
	t.Run("a revoked opaque token is refused once its cache entry ends", func(t *testing.T) {
		tok := e.token(t, idptest.ClientOpaque, read)
		wantAllowed(t, e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(tok))))
		if err := e.idp.Revoke(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		// maxTTL is 1s: the cached answer may serve that long, no longer.
		poll.Until(t, 10*time.Second, "the revoked token to be refused", func() bool {
			return e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(tok))).GetDeniedResponse().GetStatus().GetCode() == typev3.StatusCode_Unauthorized
		})
	})
	t.Run("a catalog change applies without a restart", func(t *testing.T) {
		writeCatalog(t, e.dir, e.idp.Issuer(), e.idp.IntrospectionURL(), e.secret, "BLOCKED")
		poll.Until(t, 10*time.Second, "the blocked subscription to apply", func() bool {
			dr := e.check(t, checkReq("GET", "/petstore/v1/pets", "x-api-key: "+testKey)).GetDeniedResponse()
			return dr != nil && strings.Contains(dr.GetBody(), "subscription_blocked")
		})
		writeCatalog(t, e.dir, e.idp.Issuer(), e.idp.IntrospectionURL(), e.secret, "ACTIVE")
		poll.Until(t, 10*time.Second, "the active subscription to apply", func() bool {
			return e.check(t, checkReq("GET", "/petstore/v1/pets", "x-api-key: "+testKey)).GetOkResponse() != nil
		})
	})
	t.Run("HTTP mode on the admin port decides the same", func(t *testing.T) {
		req, err := http.NewRequest("GET", "http://"+e.authz.app.srv.HTTPAddr()+"/authz/petstore/v1/pets", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.token(t, idptest.ClientES256, read))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Portcullis-Application") != "e2e-app" ||
			resp.Header.Get("X-Envoy-Auth-Headers-To-Remove") != "authorization" {
			t.Fatalf("HTTP mode: %d %v %s", resp.StatusCode, resp.Header, body)
		}
	})
	t.Run("a token signed with a rotated-in key verifies without a restart", func(t *testing.T) {
		before := e.idp.Counts(t).JWKS
		if kids := e.idp.RotateKeys(t); len(kids) == 0 {
			t.Fatal("rotation reported no new key")
		}
		tok := e.token(t, idptest.ClientRS256, read)
		// An unknown kid refetches the keys at most once per cooldown
		// (10s), so the new key is accepted within 15s of its first use.
		poll.Until(t, 15*time.Second, "the token with the new kid to verify", func() bool {
			return e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(tok))).GetOkResponse() != nil
		})
		if fetched := e.idp.Counts(t).JWKS - before; fetched < 1 || fetched > 3 {
			t.Errorf("the rotation caused %d key fetches, want 1 to 3", fetched)
		}
	})
	t.Run("with the provider down and nothing cached the answer is UNAVAILABLE", func(t *testing.T) {
		tok := e.token(t, idptest.ClientOpaque, read)
		e.idp.Stop()
		_, err := e.authz.client.Check(context.Background(), checkReq("GET", "/petstore/v1/pets", bearer(tok)))
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("Check error = %v, want UNAVAILABLE so Envoy's failure mode decides", err)
		}
		// An API key needs no provider.
		wantAllowed(t, e.check(t, checkReq("GET", "/petstore/v1/pets", "x-api-key: "+testKey)))
		if !strings.Contains(e.authz.logs.String(), "no authorization decision") {
			t.Error("the unavailable decision was not logged")
		}
		if strings.Contains(e.authz.logs.String(), tok) {
			t.Error("a token reached the logs")
		}
	})
}

func TestProviderDownCanBeA503(t *testing.T) {
	e := startE2E(t, map[string]string{"PORTCULLIS_AUTHZ_IDP_UNAVAILABLE": "deny-503"})
	tok := e.token(t, idptest.ClientOpaque, idptest.ScopeRead)
	e.idp.Stop()
	wantDenied(t, e.check(t, checkReq("GET", "/petstore/v1/pets", bearer(tok))), typev3.StatusCode_ServiceUnavailable, "idp_unavailable")
}

func TestStartsWithoutConfigOrCatalog(t *testing.T) {
	r := start(t, env(nil))
	resp, err := r.client.Check(context.Background(), checkReq("GET", "/anything"))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_NotFound {
		t.Fatalf("with an empty catalog a request is %v, want 404", resp)
	}
	if r.app.cfg.Server.GRPCAddr != "127.0.0.1:0" || defaults().Server.GRPCAddr != ":9001" || defaults().Server.HTTPAddr != ":9000" {
		t.Errorf("default addresses changed: %+v", defaults().Server)
	}
}

func TestBadConfigIsRefusedAtStart(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"an IdP timeout as long as Envoy's", map[string]string{"PORTCULLIS_IDP_TIMEOUT": "200ms"}, nil, "must be shorter than envoyTimeout"},
		{"an unknown unavailable mode", map[string]string{"PORTCULLIS_AUTHZ_IDP_UNAVAILABLE": "open"}, nil, "idpUnavailable"},
		{"negative trusted hops", map[string]string{"PORTCULLIS_AUTHZ_TRUSTED_HOPS": "-1"}, nil, "trustedHops"},
		{"a prefix on the metrics path", map[string]string{"PORTCULLIS_HTTP_PREFIX": "/metrics"}, nil, "prefix"},
		{"a duplicate identity header", map[string]string{"PORTCULLIS_AUTHZ_HEADER_USER": "x-portcullis-application"}, nil, "identityHeaders"},
		{"an unknown analytics sink", nil, []string{"-analytics", "bogus:x"}, `analytics sink "bogus:x": unknown kind "bogus"`},
		{"an analytics file not given", map[string]string{"PORTCULLIS_ANALYTICS": "jsonl:"}, nil, "analytics sink"},
		{"a catalog that does not exist", nil, []string{"-catalog", "/nonexistent/catalog"}, "catalog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}, tt.args...)
			_, err := newApp(context.Background(), args, env(tt.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newApp error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
