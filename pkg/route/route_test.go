package route

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

func loadSnapshot(tb testing.TB, file string) *catalog.Snapshot {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	docs, err := catalog.Decode(file, data)
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := catalog.Build(docs)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

func testTable(tb testing.TB) *Table {
	tb.Helper()
	return New(loadSnapshot(tb, "testdata/catalog.yaml"))
}

type matchCase struct {
	name   string
	host   string
	method string
	path   string
	// api and op name the expected match: the API's metadata name and the
	// operation's "METHOD /template".
	api    string
	op     string
	params []Param
	query  string
	err    error
	reason string // for ErrBadPath
}

var matchCases = []matchCase{
	// API resolution.
	{name: "exact base path and literal", host: "api.example.com", method: "GET", path: "/petstore/v1/pets", api: "petstore", op: "GET /pets"},
	{name: "host with port", host: "api.example.com:8443", method: "GET", path: "/petstore/v1/pets", api: "petstore", op: "GET /pets"},
	{name: "host in upper case", host: "API.Example.Com", method: "GET", path: "/petstore/v1/pets", api: "petstore", op: "GET /pets"},
	{name: "host with trailing dot", host: "api.example.com.", method: "GET", path: "/petstore/v1/pets", api: "petstore", op: "GET /pets"},
	{name: "IPv6 host with port", host: "[2001:db8::1]:443", method: "GET", path: "/petstore/v1/pets", api: "petstore", op: "GET /pets"},
	{name: "catalog host in mixed case", host: "order.example.com", method: "GET", path: "/order/a", api: "order", op: "GET /a"},
	{name: "other host falls to any-host APIs", host: "other.example.com", method: "GET", path: "/petstore/v1/pets", api: "petstore-legacy", op: "GET /v1/{anything}", params: []Param{{"anything", "pets"}}},
	{name: "no host", host: "", method: "GET", path: "/status", api: "catch-all", op: "GET /status"},
	{name: "base path boundary: v10 is not v1", host: "api.example.com", method: "GET", path: "/petstore/v10/pets", api: "petstore-v10", op: "GET /**"},
	{name: "base path itself", host: "api.example.com", method: "GET", path: "/petstore/v1", api: "petstore", op: "GET /"},
	{name: "base path with trailing slash", host: "api.example.com", method: "GET", path: "/petstore/v1/", api: "petstore", op: "GET /"},
	{name: "longer any-host base path beats shorter host base path", host: "api.example.com", method: "GET", path: "/petstore/v10", api: "petstore-v10", op: "GET /**"},
	{name: "shorter base path when the longer one does not match", host: "x", method: "GET", path: "/petstore/v2", api: "petstore-legacy", op: "GET /{anything}", params: []Param{{"anything", "v2"}}},
	{name: "root base path", host: "x", method: "GET", path: "/", api: "catch-all", op: "GET /**"},
	{name: "root base path, deep", host: "x", method: "GET", path: "/a/b/c", api: "catch-all", op: "GET /**"},
	{name: "prefix of a base path segment is not it", host: "x", method: "GET", path: "/pet", api: "catch-all", op: "GET /**"},
	{name: "encoded base path segment", host: "api.example.com", method: "GET", path: "/pet%73tore/v1/pets", api: "petstore", op: "GET /pets"},

	// Operation precedence.
	{name: "literal beats param", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/mine", api: "petstore", op: "GET /pets/mine"},
	{name: "param", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/42", api: "petstore", op: "GET /pets/{id}", params: []Param{{"id", "42"}}},
	{name: "param keeps its encoding", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/a%20b", api: "petstore", op: "GET /pets/{id}", params: []Param{{"id", "a%20b"}}},
	{name: "param beats wildcard at the same depth", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/42/toys/ball/red", api: "petstore", op: "GET /pets/{id}/toys/{toy}/{part}", params: []Param{{"id", "42"}, {"toy", "ball"}, {"part", "red"}}},
	{name: "wildcard", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/42/toys/ball", api: "petstore", op: "GET /pets/{id}/toys/*", params: []Param{{"id", "42"}}},
	{name: "backtracks from param to wildcard", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/42/photos", api: "petstore", op: "GET /pets/*/photos"},
	{name: "literal under rest", host: "api.example.com", method: "GET", path: "/petstore/v1/files/public/a.txt", api: "petstore", op: "GET /files/public/{name}", params: []Param{{"name", "a.txt"}}},
	{name: "rest", host: "api.example.com", method: "GET", path: "/petstore/v1/files/private/a/b", api: "petstore", op: "GET /files/**"},
	{name: "rest matches nothing", host: "api.example.com", method: "GET", path: "/petstore/v1/files", api: "petstore", op: "GET /files/**"},
	{name: "rest matches a trailing slash", host: "api.example.com", method: "GET", path: "/petstore/v1/files/", api: "petstore", op: "GET /files/**"},
	{name: "literal left beats literal right", host: "order.example.com", method: "GET", path: "/order/a/b/c", api: "order", op: "GET /a/{x}/c", params: []Param{{"x", "b"}}},
	{name: "backtracks when the left literal's subtree fails", host: "order.example.com", method: "GET", path: "/order/a/b/d", api: "order", op: "GET /a/**"},
	{name: "param then literal", host: "order.example.com", method: "GET", path: "/order/z/b/c", api: "order", op: "GET /{y}/b/c", params: []Param{{"y", "z"}}},
	{name: "param then rest", host: "order.example.com", method: "GET", path: "/order/z/b/d/e", api: "order", op: "GET /{y}/b/**", params: []Param{{"y", "z"}}},
	{name: "ending beats rest", host: "order.example.com", method: "GET", path: "/order/a", api: "order", op: "GET /a"},
	{name: "wildcards", host: "order.example.com", method: "GET", path: "/order/x/y/z", api: "order", op: "GET /*/*/*"},
	{name: "literal with a colon", host: "api.example.com", method: "POST", path: "/petstore/v1/pets:batchGet", api: "petstore", op: "POST /pets:batchGet"},
	{name: "encoded colon matches the literal", host: "api.example.com", method: "POST", path: "/petstore/v1/pets%3AbatchGet", api: "petstore", op: "POST /pets:batchGet"},
	{name: "encoded letters match the literal", host: "api.example.com", method: "GET", path: "/petstore/v1/%61dmin", api: "petstore", op: "GET /admin"},
	{name: "lower-case escapes", host: "api.example.com", method: "GET", path: "/petstore/v1/%61%64min", api: "petstore", op: "GET /admin"},
	{name: "encoded literal in the template", host: "api.example.com", method: "GET", path: "/petstore/v1/caf%c3%a9", api: "petstore", op: "GET /caf%C3%A9"},
	{name: "trailing slash is the same operation", host: "api.example.com", method: "GET", path: "/petstore/v1/admin/", api: "petstore", op: "GET /admin"},
	{name: "two params at root", host: "x", method: "PUT", path: "/p/q", api: "catch-all", op: "PUT /{a}/{b}", params: []Param{{"a", "p"}, {"b", "q"}}},

	// Methods.
	{name: "method selects the operation", host: "api.example.com", method: "DELETE", path: "/petstore/v1/pets/7", api: "petstore", op: "DELETE /pets/{id}", params: []Param{{"id", "7"}}},
	{name: "HEAD operation", host: "api.example.com", method: "HEAD", path: "/petstore/v1/health", api: "petstore", op: "HEAD /health"},
	{name: "HEAD falls back to GET", host: "api.example.com", method: "HEAD", path: "/petstore/v1/pets/7", api: "petstore", op: "GET /pets/{id}", params: []Param{{"id", "7"}}},
	{name: "no operation for the method", host: "api.example.com", method: "PUT", path: "/petstore/v1/pets", api: "petstore", err: ErrNoOperation},
	{name: "lower-case method", host: "api.example.com", method: "get", path: "/petstore/v1/pets", api: "petstore", err: ErrNoOperation},
	{name: "unknown method", host: "api.example.com", method: "BREW", path: "/petstore/v1/pets", api: "petstore", err: ErrNoOperation},
	{name: "no operation for the path", host: "api.example.com", method: "POST", path: "/petstore/v1/pets/7", api: "petstore", err: ErrNoOperation},
	{name: "param needs a segment", host: "api.example.com", method: "DELETE", path: "/petstore/v1/pets/", api: "petstore", err: ErrNoOperation},
	{name: "no operation at the root API", host: "x", method: "POST", path: "/nowhere", api: "catch-all", err: ErrNoOperation},

	// Query.
	{name: "query split off", host: "api.example.com", method: "GET", path: "/petstore/v1/pets?api_key=k&x=1", api: "petstore", op: "GET /pets", query: "api_key=k&x=1"},
	{name: "empty query", host: "api.example.com", method: "GET", path: "/petstore/v1/pets?", api: "petstore", op: "GET /pets"},
	{name: "query may hold what a path may not", host: "api.example.com", method: "GET", path: "/petstore/v1/pets?a=..%2F;%25", api: "petstore", op: "GET /pets", query: "a=..%2F;%25"},
	{name: "second question mark is query", host: "api.example.com", method: "GET", path: "/petstore/v1/pets??x", api: "petstore", op: "GET /pets", query: "?x"},

	// Refused paths.
	{name: "dot-dot segment", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/../admin", reason: ReasonDotSegment},
	{name: "dot-dot at the end", host: "api.example.com", method: "GET", path: "/petstore/v1/..", reason: ReasonDotSegment},
	{name: "dot segment", host: "api.example.com", method: "GET", path: "/petstore/v1/./admin", reason: ReasonDotSegment},
	{name: "dot before trailing slash", host: "api.example.com", method: "GET", path: "/petstore/v1/./", reason: ReasonDotSegment},
	{name: "double slash", host: "api.example.com", method: "GET", path: "/petstore/v1//admin", reason: ReasonEmptySegment},
	{name: "double trailing slash", host: "api.example.com", method: "GET", path: "/petstore/v1/admin//", reason: ReasonEmptySegment},
	{name: "leading double slash", host: "api.example.com", method: "GET", path: "//petstore/v1/admin", reason: ReasonEmptySegment},
	{name: "encoded slash", host: "api.example.com", method: "GET", path: "/petstore/v1/pets%2F..%2Fadmin", reason: ReasonEncodedSlash},
	{name: "encoded slash lower case", host: "api.example.com", method: "GET", path: "/petstore/v1/files/a%2fb", reason: ReasonEncodedSlash},
	{name: "encoded backslash", host: "api.example.com", method: "GET", path: "/petstore/v1/pets%5Cadmin", reason: ReasonEncodedSlash},
	{name: "encoded dots", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/%2e%2E/admin", reason: ReasonEncodedDot},
	{name: "double encoding", host: "api.example.com", method: "GET", path: "/petstore/v1/pets/%252e%252e/admin", reason: ReasonEncodedPercent},
	{name: "backslash", host: "api.example.com", method: "GET", path: "/petstore/v1/pets\\..\\admin", reason: ReasonBackslash},
	{name: "semicolon", host: "api.example.com", method: "GET", path: "/petstore/v1/admin;jsessionid=1", reason: ReasonSemicolon},
	{name: "encoded semicolon", host: "api.example.com", method: "GET", path: "/petstore/v1/admin%3Bx", reason: ReasonSemicolon},
	{name: "NUL", host: "api.example.com", method: "GET", path: "/petstore/v1/admin\x00.json", reason: ReasonControl},
	{name: "encoded NUL", host: "api.example.com", method: "GET", path: "/petstore/v1/admin%00.json", reason: ReasonControl},
	{name: "encoded newline", host: "api.example.com", method: "GET", path: "/petstore/v1/admin%0a", reason: ReasonControl},
	{name: "DEL", host: "api.example.com", method: "GET", path: "/petstore/v1/\x7f", reason: ReasonControl},
	{name: "space", host: "api.example.com", method: "GET", path: "/petstore/v1/a b", reason: ReasonNotASCII},
	{name: "raw UTF-8", host: "api.example.com", method: "GET", path: "/petstore/v1/café", reason: ReasonNotASCII},
	{name: "fragment", host: "api.example.com", method: "GET", path: "/petstore/v1/pets#x", reason: ReasonFragment},
	{name: "truncated escape", host: "api.example.com", method: "GET", path: "/petstore/v1/pets%4", reason: ReasonBadEscape},
	{name: "non-hex escape", host: "api.example.com", method: "GET", path: "/petstore/v1/pets%zz", reason: ReasonBadEscape},
	{name: "relative path", host: "api.example.com", method: "GET", path: "petstore/v1/pets", reason: ReasonNotAbsolute},
	{name: "asterisk form", host: "api.example.com", method: "OPTIONS", path: "*", reason: ReasonNotAbsolute},
	{name: "absolute URI form", host: "api.example.com", method: "GET", path: "http://api.example.com/petstore/v1/pets", reason: ReasonNotAbsolute},
	{name: "empty path", host: "api.example.com", method: "GET", path: "", reason: ReasonNotAbsolute},
	{name: "empty path with query", host: "api.example.com", method: "GET", path: "?x=1", reason: ReasonNotAbsolute, query: "x=1"},
}

func TestMatch(t *testing.T) {
	tab := testTable(t)
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tab.Match(tc.host, tc.method, tc.path)
			checkMatch(t, tc, m, m.Params(), err)
		})
	}
}

func checkMatch(t *testing.T, tc matchCase, m Match, params []Param, err error) {
	t.Helper()
	if tc.reason != "" {
		var pe *PathError
		if !errors.As(err, &pe) || pe.Reason != tc.reason || !errors.Is(err, ErrBadPath) {
			t.Fatalf("err = %v, want a path refusal for %q", err, tc.reason)
		}
		if m.API != nil || m.Op != nil {
			t.Errorf("a refused path matched %v", m.Op)
		}
		return
	}
	if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
		t.Fatalf("err = %v, want %v", err, tc.err)
	}
	if got := apiName(m.API); got != tc.api {
		t.Errorf("API = %q, want %q", got, tc.api)
	}
	gotOp := ""
	if m.Op != nil {
		gotOp = m.Op.Name
		if m.Op.API != m.API {
			t.Errorf("operation %s belongs to another API", gotOp)
		}
	}
	if gotOp != tc.op {
		t.Errorf("operation = %q, want %q", gotOp, tc.op)
	}
	if diff := cmp.Diff(tc.params, params); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if m.Query != tc.query {
		t.Errorf("query = %q, want %q", m.Query, tc.query)
	}
}

func apiName(a *catalog.CompiledAPI) string {
	if a == nil {
		return ""
	}
	return a.Name
}

func TestMatchWithoutAnyHostAPIs(t *testing.T) {
	docs, err := catalog.Decode("one.yaml", []byte(`apiVersion: portcullis.dev/v1alpha1
kind: API
metadata: {name: only}
spec:
  version: v1
  basePath: /only
  hosts: [a.test]
  security: [none]
  operations: [{method: GET, path: /x}]
`))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.Build(docs)
	if err != nil {
		t.Fatal(err)
	}
	tab := New(snap)
	tests := []struct {
		name, host, path string
		err              error
	}{
		{"listed host", "a.test", "/only/x", nil},
		{"other host", "b.test", "/only/x", ErrNoAPI},
		{"no host", "", "/only/x", ErrNoAPI},
		{"outside the base path", "a.test", "/other", ErrNoAPI},
		{"base path prefix", "a.test", "/onlyx", ErrNoAPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tab.Match(tt.host, "GET", tt.path)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err == ErrNoAPI && m.API != nil {
				t.Errorf("ErrNoAPI with API %s", m.API.Name)
			}
		})
	}
	if tab.Snapshot() != snap {
		t.Error("Snapshot is not the catalog the table was built from")
	}
}

func TestMatchOnEmptyCatalog(t *testing.T) {
	snap, err := catalog.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(snap).Match("a", "GET", "/"); !errors.Is(err, ErrNoAPI) {
		t.Fatalf("err = %v, want ErrNoAPI", err)
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"api.example.com", "api.example.com"},
		{"API.example.com:443", "api.example.com"},
		{"api.example.com.", "api.example.com"},
		{"api.example.com.:80", "api.example.com"},
		{"[2001:DB8::1]:8080", "[2001:db8::1]"},
		{"[2001:db8::1]", "[2001:db8::1]"},
		{"2001:db8::1", "2001:db8::1"},
		{"", ""},
		{":80", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := normalizeHost(tt.in); got != tt.want {
				t.Errorf("normalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
