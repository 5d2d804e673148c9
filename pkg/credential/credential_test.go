package credential

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

const (
	oauth2 = catalog.SecurityOAuth2
	apiKey = catalog.SecurityAPIKey
	both   = catalog.SecurityOAuth2 | catalog.SecurityAPIKey
	none   = catalog.SecurityNone
)

// op builds an operation accepting sec on an API reading keys from
// x-api-key and api_key, or from keyHeaders and keyParams when given.
func op(sec catalog.Security, keyHeaders, keyParams []string) *catalog.CompiledOperation {
	if keyHeaders == nil && keyParams == nil {
		keyHeaders, keyParams = []string{"x-api-key"}, []string{"api_key"}
	}
	api := &catalog.CompiledAPI{Name: "petstore", APIKeyHeaders: keyHeaders, APIKeyQueryParams: keyParams}
	return &catalog.CompiledOperation{API: api, Method: "GET", Template: "/pets", Security: sec}
}

const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"

func TestRead(t *testing.T) {
	tests := []struct {
		name          string
		op            *catalog.CompiledOperation
		headers       map[string]string
		query         string
		want          Credential // Kind, Value, Header, QueryParam
		removeHeaders []string
		removeParams  []string
		err           error
		errText       string
	}{
		// Bearer tokens.
		{name: "bearer", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer " + jwt},
			want: Credential{Kind: KindBearer, Value: jwt, Header: "authorization"}, removeHeaders: []string{"authorization"}},
		{name: "scheme in lower case", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "bearer abc"},
			want: Credential{Kind: KindBearer, Value: "abc", Header: "authorization"}, removeHeaders: []string{"authorization"}},
		{name: "scheme in upper case, two spaces", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "BEARER  abc=="},
			want: Credential{Kind: KindBearer, Value: "abc==", Header: "authorization"}, removeHeaders: []string{"authorization"}},
		{name: "bearer without token", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer"}, err: ErrMalformed, errText: "header authorization"},
		{name: "bearer with only spaces", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer   "}, err: ErrMalformed},
		{name: "token with a space", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer abc def"}, err: ErrMalformed},
		{name: "two tokens joined by Envoy", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer abc,Bearer def"}, err: ErrMalformed},
		{name: "padding in the middle", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer ab=c"}, err: ErrMalformed},
		{name: "padding only", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer =="}, err: ErrMalformed},
		{name: "token too long", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer " + strings.Repeat("a", MaxTokenLen+1)}, err: ErrMalformed},
		{name: "basic scheme", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, err: ErrUnsupportedScheme},
		{name: "basic scheme with an API key also present", op: op(both, nil, nil), headers: map[string]string{"authorization": "Basic dXNlcjpwYXNz", "x-api-key": "k1"}, err: ErrUnsupportedScheme},
		{name: "scheme glued to the token", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearerabc"}, err: ErrUnsupportedScheme},
		{name: "empty authorization", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": ""}, err: ErrUnsupportedScheme},
		{name: "no authorization", op: op(oauth2, nil, nil), headers: map[string]string{"x-api-key": "k1"}, err: ErrMissing, removeHeaders: nil},

		// API keys.
		{name: "key in a header", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "k1"},
			want: Credential{Kind: KindAPIKey, Value: "k1", Header: "x-api-key"}, removeHeaders: []string{"x-api-key"}},
		{name: "key in the query", op: op(apiKey, nil, nil), query: "limit=10&api_key=k1&x=y",
			want: Credential{Kind: KindAPIKey, Value: "k1", QueryParam: "api_key"}, removeParams: []string{"api_key"}},
		{name: "percent-encoded key in the query", op: op(apiKey, nil, nil), query: "api_key=a%2Bb%3D",
			want: Credential{Kind: KindAPIKey, Value: "a+b=", QueryParam: "api_key"}, removeParams: []string{"api_key"}},
		{name: "same key in header and query", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "k1"}, query: "api_key=k1",
			want: Credential{Kind: KindAPIKey, Value: "k1", Header: "x-api-key"}, removeHeaders: []string{"x-api-key"}, removeParams: []string{"api_key"}},
		{name: "same key twice in the query", op: op(apiKey, nil, nil), query: "api_key=k1&api_key=k1",
			want: Credential{Kind: KindAPIKey, Value: "k1", QueryParam: "api_key"}, removeParams: []string{"api_key"}},
		{name: "different keys in header and query", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "k1"}, query: "api_key=k2", err: ErrAmbiguous, errText: "query parameter api_key"},
		{name: "different keys in the query", op: op(apiKey, nil, nil), query: "api_key=k1&api_key=k2", err: ErrAmbiguous},
		{name: "different keys in two headers", op: op(apiKey, []string{"x-api-key", "x-key"}, nil), headers: map[string]string{"x-api-key": "k1", "x-key": "k2"}, err: ErrAmbiguous},
		{name: "second header, first absent", op: op(apiKey, []string{"x-api-key", "x-key"}, nil), headers: map[string]string{"x-key": "k2"},
			want: Credential{Kind: KindAPIKey, Value: "k2", Header: "x-key"}, removeHeaders: []string{"x-key"}},
		{name: "two keys joined by Envoy", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "k1,k2"}, err: ErrMalformed},
		{name: "empty key header", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": ""}, err: ErrMalformed},
		{name: "key with a space", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "k 1"}, err: ErrMalformed},
		{name: "key with a control character", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "k\x001"}, err: ErrMalformed},
		{name: "key outside ASCII", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": "clé"}, err: ErrMalformed},
		{name: "key too long", op: op(apiKey, nil, nil), headers: map[string]string{"x-api-key": strings.Repeat("k", MaxAPIKeyLen+1)}, err: ErrMalformed},
		{name: "empty key in the query", op: op(apiKey, nil, nil), query: "api_key=", err: ErrMalformed},
		{name: "key parameter without a value", op: op(apiKey, nil, nil), query: "api_key", err: ErrMalformed},
		{name: "bad escape in the key", op: op(apiKey, nil, nil), query: "api_key=k%zz", err: ErrMalformed},
		{name: "plus decodes to a space", op: op(apiKey, nil, nil), query: "api_key=a+b", err: ErrMalformed},
		{name: "encoded parameter name", op: op(apiKey, nil, nil), query: "api%5Fkey=k1", err: ErrMalformed, errText: "percent-encoded name"},
		{name: "parameter that only starts like the key's", op: op(apiKey, nil, nil), query: "api_key2=k1", err: ErrMissing},
		{name: "bad escape elsewhere in the query", op: op(apiKey, nil, nil), query: "q=%zz&api_key=k1",
			want: Credential{Kind: KindAPIKey, Value: "k1", QueryParam: "api_key"}, removeParams: []string{"api_key"}},
		{name: "semicolons elsewhere in the query", op: op(apiKey, nil, nil), query: "a=1;b=2&api_key=k1",
			want: Credential{Kind: KindAPIKey, Value: "k1", QueryParam: "api_key"}, removeParams: []string{"api_key"}},
		{name: "no key", op: op(apiKey, nil, nil), headers: map[string]string{"authorization": "Bearer abc"}, query: "x=1", err: ErrMissing},
		{name: "empty query", op: op(apiKey, nil, nil), query: "", err: ErrMissing},

		// Both kinds accepted.
		{name: "bearer wins over a key, both removed", op: op(both, nil, nil), headers: map[string]string{"authorization": "Bearer abc", "x-api-key": "k1"}, query: "api_key=k1",
			want: Credential{Kind: KindBearer, Value: "abc", Header: "authorization"}, removeHeaders: []string{"authorization", "x-api-key"}, removeParams: []string{"api_key"}},
		{name: "key when no bearer", op: op(both, nil, nil), headers: map[string]string{"x-api-key": "k1"},
			want: Credential{Kind: KindAPIKey, Value: "k1", Header: "x-api-key"}, removeHeaders: []string{"x-api-key"}},
		{name: "ambiguous keys refused even beside a bearer", op: op(both, nil, nil), headers: map[string]string{"authorization": "Bearer abc", "x-api-key": "k1"}, query: "api_key=k2&api_key=k3", err: ErrAmbiguous},
		{name: "nothing", op: op(both, nil, nil), err: ErrMissing},

		// Authorization as a key header.
		{name: "raw key in authorization", op: op(apiKey, []string{"authorization"}, nil), headers: map[string]string{"authorization": "k1"},
			want: Credential{Kind: KindAPIKey, Value: "k1", Header: "authorization"}, removeHeaders: []string{"authorization"}},
		{name: "bearer-looking key for an API-key-only operation", op: op(apiKey, []string{"authorization"}, nil), headers: map[string]string{"authorization": "Bearer abc"}, err: ErrMalformed},
		{name: "bearer in a shared authorization header", op: op(both, []string{"authorization"}, nil), headers: map[string]string{"authorization": "Bearer abc"},
			want: Credential{Kind: KindBearer, Value: "abc", Header: "authorization"}, removeHeaders: []string{"authorization"}},
		{name: "raw key in a shared authorization header", op: op(both, []string{"authorization"}, nil), headers: map[string]string{"authorization": "k1"},
			want: Credential{Kind: KindAPIKey, Value: "k1", Header: "authorization"}, removeHeaders: []string{"authorization"}},

		// Operations that accept other kinds.
		{name: "oauth2 operation ignores a key but removes it", op: op(oauth2, nil, nil), headers: map[string]string{"authorization": "Bearer abc", "x-api-key": "k1,broken"},
			want: Credential{Kind: KindBearer, Value: "abc", Header: "authorization"}, removeHeaders: []string{"authorization", "x-api-key"}},
		{name: "key operation leaves authorization alone", op: op(apiKey, nil, nil), headers: map[string]string{"authorization": "Basic dXNlcjpwYXNz", "x-api-key": "k1"},
			want: Credential{Kind: KindAPIKey, Value: "k1", Header: "x-api-key"}, removeHeaders: []string{"x-api-key"}},
		{name: "anonymous operation", op: op(none, nil, nil), headers: map[string]string{"authorization": "Basic x"},
			want: Credential{Kind: KindNone}},
		{name: "anonymous operation removes keys", op: op(none, nil, nil), headers: map[string]string{"x-api-key": "k1"}, query: "api_key=k1&api%5Fkey=x",
			want: Credential{Kind: KindNone}, removeHeaders: []string{"x-api-key"}, removeParams: []string{"api_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(tt.op, tt.headers, tt.query)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, identity.ErrInvalid) {
					t.Fatalf("err = %v, want %v (and identity.ErrInvalid)", err, tt.err)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("err = %q, want it to contain %q", err, tt.errText)
				}
				if got.Kind != KindNone || got.Value != "" {
					t.Errorf("an error came with a credential: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(sameCredential)); diff != "" {
				t.Errorf("credential (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.removeHeaders, got.HeadersToRemove()); diff != "" {
				t.Errorf("headers to remove (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.removeParams, got.QueryParamsToRemove()); diff != "" {
				t.Errorf("query parameters to remove (-want +got):\n%s", diff)
			}
		})
	}
}

// sameCredential compares the exported fields; the removal lists are
// checked through their accessors.
func sameCredential(a, b Credential) bool {
	return a.Kind == b.Kind && a.Value == b.Value && a.Header == b.Header && a.QueryParam == b.QueryParam
}

func TestErrorsNeverHoldTheSecret(t *testing.T) {
	const secret = "s3cr3t-VALUE"
	inputs := []struct {
		name    string
		op      *catalog.CompiledOperation
		headers map[string]string
		query   string
	}{
		{"malformed bearer", op(oauth2, nil, nil), map[string]string{"authorization": "Bearer " + secret + " x"}, ""},
		{"other scheme", op(oauth2, nil, nil), map[string]string{"authorization": "Basic " + secret}, ""},
		{"bad escape", op(apiKey, nil, nil), nil, "api_key=" + secret + "%zz"},
		{"ambiguous", op(apiKey, nil, nil), map[string]string{"x-api-key": secret}, "api_key=" + secret + "2"},
		{"joined keys", op(apiKey, nil, nil), map[string]string{"x-api-key": secret + "," + secret}, ""},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			_, err := Read(in.op, in.headers, in.query)
			if err == nil {
				t.Fatal("Read accepted the input")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
}

func TestCredentialNeverFormatsItsValue(t *testing.T) {
	const secret = "s3cr3t-VALUE"
	for _, c := range []Credential{
		{Kind: KindBearer, Value: secret, Header: "authorization"},
		{Kind: KindAPIKey, Value: secret, QueryParam: "api_key"},
	} {
		var logBuf bytes.Buffer
		slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("read", "credential", c)
		js, err := json.Marshal(map[string]any{"c": c})
		if err != nil {
			t.Fatal(err)
		}
		outputs := map[string]string{
			"%v":     fmt.Sprintf("%v", c),
			"%+v":    fmt.Sprintf("%+v", c),
			"%#v":    fmt.Sprintf("%#v", c),
			"%s":     fmt.Sprintf("%s", c),
			"%q":     fmt.Sprintf("%q", c),
			"%x":     fmt.Sprintf("%x", c),
			"%d":     fmt.Sprintf("%d", c),
			"ptr":    fmt.Sprintf("%+v", &c),
			"nested": fmt.Sprintf("%+v", []Credential{c}),
			"slog":   logBuf.String(),
			"json":   string(js),
			"error":  fmt.Errorf("verify %v: failed", c).Error(),
		}
		for name, out := range outputs {
			if strings.Contains(out, secret) {
				t.Errorf("%s printed the secret: %s", name, out)
			}
			if !strings.Contains(out, c.Kind.String()) {
				t.Errorf("%s = %q, want the kind named", name, out)
			}
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"Bearer abc", "abc", nil},
		{"bEaReR a-b.c_d~e+f/g==", "a-b.c_d~e+f/g==", nil},
		{"Bearer " + jwt, jwt, nil},
		{"Bearer", "", ErrMalformed},
		{"Bearer ", "", ErrMalformed},
		{"Bearer\t", "", ErrMalformed},
		{"Bearer a\tb", "", ErrMalformed},
		{"Bearer \"abc\"", "", ErrMalformed},
		{"Bearer abc=def", "", ErrMalformed},
		{"Bearer\tabc", "", ErrUnsupportedScheme},
		{"Token abc", "", ErrUnsupportedScheme},
		{"Basic dXNlcjpwYXNz", "", ErrUnsupportedScheme},
		{"", "", ErrUnsupportedScheme},
		{" Bearer abc", "", ErrUnsupportedScheme},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := BearerToken(tt.in)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) || got != tt.want {
				t.Fatalf("BearerToken(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindNone: "none", KindBearer: "bearer", KindAPIKey: "apiKey", Kind(9): "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	cases := []struct {
		name    string
		headers map[string]string
		query   string
	}{
		{"bearer", map[string]string{"authorization": "Bearer " + jwt, "user-agent": "bench", ":path": "/pets"}, "limit=10"},
		{"key header", map[string]string{"x-api-key": "pcl_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM", "user-agent": "bench"}, "limit=10"},
		{"key query", map[string]string{"user-agent": "bench"}, "limit=10&api_key=pcl_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"},
	}
	o := op(both, nil, nil)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Read(o, c.headers, c.query); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
