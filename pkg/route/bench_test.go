package route

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// benchSnapshot is a catalog of n APIs with ten operations each: four in
// five on one of 50 hosts, the rest on every host, under two-segment base
// paths.
func benchSnapshot(tb testing.TB, n int) *catalog.Snapshot {
	tb.Helper()
	var b strings.Builder
	for i := range n {
		hosts := fmt.Sprintf("[api%d.example.com]", i%50)
		if i%5 == 4 {
			hosts = "[]"
		}
		fmt.Fprintf(&b, `---
apiVersion: portcullis.dev/v1alpha1
kind: API
metadata: {name: api-%d}
spec:
  version: v1
  basePath: /svc-%d/v1
  hosts: %s
  security: [none]
  operations:
    - {method: GET, path: /}
    - {method: GET, path: /items}
    - {method: POST, path: /items}
    - {method: GET, path: /items/search}
    - {method: GET, path: "/items/{id}"}
    - {method: PUT, path: "/items/{id}"}
    - {method: PATCH, path: "/items/{id}"}
    - {method: DELETE, path: "/items/{id}"}
    - {method: GET, path: "/items/{id}/parts/*"}
    - {method: GET, path: "/files/**"}
`, i, i, hosts)
	}
	docs, err := catalog.Decode("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := catalog.Build(docs)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

// BenchmarkMatch measures one resolution against a 1000-API catalog.
func BenchmarkMatch(b *testing.B) {
	tab := New(benchSnapshot(b, 1000))
	cases := []struct{ name, host, method, path string }{
		{"literal", "api17.example.com", "GET", "/svc-517/v1/items"},
		{"literal with query", "api17.example.com:443", "GET", "/svc-517/v1/items?api_key=abc&limit=10"},
		{"param", "api17.example.com", "GET", "/svc-517/v1/items/12345"},
		{"deep with backtracking", "api17.example.com", "GET", "/svc-517/v1/items/search/parts/x"},
		{"rest", "api17.example.com", "GET", "/svc-517/v1/files/a/b/c/d.txt"},
		{"any host", "other.example.com", "DELETE", "/svc-999/v1/items/7"},
		{"encoded literal", "api17.example.com", "GET", "/svc-517/v1/%69tems"},
		{"HEAD as GET", "api17.example.com", "HEAD", "/svc-517/v1/items/1"},
		{"refused path", "api17.example.com", "GET", "/svc-517/v1/items/../admin"},
		{"no API", "api17.example.com", "GET", "/nowhere/at/all"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tab.Match(c.host, c.method, c.path)
			}
		})
	}
}

// BenchmarkNew measures indexing a 1000-API catalog, paid once per load.
func BenchmarkNew(b *testing.B) {
	snap := benchSnapshot(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		New(snap)
	}
}
