package credential

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer " + jwt, "Bearer", "Bearer  a==", "Basic x", "Bearer a=b", "", "Bearer\t", "BEARER ~+/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := BearerToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedScheme) {
				t.Fatalf("BearerToken(%q): unexpected error %v", s, err)
			}
			return
		}
		if !isB64Token(tok) || !strings.HasSuffix(s, tok) || !strings.EqualFold(s[:6], "bearer") {
			t.Fatalf("BearerToken(%q) = %q, not a b64token at the end of a Bearer credential", s, tok)
		}
		// Round trip: the canonical form reads back the same token.
		if again, err := BearerToken("Bearer " + tok); err != nil || again != tok {
			t.Fatalf("canonical form of %q read back as %q, %v", tok, again, err)
		}
	})
}

func FuzzRead(f *testing.F) {
	f.Add("Bearer abc", "k1", "api_key=k1&x=1")
	f.Add("", "k1", "api_key=k2")
	f.Add("Basic x", "", "")
	f.Add("", "", "api%5Fkey=k&api_key")
	f.Add("k1", "", "api_key=a%2Bb&api_key=a%2bb")
	o := op(both, []string{"x-api-key", "authorization"}, []string{"api_key", "key"})
	f.Fuzz(func(t *testing.T, authorization, key, query string) {
		headers := map[string]string{"user-agent": "fuzz"}
		if authorization != "" {
			headers["authorization"] = authorization
		}
		if key != "" {
			headers["x-api-key"] = key
		}
		c, err := Read(o, headers, query)
		if err != nil {
			if !errors.Is(err, identity.ErrInvalid) {
				t.Fatalf("error %v is not identity.ErrInvalid", err)
			}
			return
		}
		switch c.Kind {
		case KindBearer:
			if tok, err := BearerToken(headers["authorization"]); err != nil || tok != c.Value {
				t.Fatalf("bearer %q is not the authorization header's token", c.Value)
			}
		case KindAPIKey:
			if checkKey(c.Value) != nil {
				t.Fatalf("API key %q is not well formed", c.Value)
			}
			if c.Header != "" && headers[c.Header] != c.Value {
				t.Fatalf("API key %q is not header %s's value", c.Value, c.Header)
			}
			if c.QueryParam != "" && !slices.Contains(c.QueryParamsToRemove(), c.QueryParam) {
				t.Fatalf("query parameter %s is not removed", c.QueryParam)
			}
		default:
			t.Fatalf("an operation needing a credential got %v", c.Kind)
		}
		if c.Header != "" && !slices.Contains(c.HeadersToRemove(), c.Header) {
			t.Fatalf("header %s is not removed", c.Header)
		}
		if (c.Header == "") == (c.QueryParam == "") {
			t.Fatalf("credential from header %q and query parameter %q", c.Header, c.QueryParam)
		}
		other := c
		other.Value = "x" + c.Value
		if c.String() != other.String() {
			t.Fatalf("String() depends on the value")
		}
	})
}

// FuzzQueryRoundTrip holds that any well-formed key, encoded the way
// net/url encodes a query, reads back unchanged, whatever else the query
// holds.
func FuzzQueryRoundTrip(f *testing.F) {
	f.Add("pcl_live_abc", "x", "y")
	f.Add("a+b=c&d", "api_key2", "=&")
	f.Add("%41", "", "")
	o := op(apiKey, nil, nil)
	f.Fuzz(func(t *testing.T, key, otherName, otherValue string) {
		if checkKey(key) != nil {
			return
		}
		v := url.Values{"api_key": {key}}
		if otherName != "api_key" {
			v.Set(otherName, otherValue)
		}
		c, err := Read(o, nil, v.Encode())
		if err != nil {
			t.Fatalf("Read(%q): %v", v.Encode(), err)
		}
		if c.Kind != KindAPIKey || c.Value != key || c.QueryParam != "api_key" {
			t.Fatalf("Read(%q) = %s %q, want the key %q", v.Encode(), c.Kind, c.Value, key)
		}
		if !slices.Equal(c.QueryParamsToRemove(), []string{"api_key"}) {
			t.Fatalf("remove %v", c.QueryParamsToRemove())
		}
	})
}
