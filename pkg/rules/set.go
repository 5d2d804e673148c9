package rules

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// PortcullisDomain is the rate-limit domain whose descriptors name Policy
// documents rather than rule-file entries.
const PortcullisDomain = "portcullis"

// Outcome says how one descriptor resolved. Every outcome except Limited and
// Override means "no counter for this descriptor"; they are told apart so
// that the server can count them, because a steady stream of UnknownPolicy
// or BadDescriptor means the mesh and the catalog disagree.
type Outcome uint8

const (
	// Limited: a rule or policy applies; Rule is set.
	Limited Outcome = iota
	// Override: the descriptor carried its own limit (Envoy's
	// RateLimitDescriptor.limit) in a known domain; Rule is set, never
	// shadow.
	Override
	// Unlimited: the matching rule says unlimited: nothing is counted.
	Unlimited
	// Replaced: the matching rule is named in another matched rule's
	// replaces list, in the same request.
	Replaced
	// NoDomain: the domain has no rules.
	NoDomain
	// NoMatch: the domain is known but no rule applies to the descriptor.
	NoMatch
	// UnknownPolicy: a portcullis descriptor names a policy that is not
	// loaded.
	UnknownPolicy
	// ScopeMismatch: a portcullis descriptor's policy_scope differs from
	// its policy's scope.
	ScopeMismatch
	// UnknownGroup: a portcullis descriptor names a condition group its
	// policy does not have.
	UnknownGroup
	// BadDescriptor: the descriptor is malformed: a portcullis descriptor
	// with an unknown, repeated, missing or empty entry, or a limit
	// override with an unknown unit.
	BadDescriptor
)

var outcomeNames = [...]string{"limited", "override", "unlimited", "replaced", "no_domain", "no_match",
	"unknown_policy", "scope_mismatch", "unknown_group", "bad_descriptor"}

// String is the outcome's metric label value.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// Outcomes lists every outcome, so that a metric can be initialised with
// all of its label values at start-up.
func Outcomes() []Outcome {
	out := make([]Outcome, len(outcomeNames))
	for i := range out {
		out[i] = Outcome(i)
	}
	return out
}

// Limit is one limit of a rule, with the label that tells it from the rule's
// other limits in headers, metadata and metrics ("default", "burst", or the
// period when a policy has several).
type Limit struct {
	Label string
	Limit quota.Limit
}

// Rule is what one descriptor of one request is counted against. The
// configuration fields are shared with the compiled Set; Key and Tag are this
// request's.
type Rule struct {
	// Name identifies the rule in metrics, headers and metadata: the rule
	// file's rate_limit name, else the rule's configuration path
	// ("domain.key_value.key"), "override" for a descriptor's own limit, or
	// the policy name. It never holds a request's values.
	Name string
	// Scope, Policy and Group are set for Policy documents only.
	Scope, Policy, Group string
	// Shadow counts and reports but never denies (shadow_mode, or a policy
	// with stopOnQuotaReach: false).
	Shadow bool
	// Limits are checked separately against the same Key; each has its own
	// counter because quota.Plan adds the limit's ID to the key. The slice
	// is shared: do not modify it.
	Limits []Limit
	// Key identifies the counter: for rule files "domain_key_value_..._",
	// envoyproxy/ratelimit's cache key without the window; for policies
	// "portcullis|scope|policy|group|counter".
	Key string
	// Tag is the Redis Cluster hash tag, a substring of Key: the first
	// entry's "key_value" for rule files, the counter up to its first ':'
	// (the application, or the API name) for policies, so that one
	// request's counters share a slot where they can.
	Tag string
}

// Resolution is how one descriptor resolved.
type Resolution struct {
	Outcome Outcome
	// Rule is set for Limited and Override, nil otherwise.
	Rule *Rule
	// Matched names the rule that matched even when nothing is counted
	// (Unlimited, Replaced), for metrics; empty when nothing matched.
	Matched string

	def *ruleDef // rule-file rule that matched, for replaces
}

// Set is a compiled, immutable rule set: safe for concurrent Resolve calls,
// and swapped whole on reload.
type Set struct {
	domains  map[string]*domainRules
	policies map[string]*policyDef // nil when no Policy documents are loaded
}

type domainRules struct {
	tree     *node
	replaces bool
}

// Compile builds a Set from parsed rule files and the catalog's compiled
// policies (catalog.Snapshot.Policies). A domain defined in two files is an
// error, as envoyproxy/ratelimit's default (MERGE_DOMAIN_CONFIG=false) has
// it; merging is not supported. A rule file for the domain "portcullis" is
// an error while policies are loaded. Policies are taken as catalog.Build
// compiled them, which is where a Policy document is validated and given
// its meaning; Compile rejects only values that Resolve could not serve.
func Compile(files []File, policies []*catalog.CompiledPolicy) (*Set, error) {
	s := &Set{domains: make(map[string]*domainRules, len(files))}
	owner := make(map[string]string, len(files))
	var errs []error
	for _, f := range files {
		switch prev, dup := owner[f.Domain]; {
		case f.tree == nil:
			errs = append(errs, fmt.Errorf("rule file %q was not produced by ParseFile", f.Name))
		case dup:
			errs = append(errs, &ParseError{File: f.Name, Line: f.domainLine, Reason: fmt.Sprintf(
				"duplicate domain '%s' in config file (also defined in %s; merging domains across files is not supported)", f.Domain, prev)})
		case f.Domain == PortcullisDomain && len(policies) > 0:
			errs = append(errs, &ParseError{File: f.Name, Line: f.domainLine, Reason: fmt.Sprintf(
				"domain '%s' is served from Policy documents; a rule file cannot define it while policies are loaded", f.Domain)})
		default:
			owner[f.Domain] = f.Name
			s.domains[f.Domain] = &domainRules{tree: f.tree, replaces: f.replaces}
		}
	}
	if len(policies) > 0 {
		pols, err := compilePolicies(policies)
		if err != nil {
			errs = append(errs, err)
		}
		s.policies = pols
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("compile rules: %w", errors.Join(errs...))
	}
	return s, nil
}

// HasDomain reports whether the set has rules for domain. Callers use it to
// fold unknown domains into one metric label.
func (s *Set) HasDomain(domain string) bool {
	if s == nil {
		return false
	}
	if domain == PortcullisDomain && s.policies != nil {
		return true
	}
	_, ok := s.domains[domain]
	return ok
}

// Domains lists the set's domains in order, for logs on load.
func (s *Set) Domains() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.domains)+1)
	for d := range s.domains {
		out = append(out, d)
	}
	if s.policies != nil {
		out = append(out, PortcullisDomain)
	}
	sort.Strings(out)
	return out
}

// Resolve resolves each descriptor of one request, in order: one Resolution
// per descriptor. It never fails: a descriptor that cannot be counted gets an
// outcome that says why. A nil Set knows no domain. The returned Rules are
// this call's; the caller may keep them.
func (s *Set) Resolve(domain string, descs []*rlv3.RateLimitDescriptor) []Resolution {
	out := make([]Resolution, len(descs))
	switch {
	case s == nil:
		fill(out, NoDomain)
	case domain == PortcullisDomain && s.policies != nil:
		s.resolvePolicies(domain, descs, out)
	default:
		d := s.domains[domain]
		if d == nil {
			fill(out, NoDomain)
			break
		}
		d.resolve(domain, descs, out)
	}
	return out
}

func fill(out []Resolution, o Outcome) {
	for i := range out {
		out[i].Outcome = o
	}
}

// ruleBatch hands out the Rules of one Resolve call from one allocation,
// made only when the first descriptor resolves to a counter.
type ruleBatch struct {
	rules []Rule
	n     int
}

func (b *ruleBatch) next(size int) *Rule {
	if b.rules == nil {
		b.rules = make([]Rule, size)
	}
	r := &b.rules[b.n]
	b.n++
	return r
}

func (d *domainRules) resolve(domain string, descs []*rlv3.RateLimitDescriptor, out []Resolution) {
	var batch ruleBatch
	var keyBuf [256]byte
	for i, desc := range descs {
		res := &out[i]
		if desc == nil {
			res.Outcome = BadDescriptor
			continue
		}
		if o := desc.GetLimit(); o != nil {
			override(domain, desc, res, &batch, len(descs), keyBuf[:0])
			continue
		}
		def, key, tagEnd := d.tree.match(domain, desc.GetEntries(), keyBuf[:0])
		switch {
		case def == nil:
			res.Outcome = NoMatch
		case def.unlimited:
			res.Outcome, res.Matched, res.def = Unlimited, def.name, def
		default:
			res.Outcome, res.Matched, res.def = Limited, def.name, def
			r := batch.next(len(descs))
			k := string(key)
			*r = Rule{Name: def.name, Shadow: def.shadow, Limits: def.limits, Key: k, Tag: k[len(domain)+1 : tagEnd]}
			res.Rule = r
		}
	}
	if d.replaces {
		applyReplaces(out)
	}
}

// applyReplaces drops every counted rule whose name another matched rule of
// the request replaces. As in envoyproxy/ratelimit, the replacing rules
// include unlimited and replaced ones.
func applyReplaces(out []Resolution) {
	for i := range out {
		r := &out[i]
		if r.Outcome != Limited || r.def.ownName == "" {
			continue
		}
		for j := range out {
			if out[j].def != nil && slices.Contains(out[j].def.replaces, r.def.ownName) {
				r.Outcome, r.Rule = Replaced, nil
				break
			}
		}
	}
}

// override applies a descriptor's own limit. The counter key is the same as
// a rule file's would be for the descriptor, as in envoyproxy/ratelimit.
func override(domain string, desc *rlv3.RateLimitDescriptor, res *Resolution, batch *ruleBatch, size int, buf []byte) {
	l, ok := overrideLimit(desc.GetLimit())
	if !ok {
		res.Outcome = BadDescriptor
		return
	}
	key, tagEnd := plainKey(domain, desc.GetEntries(), buf)
	k := string(key)
	r := batch.next(size)
	*r = Rule{Name: overrideName, Limits: []Limit{{Label: "default", Limit: l}}, Key: k, Tag: k[len(domain)+1 : tagEnd]}
	res.Outcome, res.Rule, res.Matched = Override, r, overrideName
}

const overrideName = "override"

func overrideLimit(o *rlv3.RateLimitDescriptor_RateLimitOverride) (quota.Limit, bool) {
	// envoyproxy/ratelimit reads the envoy.type.v3.RateLimitUnit as a
	// RateLimitResponse unit; the numbering is the same.
	period, ok := unitPeriods[rlsUnit(int32(o.GetUnit()))]
	if !ok {
		return quota.Limit{}, false
	}
	mult := uint32(1)
	if m := o.GetUnitMultiplier(); m != nil {
		mult = m.GetValue()
	}
	if mult == 0 {
		return quota.Limit{}, false
	}
	l, err := ruleLimit(o.GetRequestsPerUnit(), period, mult)
	return l, err == nil
}
