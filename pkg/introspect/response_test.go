package introspect

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

const testIssuer = "https://idp.example.test"

// now is 2026-03-01T12:00:00Z, Unix 1772366400.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type responseCase struct {
	name    string
	body    string
	check   func(*check) // adjusts the default check
	want    *identity.Token
	wantErr error  // identity.ErrInvalid or identity.ErrUnavailable
	errHas  string // a substring of the error
}

// responseCases are shared with the fuzz target's seeds.
var responseCases = []responseCase{{
	name: "an active token with every member",
	body: `{"active":true,"client_id":"app-1","scope":"pets:read  pets:write","sub":"alice","aud":"https://api.example.test",
		"iss":"https://idp.example.test","exp":1772370000,"nbf":1772366000,"iat":1772366000,"token_type":"Bearer","jti":"j1"}`,
	want: &identity.Token{
		Issuer: testIssuer, Subject: "alice", ClientID: "app-1",
		Scopes: []string{"pets:read", "pets:write"}, Audience: []string{"https://api.example.test"},
		Expiry: time.Unix(1772370000, 0),
	},
}, {
	name: "a minimal active answer takes the provider's issuer",
	body: `{"active":true}`,
	want: &identity.Token{Issuer: testIssuer},
}, {
	name: "aud as an array",
	body: `{"active":true,"aud":["a","b"]}`,
	want: &identity.Token{Issuer: testIssuer, Audience: []string{"a", "b"}},
}, {
	name: "scope as an array, as some providers send it",
	body: `{"active":true,"scope":["pets:read",""]}`,
	want: &identity.Token{Issuer: testIssuer, Scopes: []string{"pets:read"}},
}, {
	name: "a fractional exp",
	body: `{"active":true,"exp":1772366400.5}`,
	want: &identity.Token{Issuer: testIssuer, Expiry: time.Unix(1772366400, 5e8)},
}, {
	name: "token_type is compared without case",
	body: `{"active":true,"token_type":"bearer"}`,
	want: &identity.Token{Issuer: testIssuer},
}, {
	name: "token_type access_token",
	body: `{"active":true,"token_type":"access_token"}`,
	want: &identity.Token{Issuer: testIssuer},
}, {
	name: "token_type as the RFC 8693 URI",
	body: `{"active":true,"token_type":"urn:ietf:params:oauth:token-type:access_token"}`,
	want: &identity.Token{Issuer: testIssuer},
}, {
	name: "an audience in the allowed list",
	body: `{"active":true,"aud":["other","mine"]}`,
	check: func(c *check) {
		c.audiences = []string{"mine"}
	},
	want: &identity.Token{Issuer: testIssuer, Audience: []string{"other", "mine"}},
}, {
	name: "an exp just past is accepted within the clock skew",
	body: `{"active":true,"exp":1772366399}`,
	check: func(c *check) {
		c.skew = 5 * time.Second
	},
	want: &identity.Token{Issuer: testIssuer, Expiry: time.Unix(1772366399, 0)},
}, {
	name:    "inactive",
	body:    `{"active":false}`,
	wantErr: identity.ErrInvalid, errHas: "not active",
}, {
	name:    "inactive with other members still refused",
	body:    `{"active":false,"exp":1772370000,"client_id":"app-1"}`,
	wantErr: identity.ErrInvalid, errHas: "not active",
}, {
	name:    "expired by our clock though the provider says active",
	body:    `{"active":true,"exp":1772366400}`,
	wantErr: identity.ErrInvalid, errHas: "expired at 2026-03-01T12:00:00Z",
}, {
	name:    "not yet valid",
	body:    `{"active":true,"nbf":1772366401}`,
	wantErr: identity.ErrInvalid, errHas: "not valid before",
}, {
	name:    "another issuer",
	body:    `{"active":true,"iss":"https://evil.example.test"}`,
	wantErr: identity.ErrInvalid, errHas: `issuer "https://evil.example.test"`,
}, {
	name:    "a refresh token",
	body:    `{"active":true,"token_type":"refresh_token"}`,
	wantErr: identity.ErrInvalid, errHas: `token_type "refresh_token"`,
}, {
	name:    "a DPoP-bound token",
	body:    `{"active":true,"token_type":"DPoP","cnf":{"jkt":"abc"}}`,
	wantErr: identity.ErrInvalid, errHas: `token_type "DPoP"`,
}, {
	name:    "a certificate-bound token",
	body:    `{"active":true,"token_type":"Bearer","cnf":{"x5t#S256":"abc"}}`,
	wantErr: identity.ErrInvalid, errHas: "sender-constrained",
}, {
	name:    "an audience outside the allowed list",
	body:    `{"active":true,"aud":"theirs"}`,
	check:   func(c *check) { c.audiences = []string{"mine"} },
	wantErr: identity.ErrInvalid, errHas: "names none of",
}, {
	name:    "no audience when one is required",
	body:    `{"active":true}`,
	check:   func(c *check) { c.audiences = []string{"mine"} },
	wantErr: identity.ErrInvalid, errHas: "names none of",
}, {
	name:    "not JSON",
	body:    `<html>oops</html>`,
	wantErr: identity.ErrUnavailable, errHas: "malformed",
}, {
	name:    "an empty body",
	body:    ``,
	wantErr: identity.ErrUnavailable, errHas: "malformed",
}, {
	name:    "null",
	body:    `null`,
	wantErr: identity.ErrUnavailable, errHas: "malformed",
}, {
	name:    "an array",
	body:    `[{"active":true}]`,
	wantErr: identity.ErrUnavailable, errHas: "malformed",
}, {
	name:    "trailing data",
	body:    `{"active":true} {"active":false}`,
	wantErr: identity.ErrUnavailable, errHas: "malformed",
}, {
	name:    "active missing",
	body:    `{"client_id":"app-1"}`,
	wantErr: identity.ErrUnavailable, errHas: `"active" is absent or null`,
}, {
	name:    "active as a string",
	body:    `{"active":"true"}`,
	wantErr: identity.ErrUnavailable, errHas: `"active" is a string`,
}, {
	name:    "exp as a string",
	body:    `{"active":true,"exp":"1772370000"}`,
	wantErr: identity.ErrUnavailable, errHas: `"exp" is a string`,
}, {
	name:    "exp out of range",
	body:    `{"active":true,"exp":1e300}`,
	wantErr: identity.ErrUnavailable, errHas: "out of range",
}, {
	name:    "a negative nbf",
	body:    `{"active":true,"nbf":-5}`,
	wantErr: identity.ErrUnavailable, errHas: "out of range",
}, {
	name:    "sub as a number",
	body:    `{"active":true,"sub":42}`,
	wantErr: identity.ErrUnavailable, errHas: `"sub" is a number`,
}, {
	name:    "aud with a number in the array",
	body:    `{"active":true,"aud":["a",1]}`,
	wantErr: identity.ErrUnavailable, errHas: `"aud" is a number`,
}, {
	name:    "scope as an object",
	body:    `{"active":true,"scope":{"a":1}}`,
	wantErr: identity.ErrUnavailable, errHas: `"scope" is an object`,
}}

func defaultCheck() check {
	return check{issuer: testIssuer, now: now}
}

func TestParseResponse(t *testing.T) {
	for _, tt := range responseCases {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultCheck()
			if tt.check != nil {
				tt.check(&c)
			}
			got, err := parseResponse([]byte(tt.body), c)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("parseResponse = (%+v, %v), want an error wrapping %v containing %q", got, err, tt.wantErr, tt.errHas)
				}
				if got != nil {
					t.Fatalf("a token beside the error: %+v", got)
				}
				other := identity.ErrInvalid
				if tt.wantErr == identity.ErrInvalid {
					other = identity.ErrUnavailable
				}
				if errors.Is(err, other) {
					t.Fatalf("error %v wraps both ErrInvalid and ErrUnavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseResponse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(identity.Token{}, "Claims"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("token (-want +got):\n%s", diff)
			}
			if got.Claims["active"] != true {
				t.Errorf("Claims = %v, want the response's members", got.Claims)
			}
		})
	}
}
