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
// seen, so that every call verifies an RS256 signature. Each row is judged
// against the no-op given the same size of request, since a JWT's Check is
// three times an API key's and decoding it is not authz's own cost. The
// identity provider is the real oidc-provider; the fresh JWTs are the
// provider's own token re-signed with the provider's key under distinct
// jti, because its token endpoint mints a few hundred a second at best.
// It asserts that every call was allowed and that every fresh JWT cost a
// verification; the floors are printed, not asserted, because a shared
// two-core machine moves ratios by more than the margin.
//
// Run it with `make bench`; -benchtime 1x is enough, each run does
// BENCH_ROUNDS rounds of BENCH_REQUESTS calls per target
// (BENCH_FRESH_REQUESTS for the fresh JWTs, each signed up front) from
// BENCH_CONCURRENCY callers.
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

	jwtReq := authzCheck("authorization", "Bearer "+jwt)
	// Two baselines: the no-op given the API key's Check and the no-op
	// given the JWT's, three times larger. Decoding the request is work
	// any ext_authz server does, so each authz row is judged against the
	// no-op that decoded the same size of request (an opaque token's Check
	// is the API key's size). Each baseline runs just before the rows
	// judged against it, so that each pair runs close together.
	const (
		noopKey = iota
		authzKey
		authzOpaque
		noopJWT
		authzJWT
		authzFresh
	)
	targets := []loadgen.Target{
		noopKey:     target("no-op, API key request", noopAddr, apiKeyReq),
		authzKey:    target("authz, API key", authzAddr, apiKeyReq),
		authzOpaque: target("authz, cached introspection", authzAddr, authzCheck("authorization", "Bearer "+opaque)),
		noopJWT:     target("no-op, JWT request", noopAddr, jwtReq),
		authzJWT:    target("authz, cached JWT (RS256)", authzAddr, jwtReq),
		authzFresh:  freshTarget,
	}
	rows := []struct {
		target, baseline int
		metric           string
		floor            float64 // 0: none
	}{
		{authzKey, noopKey, "apikey/noop", 0.85},
		{authzJWT, noopJWT, "jwt/noop", 0.85},
		{authzOpaque, noopKey, "introspect/noop", 0.85},
		{authzFresh, noopJWT, "freshjwt/noop", 0},
	}

	noopPID := pidOf(b, filepath.Join(bins, "noop"), noopAddr)
	authzPID := pidOf(b, filepath.Join(bins, "authz"), authzAddr)
	meters := make([]*cpuMeter, len(targets))
	for i := range targets {
		meters[i] = &cpuMeter{pid: authzPID}
		if targets[i].Addr == noopAddr {
			meters[i].pid = noopPID
		}
		targets[i].NewCaller = meters[i].wrap(targets[i].NewCaller)
	}

	before := metrics(b, authzHTTP)
	idpBefore := idp.Counts(b)
	b.ResetTimer()
	rep, err := loadgen.Interleave(ctx, rounds, targets...)
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
	fmt.Fprintf(&out, "\nauthz suite: %d rounds x %d calls per target (%d for fresh JWTs), %d concurrent callers, interleaved; ratios to the first row\n",
		rounds, perRound, freshPerRound, concurrency)
	_ = loadgen.WriteTable(&out, rep)
	fmt.Fprintf(&out, "  fresh JWTs: %d distinct RS256 tokens signed up front in %v, each sent once; authz verified %.0f JWT signatures during the run\n",
		freshCalls, mintTime.Round(time.Millisecond), verified)
	fmt.Fprintf(&out, "  identity provider during the run, warm-up included: %d introspection calls (authz counted %.0f), %d JWKS fetches, %d discovery fetches\n",
		idpAfter.Introspection-idpBefore.Introspection, introspected, idpAfter.JWKS-idpBefore.JWKS, idpAfter.Discovery-idpBefore.Discovery)
	cpu := make([]time.Duration, len(targets))
	for i, m := range meters {
		if cpu[i], err = m.perCall(targets[i]); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Fprintf(&out, "against the no-op given the same size of request; throughput: paired (median of per-round ratios) and ratio of medians;\n"+
		"CPU: the server process's CPU time per call, median of rounds (the no-op's: %.1fµs with the API key's request, %.1fµs with the JWT's):\n",
		micros(cpu[noopKey]), micros(cpu[noopJWT]))
	for _, r := range rows {
		t, base := rep.Targets[r.target], rep.Targets[r.baseline]
		paired := pairedRatio(t, base)
		verdict := "no floor"
		switch {
		case r.floor == 0:
		case paired >= r.floor:
			verdict = fmt.Sprintf("floor %.2f: meets", r.floor)
		default:
			verdict = fmt.Sprintf("floor %.2f: BELOW", r.floor)
		}
		fmt.Fprintf(&out, "  %-28s paired %.3f, medians %.3f (%s); CPU %6.1fµs a call, %+6.1fµs over the no-op, %.2fx\n",
			t.Name, paired, t.MedianThroughput/base.MedianThroughput, verdict,
			micros(cpu[r.target]), micros(cpu[r.target]-cpu[r.baseline]), float64(cpu[r.target])/float64(cpu[r.baseline]))
		b.ReportMetric(paired, r.metric)
	}
	fmt.Fprint(os.Stdout, out.String())

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

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// pairedRatio is the median over rounds of t's throughput over base's in
// the same round: each pair ran seconds apart, so the machine's drift
// cancels within a pair.
func pairedRatio(t, base loadgen.TargetReport) float64 {
	n := min(len(t.Rounds), len(base.Rounds))
	rs := make([]float64, 0, n)
	for i := range n {
		if base.Rounds[i].Throughput > 0 {
			rs = append(rs, t.Rounds[i].Throughput/base.Rounds[i].Throughput)
		}
	}
	return median(rs)
}
