package authz_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// The test catalog's keys (testdata/catalog.yaml holds their hashes).
const (
	keyPCL              = "pcl_live_t0RcwNyKoLQQ4RVyEmNRDqLVf81sQ9BnooDOijb8OIm4CZQur"
	keyLegacy           = "legacy-key-ok"
	keyExpired          = "legacy-key-expired"
	keyCIDR             = "legacy-key-cidr"
	keyReferrer         = "legacy-key-referrer"
	keySandbox          = "legacy-key-sandbox"
	keyBlocked          = "legacy-key-blocked"
	keyHold             = "legacy-key-hold"
	keyProdBlocked      = "legacy-key-prodblocked"
	keyProdBlockedSbx   = "legacy-key-prodblocked-sandbox"
	keyUnsubscribed     = "legacy-key-unsubscribed"
	keyNoPolicy         = "legacy-key-nopolicy"
	jwtIssuer           = "https://jwt.idp.test"
	otherIssuer         = "https://other.idp.test"
	opaqueGood          = "opaque-token-good"
	opaqueDown          = "opaque-token-while-idp-down"
	testRequestID       = "req-0001"
	defaultSourceAddr   = "192.0.2.10"
	partnerSourceAddr   = "198.51.100.7:40000"
	allowedCIDRClientIP = "203.0.113.9"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeJWT is a JWT-shaped string whose payload carries iss; the fake
// verifier recognises it by its whole text, as a cache keyed by token would.
func fakeJWT(iss, name string) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(map[string]string{"iss": iss, "jti": name})
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + enc.EncodeToString(payload) + ".c2ln"
}

// verifierFunc adapts a function to authz.TokenVerifier.
type verifierFunc func(ctx context.Context, raw string) (*identity.Token, error)

func (f verifierFunc) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	return f(ctx, raw)
}

// tokenTable is a fake verifier: known tokens verify, others are invalid,
// and down makes every call fail as an unreachable provider would.
func tokenTable(tokens map[string]*identity.Token, down map[string]bool) authz.TokenVerifier {
	return verifierFunc(func(_ context.Context, raw string) (*identity.Token, error) {
		if down[raw] {
			return nil, fmt.Errorf("introspect: dial: connection refused: %w", identity.ErrUnavailable)
		}
		if t, ok := tokens[raw]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("token refused: %w", identity.ErrInvalid)
	})
}

var (
	jwtRead = fakeJWT(jwtIssuer, "read")
	jwtNone = fakeJWT(jwtIssuer, "no-scopes")
	// jwtUser names an end user and a claim the api policy's group reads.
	jwtUser    = fakeJWT(jwtIssuer, "user")
	jwtSandbox = fakeJWT(jwtIssuer, "sandbox")
	jwtGhost   = fakeJWT(jwtIssuer, "ghost-client")
	jwtNoCID   = fakeJWT(jwtIssuer, "no-client-id")
	jwtBad     = fakeJWT(jwtIssuer, "bad-signature")
	jwtOther   = fakeJWT(otherIssuer, "other")
	jwtLonely  = fakeJWT(jwtIssuer, "lonely")
)

func testVerifiers() authz.Verifiers {
	jwts := map[string]*identity.Token{
		jwtRead:    {Issuer: jwtIssuer, Subject: "mobile-client", ClientID: "mobile-client", Scopes: []string{"pets:read"}},
		jwtNone:    {Issuer: jwtIssuer, Subject: "mobile-client", ClientID: "mobile-client"},
		jwtUser:    {Issuer: jwtIssuer, Subject: "alice@example.com", ClientID: "mobile-client", Scopes: []string{"pets:read", "pets:write"}, Claims: map[string]any{"tier": "gold"}},
		jwtSandbox: {Issuer: jwtIssuer, Subject: "mobile-client-sandbox", ClientID: "mobile-client-sandbox", Scopes: []string{"pets:read"}},
		jwtGhost:   {Issuer: jwtIssuer, Subject: "ghost", ClientID: "ghost"},
		jwtNoCID:   {Issuer: jwtIssuer, Subject: "someone"},
		jwtLonely:  {Issuer: jwtIssuer, Subject: "lonely-client", ClientID: "lonely-client"},
		jwtOther:   {Issuer: otherIssuer, Subject: "x", ClientID: "mobile-client"},
	}
	opaque := map[string]*identity.Token{
		opaqueGood: {Issuer: "https://opaque.idp.test", Subject: "bob", ClientID: "mobile-client", Scopes: []string{"pets:read"}},
	}
	return authz.Verifiers{
		"jwt-idp":    {JWT: tokenTable(jwts, nil)},
		"opaque-idp": {Introspection: tokenTable(opaque, map[string]bool{opaqueDown: true})},
		"other-idp":  {JWT: tokenTable(jwts, nil)},
	}
}

func loadCatalog(t testing.TB) *catalog.Snapshot {
	t.Helper()
	snap, err := catalog.LoadPath(context.Background(), "testdata/catalog.yaml")
	if err != nil {
		t.Fatalf("load test catalog: %v", err)
	}
	return snap
}

func newAuthorizer(t testing.TB, opts authz.Options) *authz.Authorizer {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	a, err := authz.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := a.Update(loadCatalog(t), testVerifiers()); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return a
}

// req builds a request to the petstore API with the given headers
// ("name: value" pairs).
func req(method, path string, headers ...string) authz.Request {
	r := authz.Request{
		Host: "api.example.com", Method: method, Path: path,
		Headers:    map[string]string{"x-request-id": testRequestID},
		SourceAddr: defaultSourceAddr,
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		r.Headers[name] = value
	}
	return r
}

func withSource(r authz.Request, addr string) authz.Request { r.SourceAddr = addr; return r }
func withHost(r authz.Request, host string) authz.Request   { r.Host = host; return r }

func TestDecideDenies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       authz.Options
		req        authz.Request
		want       authz.Reason
		wantStatus int
		// wantChallenge is the exact WWW-Authenticate; "" asserts none.
		wantChallenge string
	}{
		{
			name: "a path with a dot segment is refused before routing", req: req("GET", "/petstore/v1/x/../pets"),
			want: authz.ReasonBadPath, wantStatus: 400,
		},
		{
			name: "an encoded slash is refused even where unmanaged paths are allowed", opts: authz.Options{AllowUnmanaged: true},
			req: req("GET", "/petstore/v1/pets%2F1"), want: authz.ReasonBadPath, wantStatus: 400,
		},
		{
			name: "a path no API serves is not found", req: req("GET", "/nowhere"),
			want: authz.ReasonNoRoute, wantStatus: 404,
		},
		{
			name: "a method the API does not define is not found", req: req("DELETE", "/petstore/v1/pets", "x-api-key: "+keyLegacy),
			want: authz.ReasonNoRoute, wantStatus: 404,
		},
		{
			name: "an unknown operation of a managed API is not found even where unmanaged paths are allowed",
			opts: authz.Options{AllowUnmanaged: true}, req: req("GET", "/petstore/v1/admin"),
			want: authz.ReasonNoRoute, wantStatus: 404,
		},
		{
			name: "an API serving other hosts is not found", req: withHost(req("GET", "/keyonly/things", "x-key: "+keyNoPolicy), "api.example.com"),
			want: authz.ReasonNoRoute, wantStatus: 404,
		},
		{
			name: "no credential gets both challenges without an error code", req: req("GET", "/petstore/v1/pets"),
			want: authz.ReasonMissingCredential, wantStatus: 401,
			wantChallenge: `Bearer realm="portcullis", APIKey realm="portcullis"`,
		},
		{
			name: "no credential on a key-only API gets the APIKey challenge alone",
			req:  withHost(req("GET", "/keyonly/things"), "keys.example.com"),
			want: authz.ReasonMissingCredential, wantStatus: 401, wantChallenge: `APIKey realm="portcullis"`,
		},
		{
			name: "the realm is configurable", opts: authz.Options{Realm: `petstore "prod"`}, req: req("GET", "/petstore/v1/pets"),
			want: authz.ReasonMissingCredential, wantStatus: 401,
			wantChallenge: `Bearer realm="petstore \"prod\"", APIKey realm="petstore \"prod\""`,
		},
		{
			name: "another Authorization scheme is refused, not ignored", req: req("GET", "/petstore/v1/pets", "authorization: Basic dXNlcjpwYXNz", "x-api-key: "+keyLegacy),
			want: authz.ReasonUnsupportedScheme, wantStatus: 401,
			wantChallenge: `Bearer realm="portcullis", APIKey realm="portcullis"`,
		},
		{
			name: "a malformed bearer token is a bad request", req: req("GET", "/petstore/v1/pets", "authorization: Bearer two words"),
			want: authz.ReasonInvalidRequest, wantStatus: 400, wantChallenge: `Bearer realm="portcullis", error="invalid_request"`,
		},
		{
			name: "two different API keys are a bad request", req: req("GET", "/petstore/v1/pets?api_key="+keyCIDR, "x-api-key: "+keyLegacy),
			want: authz.ReasonInvalidRequest, wantStatus: 400, wantChallenge: `Bearer realm="portcullis", error="invalid_request"`,
		},
		{
			name: "a bad request on a key-only API has no Bearer challenge",
			req:  withHost(req("GET", "/keyonly/things", "x-key: a,b"), "keys.example.com"),
			want: authz.ReasonInvalidRequest, wantStatus: 400,
		},
		{
			name: "an unknown API key is invalid", req: req("GET", "/petstore/v1/pets", "x-api-key: no-such-key"),
			want: authz.ReasonInvalidCredential, wantStatus: 401, wantChallenge: `APIKey realm="portcullis"`,
		},
		{
			name: "a Portcullis key with a bad checksum is invalid",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyPCL[:len(keyPCL)-1]+"X"),
			want: authz.ReasonInvalidCredential, wantStatus: 401, wantChallenge: `APIKey realm="portcullis"`,
		},
		{
			name: "a key past its expiry is refused", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyExpired),
			want: authz.ReasonKeyExpired, wantStatus: 401, wantChallenge: `APIKey realm="portcullis"`,
		},
		{
			name: "a key used outside its CIDR is refused", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyCIDR),
			want: authz.ReasonKeyIPNotAllowed, wantStatus: 403,
		},
		{
			name: "x-forwarded-for is not trusted by default",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyCIDR, "x-forwarded-for: "+allowedCIDRClientIP),
			want: authz.ReasonKeyIPNotAllowed, wantStatus: 403,
		},
		{
			name: "with one trusted hop a client-written x-forwarded-for entry is not trusted",
			opts: authz.Options{TrustedHops: 1},
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyCIDR, "x-forwarded-for: "+allowedCIDRClientIP+", 192.0.2.99, 10.0.0.1"),
			want: authz.ReasonKeyIPNotAllowed, wantStatus: 403,
		},
		{
			name: "a key restricted to referrers needs a Referer", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyReferrer),
			want: authz.ReasonKeyReferrerNotAllowed, wantStatus: 403,
		},
		{
			name: "a key used from another referrer is refused",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyReferrer, "referer: https://evil.example.com/"),
			want: authz.ReasonKeyReferrerNotAllowed, wantStatus: 403,
		},
		{
			name: "a key of an unsubscribed application is refused", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyUnsubscribed),
			want: authz.ReasonNotSubscribed, wantStatus: 403,
		},
		{
			name: "a blocked subscription refuses", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyBlocked),
			want: authz.ReasonSubscriptionBlocked, wantStatus: 403,
		},
		{
			name: "a subscription on hold refuses", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyHold),
			want: authz.ReasonSubscriptionOnHold, wantStatus: 403,
		},
		{
			name: "a production key on a PROD_ONLY_BLOCKED subscription is refused", req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyProdBlocked),
			want: authz.ReasonProdKeyBlocked, wantStatus: 403,
		},
		{
			name: "a token the verifier refuses is invalid", req: req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtBad),
			want: authz.ReasonInvalidCredential, wantStatus: 401, wantChallenge: `Bearer realm="portcullis", error="invalid_token"`,
		},
		{
			name: "a JWT from an issuer the API does not trust is invalid", req: req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtOther),
			want: authz.ReasonInvalidCredential, wantStatus: 401, wantChallenge: `Bearer realm="portcullis", error="invalid_token"`,
		},
		{
			name: "a JWT whose payload is not JSON is invalid", req: req("GET", "/petstore/v1/pets", "authorization: Bearer aaa.bbb.ccc"),
			want: authz.ReasonInvalidCredential, wantStatus: 401, wantChallenge: `Bearer realm="portcullis", error="invalid_token"`,
		},
		{
			name: "an opaque token no provider knows is invalid", req: req("GET", "/petstore/v1/pets", "authorization: Bearer not-a-token"),
			want: authz.ReasonInvalidCredential, wantStatus: 401, wantChallenge: `Bearer realm="portcullis", error="invalid_token"`,
		},
		{
			name: "a token whose client belongs to no application is refused", req: req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtGhost),
			want: authz.ReasonUnknownApplication, wantStatus: 403,
		},
		{
			name: "a token without a client id is refused", req: req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtNoCID),
			want: authz.ReasonUnknownApplication, wantStatus: 403,
		},
		{
			name: "a token of an unsubscribed application is refused", req: req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtLonely),
			want: authz.ReasonNotSubscribed, wantStatus: 403,
		},
		{
			name: "a token without the operation's scope is refused with the scope named",
			req:  req("GET", "/petstore/v1/pets/7", "authorization: Bearer "+jwtNone),
			want: authz.ReasonInsufficientScope, wantStatus: 403,
			wantChallenge: `Bearer realm="portcullis", error="insufficient_scope", scope="pets:read"`,
		},
		{
			name: "a read token cannot write", req: req("POST", "/petstore/v1/pets", "authorization: Bearer "+jwtRead),
			want: authz.ReasonInsufficientScope, wantStatus: 403,
			wantChallenge: `Bearer realm="portcullis", error="insufficient_scope", scope="pets:write"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAuthorizer(t, tt.opts)
			d, err := a.Decide(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Allowed() || d.Deny == nil {
				t.Fatalf("Decide allowed the request (%+v), want deny %s", d.Allow, tt.want)
			}
			if d.Deny.Reason != tt.want {
				t.Fatalf("reason = %s, want %s", d.Deny.Reason, tt.want)
			}
			resp := d.Deny.Response()
			if resp.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.Status, tt.wantStatus)
			}
			if got := header(resp.Headers, "www-authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			if got := header(resp.Headers, "content-type"); got != authz.ProblemContentType {
				t.Errorf("content-type = %q, want %q", got, authz.ProblemContentType)
			}
			var body map[string]any
			if err := json.Unmarshal(resp.Body, &body); err != nil {
				t.Fatalf("problem body is not JSON: %v\n%s", err, resp.Body)
			}
			info := tt.want.Info()
			wantBody := map[string]any{
				"type": info.Type(), "title": info.Title, "status": float64(tt.wantStatus),
				"detail": info.Detail, "code": tt.want.String(), "requestId": testRequestID,
			}
			if diff := cmp.Diff(wantBody, body); diff != "" {
				t.Errorf("problem body (-want +got):\n%s", diff)
			}
			for _, secret := range []string{keyLegacy, keyCIDR, keyExpired, keyReferrer, jwtBad, jwtNone, jwtRead} {
				if strings.Contains(string(resp.Body), secret) {
					t.Errorf("problem body holds a credential: %s", resp.Body)
				}
			}
		})
	}
}

func header(hs []authz.Header, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// wantAllow is what a test expects of an Allow.
type wantAllow struct {
	set         []authz.Header
	remove      []string
	removeQuery []string
	metadata    map[string]string
	credential  authz.CredentialKind
}

// petstoreMeta is the metadata every petstore allow by mobile-app carries,
// for the operation GET /pets and no end user.
func petstoreMeta(op string, extra map[string]string) map[string]string {
	m := map[string]string{
		"api": "petstore:v1", "operation": op, "application": "mobile-app", "key_type": "PRODUCTION",
		"subscription_counter": "mobile-app:petstore:v1", "subscription_policy": "gold",
		"application_counter": "mobile-app", "application_policy": "app-per-user",
		"api_counter": "petstore:v1", "api_policy": "petstore-api", "api_policy_group": "default",
		"request_id": testRequestID,
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

var mobileProdHeaders = []authz.Header{
	{Name: "x-portcullis-application", Value: "mobile-app"},
	{Name: "x-portcullis-application-owner", Value: "alice"},
	{Name: "x-portcullis-key-type", Value: "PRODUCTION"},
}

func TestDecideAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts authz.Options
		req  authz.Request
		want wantAllow
	}{
		{
			name: "a Portcullis-format key in its header is consumed",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyPCL),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "an API key in the query is removed from the query",
			req:  req("GET", "/petstore/v1/pets?limit=5&api_key="+keyLegacy),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, removeQuery: []string{"api_key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "API keys are not held to operation scopes",
			req:  req("GET", "/petstore/v1/pets/7", "x-api-key: "+keyLegacy),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets/{id}", nil)},
		},
		{
			name: "spoofed identity headers are overwritten or stripped",
			req: req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy,
				"x-portcullis-application: admin-app", "x-portcullis-user: root", "x-portcullis-key-type: PRODUCTION"),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders,
				remove:   []string{"x-api-key", "x-portcullis-user"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "a key inside its CIDR is allowed",
			req:  withSource(req("GET", "/petstore/v1/pets", "x-api-key: "+keyCIDR), allowedCIDRClientIP+":1234"),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "with one trusted hop the address the proxy appended is the client",
			opts: authz.Options{TrustedHops: 1},
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyCIDR, "x-forwarded-for: 192.0.2.1, "+allowedCIDRClientIP+", 10.0.0.1"),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "a key from an allowed referrer is allowed",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyReferrer, "referer: https://app.example.com/page"),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "a sandbox key says so",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keySandbox),
			want: wantAllow{credential: authz.CredentialAPIKey,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "mobile-app"},
					{Name: "x-portcullis-application-owner", Value: "alice"},
					{Name: "x-portcullis-key-type", Value: "SANDBOX"},
				},
				remove: []string{"x-api-key"}, metadata: petstoreMeta("GET /pets", map[string]string{"key_type": "SANDBOX"})},
		},
		{
			name: "a sandbox key passes a PROD_ONLY_BLOCKED subscription",
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyProdBlockedSbx),
			want: wantAllow{credential: authz.CredentialAPIKey,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "prodblocked-app"},
					{Name: "x-portcullis-application-owner", Value: "dave"},
					{Name: "x-portcullis-key-type", Value: "SANDBOX"},
				},
				remove: []string{"x-api-key"},
				metadata: map[string]string{
					"api": "petstore:v1", "operation": "GET /pets", "application": "prodblocked-app", "key_type": "SANDBOX",
					"subscription_counter": "prodblocked-app:petstore:v1", "subscription_policy": "gold",
					"api_counter": "petstore:v1", "api_policy": "petstore-api", "api_policy_group": "default",
					"request_id": testRequestID,
				}},
		},
		{
			name: "levels without a policy have no keys and an application without an owner no owner header",
			req:  withHost(req("GET", "/keyonly/things", "x-key: "+keyNoPolicy), "keys.example.com"),
			want: wantAllow{credential: authz.CredentialAPIKey,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "plain-app"},
					{Name: "x-portcullis-key-type", Value: "PRODUCTION"},
				},
				remove: []string{"x-key"},
				metadata: map[string]string{
					"api": "keyonly:v2", "operation": "GET /things", "application": "plain-app", "key_type": "PRODUCTION",
					"subscription_counter": "plain-app:keyonly:v2", "subscription_policy": "gold",
					"request_id": testRequestID,
				}},
		},
		{
			name: "a client-credentials JWT names no user",
			req:  req("GET", "/petstore/v1/pets/1", "authorization: Bearer "+jwtRead),
			want: wantAllow{credential: authz.CredentialJWT, set: mobileProdHeaders, remove: []string{"authorization"},
				metadata: petstoreMeta("GET /pets/{id}", nil)},
		},
		{
			name: "a JWT with an end user counts the application per user and matches a claim group",
			req:  req("GET", "/petstore/v1/pets", "authorization: bearer "+jwtUser, "x-portcullis-user: mallory"),
			want: wantAllow{credential: authz.CredentialJWT,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "mobile-app"},
					{Name: "x-portcullis-application-owner", Value: "alice"},
					{Name: "x-portcullis-user", Value: "alice@example.com"},
					{Name: "x-portcullis-key-type", Value: "PRODUCTION"},
				},
				remove: []string{"authorization"},
				metadata: petstoreMeta("GET /pets", map[string]string{
					"user": "alice@example.com", "application_counter": "mobile-app:alice@example.com",
					"api_policy_group": "gold tier claim",
				})},
		},
		{
			name: "the resource level and its group are set for an operation with a policy",
			req:  req("POST", "/petstore/v1/pets", "authorization: Bearer "+jwtUser, "x-bulk: yes"),
			want: wantAllow{credential: authz.CredentialJWT,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "mobile-app"},
					{Name: "x-portcullis-application-owner", Value: "alice"},
					{Name: "x-portcullis-user", Value: "alice@example.com"},
					{Name: "x-portcullis-key-type", Value: "PRODUCTION"},
				},
				remove: []string{"authorization"},
				metadata: petstoreMeta("POST /pets", map[string]string{
					"user": "alice@example.com", "application_counter": "mobile-app:alice@example.com",
					"api_policy_group": "gold tier claim", "resource_counter": "petstore:v1:POST /pets",
					"resource_policy": "petstore-writes", "resource_policy_group": "bulk header",
				})},
		},
		{
			name: "a sandbox OAuth client is a sandbox key type",
			req:  req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtSandbox),
			want: wantAllow{credential: authz.CredentialJWT,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "mobile-app"},
					{Name: "x-portcullis-application-owner", Value: "alice"},
					{Name: "x-portcullis-key-type", Value: "SANDBOX"},
				},
				remove:   []string{"authorization"},
				metadata: petstoreMeta("GET /pets", map[string]string{"key_type": "SANDBOX"})},
		},
		{
			name: "an opaque token is introspected",
			req:  req("GET", "/petstore/v1/pets/3", "authorization: Bearer "+opaqueGood),
			want: wantAllow{credential: authz.CredentialOpaque,
				set: []authz.Header{
					{Name: "x-portcullis-application", Value: "mobile-app"},
					{Name: "x-portcullis-application-owner", Value: "alice"},
					{Name: "x-portcullis-user", Value: "bob"},
					{Name: "x-portcullis-key-type", Value: "PRODUCTION"},
				},
				remove: []string{"authorization"},
				metadata: petstoreMeta("GET /pets/{id}", map[string]string{
					"user": "bob", "application_counter": "mobile-app:bob",
				})},
		},
		{
			name: "the partner network group matches on the client address",
			req:  withSource(req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy), partnerSourceAddr),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", map[string]string{"api_policy_group": "partner network"})},
		},
		{
			name: "an inverted query condition keeps curl with debug=true out of the curl group",
			req:  req("GET", "/petstore/v1/pets?debug=true", "x-api-key: "+keyLegacy, "user-agent: curl/8.5.0"),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "curl without debug falls in the curl group",
			req:  req("GET", "/petstore/v1/pets?debug=no", "x-api-key: "+keyLegacy, "user-agent: curl/8.5.0"),
			want: wantAllow{credential: authz.CredentialAPIKey, set: mobileProdHeaders, remove: []string{"x-api-key"},
				metadata: petstoreMeta("GET /pets", map[string]string{"api_policy_group": "curl without debug"})},
		},
		{
			name: "a bearer token wins over an API key and both are removed",
			req:  req("GET", "/petstore/v1/pets?api_key="+keySandbox, "authorization: Bearer "+jwtRead, "x-api-key: "+keySandbox),
			want: wantAllow{credential: authz.CredentialJWT, set: mobileProdHeaders,
				remove: []string{"authorization", "x-api-key"}, removeQuery: []string{"api_key"},
				metadata: petstoreMeta("GET /pets", nil)},
		},
		{
			name: "an anonymous operation is allowed, strips identity headers and an API key, leaves Authorization",
			req:  req("GET", "/petstore/v1/health", "x-api-key: whatever", "authorization: Bearer x", "x-portcullis-application: mobile-app"),
			want: wantAllow{credential: authz.CredentialNone, remove: []string{"x-api-key", "x-portcullis-application"},
				metadata: map[string]string{
					"api": "petstore:v1", "operation": "GET /health", "request_id": testRequestID,
					"api_counter": "petstore:v1", "api_policy": "petstore-api", "api_policy_group": "default",
				}},
		},
		{
			name: "an unmanaged path is allowed when configured, without identity",
			opts: authz.Options{AllowUnmanaged: true},
			req:  req("GET", "/static/logo.png", "x-portcullis-key-type: PRODUCTION"),
			want: wantAllow{credential: authz.CredentialNone, remove: []string{"x-portcullis-key-type"},
				metadata: map[string]string{"request_id": testRequestID}},
		},
		{
			name: "identity header names are configurable",
			opts: authz.Options{IdentityHeaders: authz.IdentityHeaders{Application: "X-App", Owner: "x-owner", User: "x-user", KeyType: "x-env"}},
			req:  req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy, "x-user: root"),
			want: wantAllow{credential: authz.CredentialAPIKey,
				set: []authz.Header{
					{Name: "x-app", Value: "mobile-app"}, {Name: "x-owner", Value: "alice"}, {Name: "x-env", Value: "PRODUCTION"},
				},
				remove: []string{"x-api-key", "x-user"}, metadata: petstoreMeta("GET /pets", nil)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAuthorizer(t, tt.opts)
			d, err := a.Decide(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if !d.Allowed() {
				t.Fatalf("Decide denied the request: %s", d.Deny.Reason)
			}
			al := d.Allow
			if al.Identity.Credential != tt.want.credential {
				t.Errorf("credential = %s, want %s", al.Identity.Credential, tt.want.credential)
			}
			if diff := cmp.Diff(tt.want.set, al.SetHeaders, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("SetHeaders (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want.remove, al.RemoveHeaders, cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("RemoveHeaders (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want.removeQuery, al.RemoveQueryParams, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("RemoveQueryParams (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want.metadata, al.Metadata.Map()); diff != "" {
				t.Errorf("Metadata (-want +got):\n%s", diff)
			}
			for _, h := range al.SetHeaders {
				for _, r := range al.RemoveHeaders {
					if h.Name == r {
						t.Errorf("header %q is both set and removed: Envoy would remove what it set", r)
					}
				}
			}
		})
	}
}

func TestDecideWithoutAnIdentityProviderIsNoDecision(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, authz.Options{})
	_, err := a.Decide(context.Background(), req("GET", "/petstore/v1/pets", "authorization: Bearer "+opaqueDown))
	if !errors.Is(err, authz.ErrUnavailable) || !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Decide error = %v, want one wrapping authz.ErrUnavailable and identity.ErrUnavailable", err)
	}
}

func TestDecideBeforeTheFirstCatalogIsNoDecision(t *testing.T) {
	t.Parallel()
	a, err := authz.New(authz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ready() {
		t.Error("Ready before Update")
	}
	if _, err := a.Decide(context.Background(), req("GET", "/petstore/v1/health")); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("Decide error = %v, want ErrUnavailable", err)
	}
}

func TestUpdateSwapsTheCatalog(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, authz.Options{})
	r := req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy)
	if d, _ := a.Decide(context.Background(), r); !d.Allowed() {
		t.Fatalf("before the swap: denied %s", d.Deny.Reason)
	}
	empty, err := catalog.Build(nil)
	if err != nil {
		t.Fatalf("build an empty catalog: %v", err)
	}
	if err := a.Update(empty, nil); err != nil {
		t.Fatalf("Update: %v", err)
	}
	d, err := a.Decide(context.Background(), r)
	if err != nil || d.Allowed() || d.Deny.Reason != authz.ReasonNoRoute {
		t.Fatalf("after swapping in an empty catalog: %+v, %v; want no_route", d, err)
	}
	if err := a.Update(nil, nil); err == nil {
		t.Error("Update(nil) succeeded")
	}
}

func TestDecisionsAreCountedByResultAndReason(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a := newAuthorizer(t, authz.Options{Registerer: reg})
	for _, r := range []authz.Request{
		req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy),
		req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy),
		req("GET", "/petstore/v1/pets", "authorization: Bearer "+jwtRead),
		req("GET", "/petstore/v1/health"),
		req("GET", "/petstore/v1/pets"),
		req("GET", "/petstore/v1/pets", "authorization: Bearer "+opaqueDown),
	} {
		_, _ = a.Decide(context.Background(), r)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_authz_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["result"]+"/"+labels["reason"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"allow/anonymous": 1, "allow/api_key": 2, "allow/jwt": 1, "allow/opaque": 0, "allow/unmanaged": 0,
		"error/idp_unavailable": 1,
	}
	for _, r := range authz.Reasons() {
		if r != authz.ReasonIdPUnavailable {
			want["deny/"+r.String()] = 0
		}
	}
	want["deny/missing_credential"] = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decisions_total by result/reason (-want +got):\n%s", diff)
	}
}

func TestEveryReasonHasARow(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, r := range authz.Reasons() {
		info := r.Info()
		if info.Code == "" || info.Status < 400 || info.Title == "" || info.Detail == "" {
			t.Errorf("%d: incomplete row %+v", r, info)
		}
		if seen[info.Code] {
			t.Errorf("code %q used twice", info.Code)
		}
		seen[info.Code] = true
		if r.String() != info.Code {
			t.Errorf("String() = %q, want the code %q", r.String(), info.Code)
		}
	}
	if got := authz.Reason(200).Info(); got.Status != 403 || got.Code != "unknown" {
		t.Errorf("an out-of-range reason renders %+v, want a 403 named unknown", got)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts authz.Options
		want string
	}{
		{"negative hops", authz.Options{TrustedHops: -1}, "trusted hops"},
		{"a header name with a space", authz.Options{IdentityHeaders: authz.IdentityHeaders{Application: "x app", Owner: "o", User: "u", KeyType: "k"}}, "not an HTTP header name"},
		{"a missing header name", authz.Options{IdentityHeaders: authz.IdentityHeaders{Application: "a", Owner: "o", User: "u"}}, "keyType: required"},
		{"the same header twice", authz.Options{IdentityHeaders: authz.IdentityHeaders{Application: "x-a", Owner: "X-A", User: "u", KeyType: "k"}}, "also application"},
		{"a reserved header", authz.Options{IdentityHeaders: authz.IdentityHeaders{Application: "Authorization", Owner: "o", User: "u", KeyType: "k"}}, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := authz.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDecideDuringUpdatesSeesOneCatalog(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, authz.Options{})
	full := loadCatalog(t)
	empty, err := catalog.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := req("GET", "/petstore/v1/pets", "x-api-key: "+keyLegacy)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			snap := full
			if i%2 == 0 {
				snap = empty
			}
			if err := a.Update(snap, testVerifiers()); err != nil {
				t.Errorf("Update: %v", err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		d, err := a.Decide(context.Background(), r)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		// Either catalog, whole: allowed by the full one, no_route in the
		// empty one; never a mixture such as a route without its key.
		if !d.Allowed() && d.Deny.Reason != authz.ReasonNoRoute {
			t.Fatalf("decision from a mixed catalog: %s", d.Deny.Reason)
		}
	}
}
