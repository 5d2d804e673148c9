package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Sizes of the generated catalog: a large API-manager tenant.
const (
	benchAPIs          = 10_000
	benchApplications  = 100_000
	benchSubscriptions = 2 * benchApplications // two per application
	benchShards        = 10                    // files per kind, as a ConfigMap might split them
)

// writeBenchCatalog writes a catalog of benchAPIs APIs (three operations
// each), benchApplications applications (an OAuth client and an API key
// each) and benchSubscriptions subscriptions into dir.
func writeBenchCatalog(tb testing.TB, dir string) {
	tb.Helper()
	var b strings.Builder
	flush := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		b.Reset()
	}
	doc := func(kind, name, spec string) {
		fmt.Fprintf(&b, "---\napiVersion: portcullis.dev/v1alpha1\nkind: %s\nmetadata:\n  name: %s\nspec:\n%s", kind, name, spec)
	}
	doc(KindPolicy, "gold", "  scope: subscription\n  limits:\n    - requests: 5000\n      per: 1m\n  burst: {requests: 50, per: 1s}\n")
	doc(KindPolicy, "per-app", "  scope: application\n  limits: [{requests: 50, per: 1s, algorithm: token-bucket}]\n")
	doc(KindPolicy, "per-api", "  scope: api\n  limits: [{requests: 10000, per: 1m}]\n  conditionGroups:\n    - description: partners\n      conditions: [{ip: {cidr: 198.51.100.0/24}}]\n      limits: [{requests: 50000, per: 1m}]\n")
	doc(KindPolicy, "writes", "  scope: resource\n  limits: [{requests: 10, per: 1m}]\n")
	doc(KindIdentityProvider, "corp", "  issuer: https://idp.example.com\n  jwt: {audiences: [apis]}\n")
	flush("00-policies.yaml")

	for shard := range benchShards {
		for i := shard; i < benchAPIs; i += benchShards {
			doc(KindAPI, fmt.Sprintf("api-%d", i), fmt.Sprintf(
				"  version: v1\n  basePath: /api-%d/v1\n  hosts: [api%d.example.com]\n  identityProviders: [corp]\n  security: [oauth2, apiKey]\n  apiKey: {headers: [x-api-key]}\n  policy: per-api\n  operations:\n    - method: GET\n      path: /items\n    - method: GET\n      path: /items/{id}\n      scopes: [items:read]\n    - method: POST\n      path: /items\n      policy: writes\n",
				i, i%50))
		}
		flush(fmt.Sprintf("10-apis-%02d.yaml", shard))
	}
	for shard := range benchShards {
		for i := shard; i < benchApplications; i += benchShards {
			sum := sha256.Sum256([]byte(fmt.Sprintf("key-%d", i)))
			doc(KindApplication, fmt.Sprintf("app-%d", i), fmt.Sprintf(
				"  owner: owner-%d\n  policy: per-app\n  oauthClients:\n    - clientId: client-%d\n      keyType: PRODUCTION\n  apiKeys:\n    - id: key-%d\n      sha256: %s\n      keyType: PRODUCTION\n",
				i%1000, i, i, hex.EncodeToString(sum[:])))
		}
		flush(fmt.Sprintf("20-apps-%02d.yaml", shard))
	}
	for shard := range benchShards {
		for i := shard; i < benchApplications; i += benchShards {
			for k, api := range []int{i % benchAPIs, (i + benchAPIs/2) % benchAPIs} {
				doc(KindSubscription, fmt.Sprintf("app-%d.%d", i, k), fmt.Sprintf(
					"  application: app-%d\n  api: api-%d\n  policy: gold\n", i, api))
			}
		}
		flush(fmt.Sprintf("30-subscriptions-%02d.yaml", shard))
	}
}

// BenchmarkLoadLargeCatalog measures a full load (read, decode, validate,
// compile, index) of a 310,000-document catalog: what each replica pays at
// start and on every reload.
func BenchmarkLoadLargeCatalog(b *testing.B) {
	dir := b.TempDir()
	writeBenchCatalog(b, dir)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var s *Snapshot
	for b.Loop() {
		var err error
		if s, err = LoadPath(ctx, dir); err != nil {
			b.Fatal(err)
		}
	}
	if len(s.apis) != benchAPIs || len(s.apps) != benchApplications || len(s.subs) != benchSubscriptions {
		b.Fatalf("loaded %d APIs, %d applications, %d subscriptions", len(s.apis), len(s.apps), len(s.subs))
	}
}

// BenchmarkSnapshotLookups measures what a request pays to find its
// credential, subscription and policy: map reads, no allocation.
func BenchmarkSnapshotLookups(b *testing.B) {
	s, err := LoadPath(context.Background(), "testdata/catalog.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var hash [32]byte
	hex.Decode(hash[:], []byte("3f0c1dc6b7a4c8b8ce0a8e1e2b0f6d1e4c5a7b9d2e3f40516273849a5b6c7d8e"))
	b.ReportAllocs()
	for b.Loop() {
		app, _, ok1 := s.ApplicationByKeyHash(hash)
		_, _, ok2 := s.ApplicationByClientID("mobile-client")
		api, ok3 := s.APIAt("api.example.com", "/petstore/v1")
		sub, ok4 := s.Subscription(app.Name, api.Name)
		_, ok5 := sub.Policy.LimitsFor(DefaultGroup)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			b.Fatal("lookup failed")
		}
	}
}
