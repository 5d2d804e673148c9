package rules

import (
	"strings"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// The reference matcher is a deliberately naive transcription of
// envoyproxy/ratelimit's GetLimit (src/config/config_impl.go), its cache key
// (src/limiter/cache_key.go) and its replaces handling
// (src/service/ratelimit.go), built straight from the decoded YAML with
// string concatenation and maps. The compiled matcher must agree with it on
// every fixture request and every fuzz input.

type refDescriptor struct {
	descriptors     map[string]*refDescriptor
	limit           *refLimit
	wildcardKeys    []string
	shareThreshold  bool
	wildcardPattern string
}

type refLimit struct {
	fullKey   string
	name      string
	unlimited bool
	replaces  []string
}

type refConfig struct {
	domains  map[string]*refDescriptor
	policies map[string]catalog.Policy
}

// newRefConfig reads the policies' documents as written (Doc), not the
// compiled values Compile takes, so that the two are independent.
func newRefConfig(roots []*yamlRoot, policies []*catalog.CompiledPolicy) *refConfig {
	c := &refConfig{domains: map[string]*refDescriptor{}}
	for _, r := range roots {
		d := &refDescriptor{descriptors: map[string]*refDescriptor{}}
		d.load(r.Domain+".", r.Descriptors)
		c.domains[r.Domain] = d
	}
	if len(policies) > 0 {
		c.policies = map[string]catalog.Policy{}
		for _, p := range policies {
			c.policies[p.Doc.Metadata.Name] = *p.Doc
		}
	}
	return c
}

func (d *refDescriptor) load(parentKey string, ds []yamlDescriptor) {
	for _, dc := range ds {
		finalKey := dc.Key
		if dc.Value != "" {
			finalKey += "_" + dc.Value
		}
		newParentKey := parentKey + finalKey
		var lim *refLimit
		if dc.RateLimit != nil {
			lim = &refLimit{fullKey: newParentKey, name: dc.RateLimit.Name, unlimited: dc.RateLimit.Unlimited}
			for _, r := range dc.RateLimit.Replaces {
				lim.replaces = append(lim.replaces, r.Name)
			}
		}
		pattern := ""
		if dc.ShareThreshold && strings.HasSuffix(finalKey, "*") {
			pattern = finalKey
		}
		if finalKey[len(finalKey)-1:] == "*" {
			d.wildcardKeys = append(d.wildcardKeys, finalKey)
		}
		n := &refDescriptor{descriptors: map[string]*refDescriptor{}, limit: lim, shareThreshold: dc.ShareThreshold, wildcardPattern: pattern}
		n.load(newParentKey+".", dc.Descriptors)
		d.descriptors[finalKey] = n
	}
}

func (c *refConfig) getLimit(domain string, desc *rlv3.RateLimitDescriptor) (*refLimit, map[int]string) {
	value := c.domains[domain]
	descriptorsMap := value.descriptors
	prevDescriptor := value
	var rateLimit *refLimit
	var patterns map[int]string
	for i, entry := range desc.Entries {
		finalKey := entry.Key + "_" + entry.Value
		nextDescriptor := descriptorsMap[finalKey]
		matchedWildcardKey := ""
		if nextDescriptor == nil && len(prevDescriptor.wildcardKeys) > 0 {
			for _, wildcardKey := range prevDescriptor.wildcardKeys {
				if strings.HasPrefix(finalKey, strings.TrimSuffix(wildcardKey, "*")) {
					nextDescriptor = descriptorsMap[wildcardKey]
					matchedWildcardKey = wildcardKey
					break
				}
			}
		}
		if nextDescriptor == nil {
			nextDescriptor = descriptorsMap[entry.Key]
		}
		if matchedWildcardKey != "" && nextDescriptor != nil && nextDescriptor.shareThreshold && nextDescriptor.wildcardPattern != "" {
			if patterns == nil {
				patterns = map[int]string{}
			}
			patterns[i] = strings.TrimPrefix(nextDescriptor.wildcardPattern, entry.Key+"_")
		}
		if nextDescriptor != nil && nextDescriptor.limit != nil && i == len(desc.Entries)-1 {
			rateLimit = nextDescriptor.limit
		}
		if nextDescriptor != nil && len(nextDescriptor.descriptors) > 0 {
			descriptorsMap = nextDescriptor.descriptors
		} else {
			break
		}
		prevDescriptor = nextDescriptor
	}
	return rateLimit, patterns
}

func refCacheKey(domain string, desc *rlv3.RateLimitDescriptor, patterns map[int]string) string {
	key := domain + "_"
	for i, e := range desc.Entries {
		v := e.Value
		if p, ok := patterns[i]; ok {
			v = p
		}
		key += e.Key + "_" + v + "_"
	}
	return key
}

type refAnswer struct {
	outcome Outcome
	matched string
	key     string
	tag     string
}

func (c *refConfig) resolve(domain string, descs []*rlv3.RateLimitDescriptor) []refAnswer {
	out := make([]refAnswer, len(descs))
	if c.policies != nil && domain == PortcullisDomain {
		for i, d := range descs {
			out[i] = c.resolvePolicy(domain, d)
		}
		return out
	}
	if c.domains[domain] == nil {
		for i := range out {
			out[i].outcome = NoDomain
		}
		return out
	}
	limits := make([]*refLimit, len(descs))
	replacing := map[string]bool{}
	for i, d := range descs {
		if d.Limit != nil {
			out[i] = refOverride(domain, d)
			continue
		}
		lim, patterns := c.getLimit(domain, d)
		if lim == nil {
			out[i].outcome = NoMatch
			continue
		}
		limits[i] = lim
		for _, r := range lim.replaces {
			replacing[r] = true
		}
		name := lim.name
		if name == "" {
			name = lim.fullKey
		}
		out[i].matched = name
		if lim.unlimited {
			out[i].outcome = Unlimited
			continue
		}
		out[i].outcome = Limited
		out[i].key = refCacheKey(domain, d, patterns)
		v := d.Entries[0].Value
		if p, ok := patterns[0]; ok {
			v = p
		}
		out[i].tag = d.Entries[0].Key + "_" + v
	}
	for i, lim := range limits {
		if lim == nil || lim.unlimited || lim.name == "" {
			continue
		}
		if replacing[lim.name] {
			out[i].outcome, out[i].key, out[i].tag = Replaced, "", ""
		}
	}
	return out
}

func refOverride(domain string, d *rlv3.RateLimitDescriptor) refAnswer {
	unit := int32(d.Limit.Unit)
	mult := uint32(1)
	if d.Limit.UnitMultiplier != nil {
		mult = d.Limit.UnitMultiplier.Value
	}
	secs := map[int32]uint64{1: 1, 2: 60, 3: 3600, 4: 86400, 5: 30 * 86400, 6: 365 * 86400, 7: 7 * 86400}[unit]
	if secs == 0 || mult == 0 || secs*uint64(mult) > 366*86400 {
		return refAnswer{outcome: BadDescriptor}
	}
	a := refAnswer{outcome: Override, matched: "override", key: refCacheKey(domain, d, nil)}
	if len(d.Entries) > 0 {
		a.tag = d.Entries[0].Key + "_" + d.Entries[0].Value
	}
	return a
}

func (c *refConfig) resolvePolicy(domain string, d *rlv3.RateLimitDescriptor) refAnswer {
	if d.Limit != nil {
		return refOverride(domain, d)
	}
	got := map[string][]string{}
	for _, e := range d.Entries {
		got[e.Key] = append(got[e.Key], e.Value)
	}
	for k, vs := range got {
		switch k {
		case "policy_scope", "counter", "policy", "group":
		default:
			return refAnswer{outcome: BadDescriptor}
		}
		if len(vs) != 1 || vs[0] == "" {
			return refAnswer{outcome: BadDescriptor}
		}
	}
	one := func(k string) string {
		if vs := got[k]; len(vs) == 1 {
			return vs[0]
		}
		return ""
	}
	scope, counter, policy, group := one("policy_scope"), one("counter"), one("policy"), one("group")
	if scope == "" || counter == "" || policy == "" {
		return refAnswer{outcome: BadDescriptor}
	}
	if scope != "subscription" && scope != "application" && scope != "api" && scope != "resource" {
		return refAnswer{outcome: BadDescriptor}
	}
	p, ok := c.policies[policy]
	if !ok {
		return refAnswer{outcome: UnknownPolicy}
	}
	if p.Spec.Scope != scope {
		return refAnswer{outcome: ScopeMismatch}
	}
	if group == "" {
		group = "default"
	}
	if group != "default" {
		found := false
		for _, g := range p.Spec.ConditionGroups {
			found = found || g.Description == group
		}
		if !found {
			return refAnswer{outcome: UnknownGroup}
		}
	}
	tag, _, _ := strings.Cut(counter, ":")
	return refAnswer{
		outcome: Limited,
		matched: policy,
		key:     "portcullis|" + scope + "|" + policy + "|" + group + "|" + counter,
		tag:     tag,
	}
}

// compareWithReference resolves descs with both matchers and reports any
// disagreement.
func compareWithReference(t *testing.T, set *Set, ref *refConfig, domain string, descs []*rlv3.RateLimitDescriptor) {
	t.Helper()
	got := set.Resolve(domain, descs)
	want := ref.resolve(domain, descs)
	for i := range got {
		g := refAnswer{outcome: got[i].Outcome, matched: got[i].Matched}
		if r := got[i].Rule; r != nil {
			g.key, g.tag = r.Key, r.Tag
		}
		if g != want[i] {
			t.Errorf("domain %q descriptor %d %v:\n got %+v\nwant %+v (reference)", domain, i, descs[i].GetEntries(), g, want[i])
		}
	}
}

func checkAgainstReference(t *testing.T, a archive, requests string) {
	t.Helper()
	var roots []*yamlRoot
	for _, s := range a.sections {
		if strings.HasPrefix(s.name, "rules/") {
			r, err := decodeStrict(s.name, []byte(s.data))
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			roots = append(roots, r)
		}
	}
	policies, err := archivePolicies(a)
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := compileArchive(a)
	if err != nil {
		t.Fatal(err)
	}
	ref := newRefConfig(roots, policies)
	for _, line := range strings.Split(requests, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		req, err := parseRequest(line)
		if err != nil {
			t.Fatal(err)
		}
		compareWithReference(t, set, ref, req.domain, req.descs)
	}
}
