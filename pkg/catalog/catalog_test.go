package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

func loadReference(t *testing.T) *Snapshot {
	t.Helper()
	s, err := LoadPath(context.Background(), "testdata/catalog.yaml")
	if err != nil {
		t.Fatalf("the reference catalog does not load:\n%v", err)
	}
	return s
}

func limitStrings(ls []quota.Limit) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.String()
	}
	return out
}

func TestReferenceCatalogCompilesPolicies(t *testing.T) {
	s := loadReference(t)
	tests := []struct {
		name       string
		scope      Scope
		limits     []string
		burst      string
		stop       bool
		groups     []string
		groupLimit map[string][]string // LimitsFor, burst included
	}{
		{name: "gold", scope: ScopeSubscription, limits: []string{"5000/1m0s sliding-window"}, burst: "50/1s fixed-window", stop: true,
			groupLimit: map[string][]string{"default": {"5000/1m0s sliding-window", "50/1s fixed-window"}}},
		{name: "bronze-monthly", scope: ScopeSubscription, limits: []string{"100000/month(Europe/London) fixed-window"}, stop: true},
		{name: "app-50-per-second", scope: ScopeApplication, limits: []string{"50/1s token-bucket"}, stop: true},
		{name: "petstore-api", scope: ScopeAPI, limits: []string{"10000/1m0s fixed-window"}, stop: true,
			groups: []string{"partner network gets more", "anonymous-looking clients get less"},
			groupLimit: map[string][]string{
				"":                                   {"10000/1m0s fixed-window"},
				"partner network gets more":          {"50000/1m0s fixed-window"},
				"anonymous-looking clients get less": {"100/1m0s fixed-window"},
			}},
		{name: "petstore-writes", scope: ScopeResource, limits: []string{"10/1m0s fixed-window"}, stop: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := s.Policy(tt.name)
			if !ok {
				t.Fatal("policy not found")
			}
			if p.Scope != tt.scope || p.StopOnQuotaReach != tt.stop {
				t.Errorf("scope %s stop %v, want %s %v", p.Scope, p.StopOnQuotaReach, tt.scope, tt.stop)
			}
			if got := limitStrings(p.Limits); !slices.Equal(got, tt.limits) {
				t.Errorf("limits %q, want %q", got, tt.limits)
			}
			burst := ""
			if p.Burst != nil {
				burst = p.Burst.String()
			}
			if burst != tt.burst {
				t.Errorf("burst %q, want %q", burst, tt.burst)
			}
			var groups []string
			for _, g := range p.Groups {
				groups = append(groups, g.Description)
			}
			if !slices.Equal(groups, tt.groups) {
				t.Errorf("groups %q, want %q", groups, tt.groups)
			}
			for g, want := range tt.groupLimit {
				got, ok := p.LimitsFor(g)
				if !ok || !slices.Equal(limitStrings(got), want) {
					t.Errorf("LimitsFor(%q) = %q %v, want %q", g, limitStrings(got), ok, want)
				}
			}
			if _, ok := p.LimitsFor("no such group"); ok {
				t.Error("LimitsFor found a group that does not exist")
			}
			for _, l := range p.Limits {
				if err := l.Validate(); err != nil {
					t.Errorf("compiled limit %s does not validate: %v", l, err)
				}
			}
		})
	}
	if p, _ := s.Policy("bronze-monthly"); !p.Limits[0].Monthly || p.Limits[0].Location.String() != "Europe/London" {
		t.Errorf("bronze-monthly is not a calendar month in Europe/London: %+v", p.Limits[0])
	}
}

func TestReferenceCatalogIndexesCredentials(t *testing.T) {
	s := loadReference(t)

	app, kt, ok := s.ApplicationByClientID("mobile-client-sandbox")
	if !ok || app.Name != "mobile-app" || kt != KeyTypeSandbox {
		t.Errorf("ApplicationByClientID(mobile-client-sandbox) = %v %s %v", app, kt, ok)
	}
	if _, _, ok := s.ApplicationByClientID("nobody"); ok {
		t.Error("an unknown client id was found")
	}

	var hash [32]byte
	hex.Decode(hash[:], []byte("3f0c1dc6b7a4c8b8ce0a8e1e2b0f6d1e4c5a7b9d2e3f40516273849a5b6c7d8e"))
	app, key, ok := s.ApplicationByKeyHash(hash)
	switch {
	case !ok:
		t.Fatal("the reference key hash was not found")
	case app.Name != "mobile-app" || key.ID != "mobile-key-1" || key.KeyType != KeyTypeProduction:
		t.Errorf("key %q of %q (%s)", key.ID, app.Name, key.KeyType)
	case !key.Expires.Equal(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)):
		t.Errorf("expires %v", key.Expires)
	case !slices.Equal(key.AllowedIPs, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}):
		t.Errorf("allowed IPs %v", key.AllowedIPs)
	case app.Policy == nil || app.Policy.Name != "app-50-per-second":
		t.Errorf("application policy %v", app.Policy)
	}
	if _, _, ok := s.ApplicationByKeyHash(sha256.Sum256([]byte("not a key"))); ok {
		t.Error("an unknown key hash was found")
	}

	idp, ok := s.IdentityProviderByIssuer("https://idp.example.com")
	switch {
	case !ok || idp.Name != "corp-idp":
		t.Fatalf("IdentityProviderByIssuer = %v %v", idp, ok)
	case idp.JWT == nil || idp.JWT.ClockSkew != 30*time.Second || idp.JWT.ClientIDClaim != "client_id":
		t.Errorf("jwt %+v", idp.JWT)
	case idp.Introspection == nil || idp.Introspection.AuthMethod != "client_secret_basic" ||
		idp.Introspection.ClientSecret.String() != "file:/var/run/secrets/portcullis/introspection-secret":
		t.Errorf("introspection %+v", idp.Introspection)
	case idp.Cache != TokenCachePolicy{MaxTTL: 5 * time.Minute, NegativeTTL: 10 * time.Second, StaleIfError: 2 * time.Minute}:
		t.Errorf("cache %+v", idp.Cache)
	}
}

func TestReferenceCatalogIndexesAPIsAndSubscriptions(t *testing.T) {
	s := loadReference(t)
	api, ok := s.APIAt("API.Example.com", "/petstore/v1")
	if !ok || api.Name != "petstore" || api.ID != "petstore:v1" {
		t.Fatalf("APIAt = %v %v", api, ok)
	}
	if _, ok := s.APIAt("other.example.com", "/petstore/v1"); ok {
		t.Error("an API with hosts was found on another host")
	}
	if p, ok := api.IdentityProviderFor("https://idp.example.com"); !ok || p.Name != "corp-idp" {
		t.Errorf("IdentityProviderFor = %v %v", p, ok)
	}
	if api.Policy == nil || api.Policy.Name != "petstore-api" {
		t.Errorf("API policy %v", api.Policy)
	}
	if !slices.Equal(api.APIKeyHeaders, []string{"x-api-key"}) || !slices.Equal(api.APIKeyQueryParams, []string{"api_key"}) {
		t.Errorf("API key locations %q %q", api.APIKeyHeaders, api.APIKeyQueryParams)
	}
	ops := map[string]*CompiledOperation{}
	for _, o := range api.Operations {
		ops[o.Name] = o
	}
	tests := []struct {
		op       string
		security Security
		policy   string
		counter  string
		segments []Segment
	}{
		{"GET /pets", SecurityOAuth2 | SecurityAPIKey, "", "petstore:v1:GET /pets", []Segment{{SegmentLiteral, "pets"}}},
		{"GET /pets/{id}", SecurityOAuth2 | SecurityAPIKey, "", "petstore:v1:GET /pets/{id}", []Segment{{SegmentLiteral, "pets"}, {SegmentParam, "id"}}},
		{"POST /pets", SecurityOAuth2 | SecurityAPIKey, "petstore-writes", "petstore:v1:POST /pets", []Segment{{SegmentLiteral, "pets"}}},
		{"GET /files/**", SecurityOAuth2 | SecurityAPIKey, "", "petstore:v1:GET /files/**", []Segment{{SegmentLiteral, "files"}, {SegmentRest, ""}}},
		{"GET /health", SecurityNone, "", "petstore:v1:GET /health", []Segment{{SegmentLiteral, "health"}}},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			o, ok := ops[tt.op]
			if !ok {
				t.Fatal("operation not compiled")
			}
			policy := ""
			if o.Policy != nil {
				policy = o.Policy.Name
			}
			if o.Security != tt.security || policy != tt.policy || o.Counter != tt.counter || o.API != api {
				t.Errorf("security %s policy %q counter %q", o.Security, policy, o.Counter)
			}
			if !slices.Equal(o.Segments, tt.segments) {
				t.Errorf("segments %v, want %v", o.Segments, tt.segments)
			}
		})
	}

	sub, ok := s.Subscription("mobile-app", "petstore")
	switch {
	case !ok:
		t.Fatal("subscription not found")
	case sub.Policy.Name != "gold" || sub.State != StateActive || sub.Counter != "mobile-app:petstore:v1":
		t.Errorf("subscription %q policy %q state %s counter %q", sub.Name, sub.Policy.Name, sub.State, sub.Counter)
	case sub.Application.Name != "mobile-app" || sub.API != api:
		t.Errorf("subscription binds %q to %q", sub.Application.Name, sub.API.Name)
	}
	if _, ok := s.Subscription("petstore", "mobile-app"); ok {
		t.Error("a subscription was found with application and API swapped")
	}
	if got := len(s.APIs()) + len(s.Applications()) + len(s.Subscriptions()) + len(s.Policies()) + len(s.IdentityProviders()); got != 9 {
		t.Errorf("%d objects, want 9", got)
	}
}

// attrs is a request for condition matching.
type attrs struct {
	addr                  netip.Addr
	header, query, claims map[string]string
}

func (a attrs) ClientAddr() netip.Addr { return a.addr }
func (a attrs) Header(n string) (string, bool) {
	v, ok := a.header[n]
	return v, ok
}
func (a attrs) QueryParam(n string) (string, bool) {
	v, ok := a.query[n]
	return v, ok
}
func (a attrs) Claim(n string) (string, bool) {
	v, ok := a.claims[n]
	return v, ok
}

func TestPolicyGroupPicksTheFirstMatchingGroup(t *testing.T) {
	p, _ := loadReference(t).Policy("petstore-api")
	tests := []struct {
		name string
		req  attrs
		want string
	}{
		{"partner address", attrs{addr: netip.MustParseAddr("198.51.100.9")}, "partner network gets more"},
		{"partner address mapped into IPv6", attrs{addr: netip.MustParseAddr("::ffff:198.51.100.9")}, "partner network gets more"},
		{"curl without debug", attrs{addr: netip.MustParseAddr("192.0.2.1"), header: map[string]string{"user-agent": "curl/8.5"}}, "anonymous-looking clients get less"},
		{"curl with debug=true", attrs{header: map[string]string{"user-agent": "curl/8.5"}, query: map[string]string{"debug": "true"}}, DefaultGroup},
		{"curl with debug=1", attrs{header: map[string]string{"user-agent": "curl/8.5"}, query: map[string]string{"debug": "1"}}, "anonymous-looking clients get less"},
		{"browser", attrs{addr: netip.MustParseAddr("192.0.2.1"), header: map[string]string{"user-agent": "Mozilla/5.0"}}, DefaultGroup},
		{"no address, no headers", attrs{}, DefaultGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DefaultGroup
			if g := p.Group(tt.req); g != nil {
				got = g.Description
			}
			if got != tt.want {
				t.Errorf("group %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConditionMatchesValues(t *testing.T) {
	tests := []struct {
		name  string
		value string
		got   string
		has   bool
		want  bool
	}{
		{"exact", "v1", "v1", true, true},
		{"exact differs", "v1", "v10", true, false},
		{"prefix", "v1*", "v10", true, true},
		{"prefix differs", "v1*", "v2", true, false},
		{"presence", "*", "", true, true},
		{"absent", "*", "", false, false},
	}
	for _, tt := range tests {
		for _, invert := range []bool{false, true} {
			name := tt.name
			if invert {
				name += " inverted"
			}
			t.Run(name, func(t *testing.T) {
				b := &builder{}
				c, ok := b.condition(&Document{}, "c", Condition{Claim: &ValueCondition{Name: "tier", Value: tt.value, Invert: invert}})
				if !ok {
					t.Fatalf("condition refused: %v", b.problems)
				}
				req := attrs{claims: map[string]string{}}
				if tt.has {
					req.claims["tier"] = tt.got
				}
				if got := c.Matches(req); got != (tt.want != invert) {
					t.Errorf("Matches = %v, want %v", got, tt.want != invert)
				}
			})
		}
	}
}

func TestSubscriptionStateAllowsKeyTypes(t *testing.T) {
	tests := []struct {
		state            SubscriptionState
		production, sand bool
	}{
		{StateActive, true, true},
		{StateBlocked, false, false},
		{StateProdOnlyBlocked, false, true},
		{StateOnHold, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			if got := tt.state.Allows(KeyTypeProduction); got != tt.production {
				t.Errorf("production allowed %v", got)
			}
			if got := tt.state.Allows(KeyTypeSandbox); got != tt.sand {
				t.Errorf("sandbox allowed %v", got)
			}
		})
	}
}

func TestReadPathOrdersFilesByName(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "b.yaml", policyDoc("second", 1))
	write(t, dir, "a.yml", policyDoc("first", 1))
	write(t, dir, "c.json", "not read")
	write(t, dir, ".hidden.yaml", "not: read")
	if err := os.Mkdir(filepath.Join(dir, "nested.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "nested.yaml"), "x.yaml", "not: read")
	docs, err := ReadPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, d.Name+"@"+filepath.Base(d.Pos.File))
	}
	if want := []string{"first@a.yml", "second@b.yaml"}; !slices.Equal(names, want) {
		t.Errorf("documents %q, want %q", names, want)
	}
}

func TestLoadPathReadsAConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	mount := func(stamp string, files map[string]string) {
		t.Helper()
		data := filepath.Join(dir, stamp)
		if err := os.Mkdir(data, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			write(t, data, name, content)
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The kubelet's atomic swap: a new ..data link renamed over the old.
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(stamp, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mount("..2024_01_01_00_00_00.000000001", map[string]string{"policies.yaml": policyDoc("gold", 10), "README.md": "# not read"})
	s, err := LoadPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Policies()); got != 1 {
		t.Fatalf("%d policies, want 1 (each file read once, through its public name)", got)
	}
	p, _ := s.Policy("gold")
	if !strings.HasSuffix(p.Pos.File, filepath.Join(filepath.Base(dir), "policies.yaml")) {
		t.Errorf("policy read from %s, want the public name", p.Pos.File)
	}

	mount("..2024_01_01_00_01_00.000000002", map[string]string{"policies.yaml": policyDoc("gold", 20)})
	s, err = LoadPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Policy("gold"); p.Limits[0].Requests != 20 {
		t.Errorf("after the swap gold allows %d, want 20", p.Limits[0].Requests)
	}
}

func TestLoadPathFailsOnAMissingPath(t *testing.T) {
	_, err := LoadPath(context.Background(), filepath.Join(t.TempDir(), "absent"))
	var ps Problems
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &ps) {
		t.Errorf("got %v, want a not-exist error that is not a catalog problem", err)
	}
}

func TestLoadPathStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadPath(ctx, "testdata/catalog.yaml"); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestProblemsUnwrapToEachProblem(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "catalog.yaml", policyDoc("gold", 0)+"---\n"+policyDoc("gold", 1))
	_, err := LoadPath(context.Background(), dir)
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("errors.As found no *Problem in %v", err)
	}
	if p.Kind != KindPolicy || p.Name != "gold" || p.Pos.Line == 0 {
		t.Errorf("first problem %+v", p)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 2 {
		t.Errorf("%d problems, want 2:\n%v", n, err)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func policyDoc(name string, requests int) string {
	return "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: " + name + "}\n" +
		"spec: {scope: subscription, limits: [{requests: " + strconv.Itoa(requests) + ", per: 1m}]}\n"
}

func TestBuildRefusesADocumentWhoseObjectDoesNotFitItsKind(t *testing.T) {
	docs := []Document{
		{Pos: Pos{File: "hand.yaml", Line: 3}, Kind: KindAPI, Name: "a", Object: &Policy{}},
		{Pos: Pos{File: "hand.yaml", Line: 9}, Kind: "Gateway", Name: "b", Object: &API{}},
	}
	_, err := Build(docs)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want problems", err)
	}
	checkProblems(t, ps, []string{
		`hand.yaml:3: API "a": a API document cannot hold a *catalog.Policy`,
		`hand.yaml:9: Gateway "b": a Gateway document cannot hold a *catalog.API`,
	})
}
