package suite

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
	"github.com/portcullis-dev/portcullis/internal/idptest"
	"github.com/portcullis-dev/portcullis/pkg/apikey"
)

// authzCatalog is one API accepting OAuth2 tokens and API keys, one
// application holding the test provider's three clients and one API key
// (by hash), subscribed ACTIVE: every request of the suite is allowed, the
// path every legitimate request takes. The token cache keeps entries for
// minutes, as a production catalog would, so cached tokens stay cached
// for the whole run.
const authzCatalog = `apiVersion: portcullis.dev/v1alpha1
kind: IdentityProvider
metadata: {name: bench-idp}
spec:
  issuer: %[1]s
  jwt:
    audiences: [%[2]s, %[3]s]
    algorithms: [RS256, ES256]
    clockSkew: 30s
    requireType: at+jwt
  introspection:
    endpoint: %[4]s
    clientId: %[5]s
    clientSecretFile: %[6]s
  cache: {maxTTL: 5m, negativeTTL: 10s, staleIfError: 1m}
---
apiVersion: portcullis.dev/v1alpha1
kind: API
metadata: {name: petstore}
spec:
  version: v1
  basePath: /petstore/v1
  hosts: [api.example.com]
  identityProviders: [bench-idp]
  security: [oauth2, apiKey]
  apiKey: {headers: [x-api-key]}
  operations:
    - {method: GET, path: /pets, scopes: [pets:read]}
    - {method: GET, path: "/pets/{id}", scopes: [pets:read]}
    - {method: POST, path: /pets, scopes: [pets:write]}
---
apiVersion: portcullis.dev/v1alpha1
kind: Application
metadata: {name: bench-app}
spec:
  owner: team-bench
  oauthClients:
    - {clientId: %[7]s, keyType: PRODUCTION}
    - {clientId: %[8]s, keyType: PRODUCTION}
    - {clientId: %[9]s, keyType: PRODUCTION}
  apiKeys:
    - {id: bench-key, sha256: %[10]x, keyType: PRODUCTION}
---
apiVersion: portcullis.dev/v1alpha1
kind: Subscription
metadata: {name: bench-app.petstore}
spec: {application: bench-app, api: petstore, policy: gold, state: ACTIVE}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits: [{requests: 1000000000, per: 1h}]
`

// authzCheck is the Check Envoy sends for GET /petstore/v1/pets/42 with
// the headers a browser or SDK typically adds, plus the credential.
func authzCheck(credHeader, credValue string) *authv3.CheckRequest {
	return loadgen.CheckRequest("GET", "api.example.com", "/petstore/v1/pets/42", map[string]string{
		credHeader:          credValue,
		"accept":            "application/json",
		"user-agent":        "portcullis-bench/1.0",
		"x-forwarded-proto": "https",
		"x-request-id":      "0b5e9a1c-6f0e-4f3e-9d4a-2c1b7e8f9a01",
	})
}

// BenchmarkAuthzSuite compares authz's Check with a no-op ext_authz
// server, interleaved round by round, for the credentials an API gateway
// sees: an API key, a JWT it has verified before (a cache hit), an opaque
// token it has introspected before (a cache hit), and a JWT it has never
// seen, so that every call verifies an RS256 signature. The identity
// provider is the real oidc-provider; the fresh JWTs are the provider's
// own token re-signed with the provider's key under distinct jti, because
// its token endpoint mints a few hundred a second at best. Run it with
// `make bench`; -benchtime 1x is enough, each run does BENCH_ROUNDS rounds
// of BENCH_REQUESTS calls per target (BENCH_FRESH_REQUESTS for the fresh
// JWTs, each of which is signed up front).
func BenchmarkAuthzSuite(b *testing.B) {
	rounds := envInt("BENCH_ROUNDS", 5)
	perRound := envInt("BENCH_REQUESTS", 20000)
	concurrency := envInt("BENCH_CONCURRENCY", 64)
	freshPerRound := envInt("BENCH_FRESH_REQUESTS", min(perRound, 5000))
	const warmup, freshWarmup = 2000, 500
	ctx := context.Background()

	bins := buildBinaries(b, "./cmd/authz", "./bench/cmd/noop")
	// Tokens outlive the run, so that no cached token expires mid-run and
	// the minted copies (which keep the template's exp) stay valid.
	idp := idptest.Start(b, idptest.WithTokenTTL(2*time.Hour))
	key, err := apikey.Generate(rand.Reader, apikey.EnvLive)
	if err != nil {
		b.Fatal(err)
	}
	secret := filepath.Join(b.TempDir(), "introspection-secret")
	if err := os.WriteFile(secret, []byte(idptest.Secret(idptest.ClientPortcullis)+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	catDir := b.TempDir()
	cat := fmt.Sprintf(authzCatalog, idp.Issuer(),
		idptest.Audience(idptest.ClientRS256), idptest.Audience(idptest.ClientES256),
		idp.IntrospectionURL(), idptest.ClientPortcullis, secret,
		idptest.ClientRS256, idptest.ClientES256, idptest.ClientOpaque, key.Hash())
	if err := os.WriteFile(filepath.Join(catDir, "catalog.yaml"), []byte(cat), 0o600); err != nil {
		b.Fatal(err)
	}

	noopAddr := addr(b)
	startProcess(b, filepath.Join(bins, "noop"), noopAddr, nil, "-addr", noopAddr)
	authzAddr, authzHTTP := addr(b), addr(b)
	startProcess(b, filepath.Join(bins, "authz"), authzAddr,
		[]string{"PORTCULLIS_DRAIN_DELAY=0s", "PORTCULLIS_LOG_LEVEL=warn"},
		"-grpc-addr", authzAddr, "-http-addr", authzHTTP, "-catalog", catDir)

	jwt, err := idp.Token(ctx, idptest.ClientRS256, idptest.ScopeRead)
	if err != nil {
		b.Fatal(err)
	}
	opaque, err := idp.Token(ctx, idptest.ClientOpaque, idptest.ScopeRead)
	if err != nil {
		b.Fatal(err)
	}
	freshCalls := freshWarmup + rounds*freshPerRound
	began := time.Now()
	minted := mintLike(b, jwt, idp.Key(b, "RS256"), freshCalls)
	mintTime := time.Since(began)
	fresh := make([]proto.Message, len(minted))
	for i, tok := range minted {
		fresh[i] = authzCheck("authorization", "Bearer "+tok)
	}

	svc := loadgen.AuthorizationService()
	target := func(name, addr string, msg proto.Message) loadgen.Target {
		return loadgen.Target{
			Name: name, Addr: addr, Messages: []proto.Message{msg}, Requests: perRound, Warmup: warmup,
			Concurrency: concurrency, NewCaller: svc.NewCaller, Classify: svc.Classify,
		}
	}
	apiKeyReq := authzCheck("x-api-key", key.Plaintext())
	freshTarget := target("authz, fresh JWT (RS256)", authzAddr, fresh[0])
	freshTarget.Messages = fresh
	freshTarget.Requests, freshTarget.Warmup = freshPerRound, freshWarmup
	freshTarget.NewCaller = sendEachOnce(fresh, svc.NewCaller)

	before := metrics(b, authzHTTP)
	idpBefore := idp.Counts(b)
	b.ResetTimer()
	rep, err := loadgen.Interleave(ctx, rounds,
		target("no-op", noopAddr, apiKeyReq),
		target("authz, API key", authzAddr, apiKeyReq),
		target("authz, cached JWT (RS256)", authzAddr, authzCheck("authorization", "Bearer "+jwt)),
		target("authz, cached introspection", authzAddr, authzCheck("authorization", "Bearer "+opaque)),
		freshTarget)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	after := metrics(b, authzHTTP)
	idpAfter := idp.Counts(b)

	delta := func(name string, labels ...string) float64 {
		return metricSum(after, name, labels...) - metricSum(before, name, labels...)
	}
	verified := delta("portcullis_jwt_verifications_total", `result="ok"`)
	introspected := delta("portcullis_introspect_calls_total")

	var out strings.Builder
	fmt.Fprintf(&out, "\nauthz suite: %d rounds x %d calls per target (%d for fresh JWTs), %d concurrent callers, interleaved\n",
		rounds, perRound, freshPerRound, concurrency)
	_ = loadgen.WriteTable(&out, rep)
	fmt.Fprintf(&out, "  fresh JWTs: %d distinct RS256 tokens signed up front in %v, each sent once; authz verified %.0f JWT signatures during the run\n",
		freshCalls, mintTime.Round(time.Millisecond), verified)
	fmt.Fprintf(&out, "  identity provider during the run, warm-up included: %d introspection calls (authz counted %.0f), %d JWKS fetches, %d discovery fetches\n",
		idpAfter.Introspection-idpBefore.Introspection, introspected, idpAfter.JWKS-idpBefore.JWKS, idpAfter.Discovery-idpBefore.Discovery)
	floors := []struct {
		target int
		floor  float64
	}{{1, 0.85}, {2, 0.85}, {3, 0.85}}
	for _, f := range floors {
		t := rep.Targets[f.target]
		verdict := "meets"
		if t.PairedRatio < f.floor {
			verdict = "BELOW"
		}
		fmt.Fprintf(&out, "  %s: paired %.3f, ratio %.3f, floor %.2f: %s\n", t.Name, t.PairedRatio, t.Ratio, f.floor, verdict)
	}
	fmt.Fprint(os.Stdout, out.String())

	b.ReportMetric(rep.Targets[1].PairedRatio, "apikey/noop")
	b.ReportMetric(rep.Targets[2].PairedRatio, "jwt/noop")
	b.ReportMetric(rep.Targets[3].PairedRatio, "introspect/noop")
	b.ReportMetric(rep.Targets[4].PairedRatio, "freshjwt/noop")

	for _, t := range rep.Targets {
		if n := t.Merged.ErrorCount(); n > 0 {
			b.Errorf("%s: %d calls failed: %v", t.Name, n, t.Merged.Errors)
		}
		if ok := t.Merged.Classes["OK"]; ok != t.Merged.Calls {
			b.Errorf("%s: %d of %d calls allowed (%v); the suite measures the allowed path", t.Name, ok, t.Merged.Calls, t.Merged.Classes)
		}
	}
	// Every fresh call must have cost a verification: fewer would mean
	// some were cache hits, and the row would not measure what it says.
	if verified < float64(freshCalls) {
		b.Errorf("authz verified %.0f JWTs, fewer than the %d fresh ones sent", verified, freshCalls)
	}
}
