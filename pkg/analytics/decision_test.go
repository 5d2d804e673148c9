package analytics_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

const (
	unsubscribedKey = "legacy-unsubscribed-key"
	// tokenWhileDown verifies as the identity provider being unreachable.
	tokenWhileDown = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC50ZXN0In0.ZG93bg"
)

func loadCatalog(t testing.TB) *catalog.Snapshot {
	t.Helper()
	snap, err := catalog.LoadPath(context.Background(), "testdata/catalog.yaml")
	if err != nil {
		t.Fatalf("load test catalog: %v", err)
	}
	return snap
}

type verifierFunc func(ctx context.Context, raw string) (*identity.Token, error)

func (f verifierFunc) Verify(ctx context.Context, raw string) (*identity.Token, error) {
	return f(ctx, raw)
}

func newAuthorizer(t testing.TB) *authz.Authorizer {
	t.Helper()
	a, err := authz.New(authz.Options{TrustedHops: 1})
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	verify := verifierFunc(func(_ context.Context, raw string) (*identity.Token, error) {
		switch raw {
		case secretToken:
			return &identity.Token{Issuer: "https://idp.test", Subject: "user-42", ClientID: "acme-client", Scopes: []string{"pets:read"}}, nil
		case tokenWhileDown:
			return nil, fmt.Errorf("fetch keys: connection refused: %w", identity.ErrUnavailable)
		}
		return nil, fmt.Errorf("unknown token: %w", identity.ErrInvalid)
	})
	if err := a.Update(loadCatalog(t), authz.Verifiers{"corp-idp": {JWT: verify}}); err != nil {
		t.Fatalf("authz Update: %v", err)
	}
	return a
}

// sinkFunc adapts a function to analytics.EventSink.
type sinkFunc func(analytics.Event) bool

func (f sinkFunc) Emit(e analytics.Event) bool { return f(e) }

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestRecordDecisionsEmitsOneEventPerDecision(t *testing.T) {
	const (
		source = "10.0.0.1:5000"
		xff    = "198.51.100.23, 10.0.0.1" // one trusted hop: the client is the second from the right
	)
	client := netip.MustParseAddr("198.51.100.23")
	request := func(path string, headers map[string]string) authz.Request {
		h := map[string]string{"user-agent": "acme-mobile/3.1", "x-forwarded-for": xff}
		for k, v := range headers {
			h[k] = v
		}
		return authz.Request{Host: "api.acme.example:8443", Method: "GET", Path: path, Headers: h, SourceAddr: source, RequestID: "req-1"}
	}
	petstore := analytics.Event{
		Source: analytics.SourceDecision, Timestamp: t0, CorrelationID: "req-1",
		APIName: "petstore", APIVersion: "v1", APIContext: "/petstore/v1", APIMethod: "GET", APIResourceTemplate: "/pets/{id}",
		AuthzLatency: 250 * time.Microsecond, UserIP: client, UserAgent: "acme-mobile/3.1", ServerAddress: "api.acme.example",
	}
	acme := func(e analytics.Event, keyType string) analytics.Event {
		e.ApplicationID, e.ApplicationName, e.ApplicationOwner, e.KeyType = "acme-mobile", "Acme Mobile", "alice@acme.example", keyType
		return e
	}
	with := func(e analytics.Event, f func(*analytics.Event)) analytics.Event { f(&e); return e }

	tests := []struct {
		name        string
		req         authz.Request
		wantAllowed bool
		wantErr     bool
		want        analytics.Event
	}{
		{
			name:        "a token allowed names API, operation, application, key type and user",
			req:         request("/petstore/v1/pets/7", map[string]string{"authorization": "Bearer " + secretToken}),
			wantAllowed: true,
			want:        with(acme(petstore, "PRODUCTION"), func(e *analytics.Event) { e.UserName = "user-42" }),
		},
		{
			name:        "an API key in a header allowed",
			req:         request("/petstore/v1/pets", map[string]string{"x-api-key": secretKey}),
			wantAllowed: true,
			want:        with(acme(petstore, "SANDBOX"), func(e *analytics.Event) { e.APIResourceTemplate = "/pets" }),
		},
		{
			name:        "an API key in the query allowed, and the query is nowhere",
			req:         request("/petstore/v1/pets?api_key="+secretKey, nil),
			wantAllowed: true,
			want:        with(acme(petstore, "SANDBOX"), func(e *analytics.Event) { e.APIResourceTemplate = "/pets" }),
		},
		{
			name: "an unsubscribed application is an AUTH refusal naming it",
			req:  request("/petstore/v1/pets", map[string]string{"x-api-key": unsubscribedKey}),
			want: with(petstore, func(e *analytics.Event) {
				e.APIResourceTemplate = "/pets"
				e.ApplicationID, e.ApplicationName = "lonely-app", "lonely-app"
				e.ProxyResponseCode, e.ErrorType, e.ErrorCode = 403, analytics.ErrorAuth, "not_subscribed"
			}),
		},
		{
			name: "a missing credential is an AUTH refusal",
			req:  request("/petstore/v1/pets", nil),
			want: with(petstore, func(e *analytics.Event) {
				e.APIResourceTemplate = "/pets"
				e.ProxyResponseCode, e.ErrorType, e.ErrorCode = 401, analytics.ErrorAuth, "missing_credential"
			}),
		},
		{
			name: "an unknown token is an AUTH refusal",
			req:  request("/petstore/v1/pets", map[string]string{"authorization": "Bearer not-" + secretKey}),
			want: with(petstore, func(e *analytics.Event) {
				e.APIResourceTemplate = "/pets"
				e.ProxyResponseCode, e.ErrorType, e.ErrorCode = 401, analytics.ErrorAuth, "invalid_credential"
			}),
		},
		{
			name: "no API is OTHER, not AUTH, and names no API",
			req:  request("/nowhere/"+secretKey, map[string]string{"x-api-key": secretKey}),
			want: analytics.Event{
				Source: analytics.SourceDecision, Timestamp: t0, CorrelationID: "req-1", APIMethod: "GET",
				AuthzLatency: 250 * time.Microsecond, UserIP: client, UserAgent: "acme-mobile/3.1", ServerAddress: "api.acme.example",
				ProxyResponseCode: 404, ErrorType: analytics.ErrorOther, ErrorCode: "no_route",
			},
		},
		{
			name:    "an unreachable identity provider is AUTH idp_unavailable with no status",
			req:     request("/petstore/v1/pets", map[string]string{"authorization": "Bearer " + tokenWhileDown}),
			wantErr: true,
			want: analytics.Event{
				Source: analytics.SourceDecision, Timestamp: t0, CorrelationID: "req-1", APIMethod: "GET",
				AuthzLatency: 250 * time.Microsecond, UserIP: client, UserAgent: "acme-mobile/3.1", ServerAddress: "api.acme.example",
				ErrorType: analytics.ErrorAuth, ErrorCode: "idp_unavailable",
			},
		},
	}
	a := newAuthorizer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []analytics.Event
			now := t0
			clock := func() time.Time { defer func() { now = now.Add(250 * time.Microsecond) }(); return now }
			d := analytics.RecordDecisions(a, sinkFunc(func(e analytics.Event) bool { got = append(got, e); return true }),
				analytics.DecisionOptions{TrustedHops: 1, Clock: clock})
			dec, err := d.Decide(context.Background(), tt.req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Decide error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, authz.ErrUnavailable) {
				t.Errorf("Decide error %v does not wrap authz.ErrUnavailable", err)
			}
			if err == nil && dec.Allowed() != tt.wantAllowed {
				t.Errorf("Allowed = %v, want %v", dec.Allowed(), tt.wantAllowed)
			}
			if len(got) != 1 {
				t.Fatalf("%d events, want 1", len(got))
			}
			if diff := cmp.Diff(tt.want, got[0], cmpAddr); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			assertNoSecret(t, "event JSON", string(analytics.AppendJSON(nil, &got[0])))
			assertNoSecret(t, "event attributes", fmt.Sprint(analytics.AppendAttributes(nil, &got[0])))
			assertNoSecret(t, "event", fmt.Sprintf("%+v", got[0]))
		})
	}
}

func TestDecisionsDoNotAllocateBeyondTheDecision(t *testing.T) {
	a := newAuthorizer(t)
	req := authz.Request{Host: "api.acme.example", Method: "GET", Path: "/petstore/v1/pets",
		Headers: map[string]string{"x-api-key": secretKey, "user-agent": "ua"}, SourceAddr: "10.0.0.1", RequestID: "r"}
	ctx := context.Background()
	discard := sinkFunc(func(analytics.Event) bool { return true })
	d := analytics.RecordDecisions(a, discard, analytics.DecisionOptions{})
	plain := testing.AllocsPerRun(200, func() { _, _ = a.Decide(ctx, req) })
	recorded := testing.AllocsPerRun(200, func() { _, _ = d.Decide(ctx, req) })
	if recorded > plain {
		t.Errorf("recording decisions allocates %v per decision, deciding alone %v", recorded, plain)
	}
}

func TestHostOnlyStripsThePort(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"name and port", "api.acme.example:8443", "api.acme.example"},
		{"name alone", "api.acme.example", "api.acme.example"},
		{"IPv4 and port", "192.0.2.1:80", "192.0.2.1"},
		{"IPv6 and port", "[2001:db8::1]:443", "2001:db8::1"},
		{"IPv6 in brackets alone", "[2001:db8::1]", "2001:db8::1"},
		{"bare IPv6", "2001:db8::1", "2001:db8::1"},
		{"unclosed bracket", "[2001:db8::1", "[2001:db8::1"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := analytics.HostOnly(tt.in); got != tt.want {
				t.Errorf("HostOnly(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
