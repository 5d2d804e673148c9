package rules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// TestPolicyRulesCountWhatTheCatalogSays holds the rules Resolve builds for
// every group of every fixture policy to catalog.CompiledPolicy.LimitsFor,
// the catalog's one definition of what a group counts (burst included), and
// to the policy's scope and stopOnQuotaReach.
func TestPolicyRulesCountWhatTheCatalogSays(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := parseArchive(string(raw))
		if _, ok := a.get("error"); ok {
			continue
		}
		policies, err := archivePolicies(a)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(policies) == 0 {
			continue
		}
		set, err := Compile(nil, policies)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range policies {
			groups := []string{DefaultGroup}
			for _, g := range p.Groups {
				groups = append(groups, g.Description)
			}
			for _, g := range groups {
				res := set.Resolve(PortcullisDomain, []*rlv3.RateLimitDescriptor{entries(
					EntryScope, p.Scope.String(), EntryCounter, "app:api:1", EntryPolicy, p.Name, EntryGroup, g)})[0]
				if res.Outcome != Limited {
					t.Fatalf("%s: policy %q group %q resolved to %v", path, p.Name, g, res.Outcome)
				}
				want, _ := p.LimitsFor(g)
				var got []quota.Limit
				for _, l := range res.Rule.Limits {
					got = append(got, l.Limit)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: policy %q group %q counts %v; the catalog says %v", path, p.Name, g, got, want)
				}
				if res.Rule.Shadow == p.StopOnQuotaReach || res.Rule.Scope != p.Scope.String() {
					t.Errorf("%s: policy %q: shadow %t scope %q; stopOnQuotaReach %t scope %s",
						path, p.Name, res.Rule.Shadow, res.Rule.Scope, p.StopOnQuotaReach, p.Scope)
				}
				checked++
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d policy groups; the fixtures should hold more", checked)
	}
}

// TestCompileRejectsPoliciesResolveCouldNotServe: catalog.Build never makes
// these, but a CompiledPolicy is a plain struct, and one made by hand must
// fail to compile rather than serve a rule with no limits or with limits
// every store refuses.
func TestCompileRejectsPoliciesResolveCouldNotServe(t *testing.T) {
	good := func() *catalog.CompiledPolicy {
		return &catalog.CompiledPolicy{
			Name:             "gold",
			Scope:            catalog.ScopeAPI,
			Limits:           []quota.Limit{{Requests: 10, Period: time.Minute}},
			StopOnQuotaReach: true,
			Groups: []catalog.CompiledGroup{
				{Description: "partners", Limits: []quota.Limit{{Requests: 100, Period: time.Minute}}},
			},
		}
	}
	tests := []struct {
		name     string
		policies func() []*catalog.CompiledPolicy
		err      string // substring; "" means it compiles
	}{
		{"a policy made by hand that fits", func() []*catalog.CompiledPolicy { return []*catalog.CompiledPolicy{good()} }, ""},
		{"nil", func() []*catalog.CompiledPolicy { return []*catalog.CompiledPolicy{good(), nil} }, "policy #2 is nil"},
		{"no name", func() []*catalog.CompiledPolicy {
			p := good()
			p.Name = ""
			return []*catalog.CompiledPolicy{p}
		}, "policy #1 has no name"},
		{"the same name twice", func() []*catalog.CompiledPolicy { return []*catalog.CompiledPolicy{good(), good()} }, `policy "gold": given twice`},
		{"no scope", func() []*catalog.CompiledPolicy {
			p := good()
			p.Scope = 0
			return []*catalog.CompiledPolicy{p}
		}, "scope scope(0)"},
		{"no default limits", func() []*catalog.CompiledPolicy {
			p := good()
			p.Limits = nil
			return []*catalog.CompiledPolicy{p}
		}, `group "default" has no limits`},
		{"a group named default", func() []*catalog.CompiledPolicy {
			p := good()
			p.Groups[0].Description = DefaultGroup
			return []*catalog.CompiledPolicy{p}
		}, `group "default" given twice`},
		{"a group without a name", func() []*catalog.CompiledPolicy {
			p := good()
			p.Groups[0].Description = ""
			return []*catalog.CompiledPolicy{p}
		}, `group "" cannot name a counter`},
		{"a limit no store could count", func() []*catalog.CompiledPolicy {
			p := good()
			p.Burst = &quota.Limit{Requests: 0, Period: time.Second, Algorithm: quota.TokenBucket}
			return []*catalog.CompiledPolicy{p}
		}, "limit burst: a token bucket needs at least 1 request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(nil, tc.policies())
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Compile = %v, want nil", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Compile = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

func TestLimitLabelsAreUniqueAndReadable(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	burst := &quota.Limit{Requests: 5, Period: time.Second}
	tests := []struct {
		name   string
		limits []quota.Limit
		burst  *quota.Limit
		want   []string
	}{
		{"one limit", []quota.Limit{{Requests: 1, Period: time.Minute}}, nil, []string{"default"}},
		{"one limit and a burst", []quota.Limit{{Requests: 1, Period: time.Minute}}, burst, []string{"default", "burst"}},
		{"periods without zero units", []quota.Limit{
			{Requests: 1, Period: time.Minute},
			{Requests: 1, Period: time.Hour},
			{Requests: 1, Period: 90 * time.Minute},
			{Requests: 1, Period: 1500 * time.Millisecond},
			{Requests: 1, Period: 10 * time.Second},
			{Requests: 1, Period: 24 * time.Hour},
			{Requests: 1, Monthly: true},
		}, burst, []string{"1m", "1h", "1h30m", "1.5s", "10s", "24h", "month", "burst"}},
		{"one period, two algorithms", []quota.Limit{
			{Requests: 1, Period: time.Minute},
			{Requests: 1, Period: time.Minute, Algorithm: quota.SlidingWindow},
		}, nil, []string{"1m-fixed-window", "1m-sliding-window"}},
		{"months in two time zones", []quota.Limit{
			{Requests: 1, Monthly: true},
			{Requests: 1, Monthly: true, Location: london},
		}, nil, []string{"month-fixed-window-UTC", "month-fixed-window-Europe/London"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := labelLimits(tc.limits, tc.burst)
			if err != nil {
				t.Fatal(err)
			}
			var labels []string
			for _, l := range got {
				labels = append(labels, l.Label)
			}
			if !slices.Equal(labels, tc.want) {
				t.Fatalf("labels %q, want %q", labels, tc.want)
			}
		})
	}
}
