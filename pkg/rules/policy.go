package rules

import (
	"errors"
	"fmt"
	"strings"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// Descriptor entry keys of the portcullis domain, as the shipped EnvoyFilter
// builds them from authz's dynamic metadata.
const (
	EntryScope   = "policy_scope"
	EntryCounter = "counter"
	EntryPolicy  = "policy"
	EntryGroup   = "group"
)

// DefaultGroup names the limits that apply when no condition group matched.
const DefaultGroup = catalog.DefaultGroup

// policyDef is a compiled Policy as the portcullis domain serves it: one
// prepared Rule per group.
type policyDef struct {
	scope  string
	groups map[string]*groupDef
}

type groupDef struct {
	template  Rule   // Key and Tag empty
	keyPrefix string // "portcullis|scope|policy|group|"
}

// compilePolicies prepares the catalog's compiled policies for Resolve.
// What a Policy means (its limits, burst, groups, stopOnQuotaReach) is
// decided once, by catalog.Build, which reports a bad document with file and
// line; this only checks what Resolve itself relies on, so that a
// CompiledPolicy made by hand rather than by catalog.Build cannot produce a
// rule with no limits or one that every store would refuse.
func compilePolicies(ps []*catalog.CompiledPolicy) (map[string]*policyDef, error) {
	out := make(map[string]*policyDef, len(ps))
	var errs []error
	for i, p := range ps {
		switch {
		case p == nil:
			errs = append(errs, fmt.Errorf("policy #%d is nil", i+1))
		case p.Name == "":
			errs = append(errs, fmt.Errorf("policy #%d has no name", i+1))
		case out[p.Name] != nil:
			errs = append(errs, fmt.Errorf("policy %q: given twice", p.Name))
		default:
			pd, err := compilePolicy(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("policy %q: %w", p.Name, err))
				continue
			}
			out[p.Name] = pd
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// compilePolicy builds one Rule template per group: the default limits and
// each condition group's, each with the burst counted beside them, as
// catalog.CompiledPolicy documents (and LimitsFor returns).
func compilePolicy(p *catalog.CompiledPolicy) (*policyDef, error) {
	scope := p.Scope.String()
	if !knownScope(scope) {
		return nil, fmt.Errorf("scope %s is not one of subscription, application, api, resource", scope)
	}
	pd := &policyDef{scope: scope, groups: make(map[string]*groupDef, len(p.Groups)+1)}
	add := func(group string, limits []quota.Limit) error {
		switch {
		case group == "" || strings.Contains(group, "|"):
			return fmt.Errorf("group %q cannot name a counter", group)
		case pd.groups[group] != nil:
			return fmt.Errorf("group %q given twice", group)
		case len(limits) == 0:
			return fmt.Errorf("group %q has no limits", group)
		}
		labelled, err := labelLimits(limits, p.Burst)
		if err != nil {
			return fmt.Errorf("group %q: %w", group, err)
		}
		pd.groups[group] = &groupDef{
			template: Rule{Name: p.Name, Scope: scope, Policy: p.Name, Group: group,
				Shadow: !p.StopOnQuotaReach, Limits: labelled},
			keyPrefix: PortcullisDomain + "|" + scope + "|" + p.Name + "|" + group + "|",
		}
		return nil
	}
	var errs []error
	if err := add(DefaultGroup, p.Limits); err != nil {
		errs = append(errs, err)
	}
	for _, g := range p.Groups {
		if err := add(g.Description, g.Limits); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return pd, nil
}

// labelLimits names one group's limits for headers, metadata and metrics:
// "default" for a single limit, else the period ("1m", "month"), with the
// algorithm when two limits share a period; and "burst" for the burst,
// appended last. The label is derived from the compiled limit, so "60s" and
// "1m" in a document get the same one.
func labelLimits(limits []quota.Limit, burst *quota.Limit) ([]Limit, error) {
	out := make([]Limit, 0, len(limits)+1)
	for _, l := range limits {
		out = append(out, Limit{Label: periodLabel(l), Limit: l})
	}
	if len(out) == 1 {
		out[0].Label = "default"
	} else {
		disambiguate(out, func(l quota.Limit) string { return l.Algorithm.String() })
		// Only calendar months in different time zones are left.
		disambiguate(out, func(l quota.Limit) string { return l.Location.String() })
	}
	if burst != nil {
		out = append(out, Limit{Label: "burst", Limit: *burst})
	}
	for _, l := range out {
		if err := l.Limit.Validate(); err != nil {
			return nil, fmt.Errorf("limit %s: %w", l.Label, err)
		}
	}
	return out, nil
}

// disambiguate appends "-" + suffix(limit) to every label that another limit
// shares.
func disambiguate(ls []Limit, suffix func(quota.Limit) string) {
	n := make(map[string]int, len(ls))
	for _, l := range ls {
		n[l.Label]++
	}
	for i := range ls {
		if n[ls[i].Label] > 1 {
			ls[i].Label += "-" + suffix(ls[i].Limit)
		}
	}
}

// periodLabel is "month" for a calendar month, else the period in Go's
// duration syntax without zero units: "1m", not "1m0s".
func periodLabel(l quota.Limit) string {
	if l.Monthly {
		return "month"
	}
	s := l.Period.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// knownScope reports whether s names a catalog scope, without allocating:
// Resolve calls it for every portcullis descriptor.
func knownScope(s string) bool {
	for sc := catalog.ScopeSubscription; sc <= catalog.ScopeResource; sc++ {
		if sc.String() == s {
			return true
		}
	}
	return false
}

// The entries a portcullis descriptor must carry, as bits.
const (
	hasScope = 1 << iota
	hasCounter
	hasPolicy
	hasGroup
	required = hasScope | hasCounter | hasPolicy
)

func (s *Set) resolvePolicies(domain string, descs []*rlv3.RateLimitDescriptor, out []Resolution) {
	var batch ruleBatch
	var keyBuf [256]byte
	for i, desc := range descs {
		res := &out[i]
		switch {
		case desc == nil:
			res.Outcome = BadDescriptor
		case desc.GetLimit() != nil:
			override(domain, desc, res, &batch, len(descs), keyBuf[:0])
		default:
			s.resolvePolicy(desc.GetEntries(), res, &batch, len(descs))
		}
	}
}

// resolvePolicy reads the entries in any order. A descriptor with an entry
// it does not know, an entry twice, an empty value or a missing entry is
// BadDescriptor: authz and the EnvoyFilter never build one, so it means a
// misconfigured route. The group entry is optional and, although authz sends
// it at the api and resource levels only, accepted at every scope: absent
// means DefaultGroup.
func (s *Set) resolvePolicy(entries []*rlv3.RateLimitDescriptor_Entry, res *Resolution, batch *ruleBatch, size int) {
	var scope, counter, policy, group string
	seen := 0
	for _, e := range entries {
		var bit int
		var dst *string
		switch e.GetKey() {
		case EntryScope:
			bit, dst = hasScope, &scope
		case EntryCounter:
			bit, dst = hasCounter, &counter
		case EntryPolicy:
			bit, dst = hasPolicy, &policy
		case EntryGroup:
			bit, dst = hasGroup, &group
		default:
			res.Outcome = BadDescriptor
			return
		}
		if seen&bit != 0 || e.GetValue() == "" {
			res.Outcome = BadDescriptor
			return
		}
		seen |= bit
		*dst = e.GetValue()
	}
	if seen&required != required || !knownScope(scope) {
		res.Outcome = BadDescriptor
		return
	}
	pd := s.policies[policy]
	switch {
	case pd == nil:
		res.Outcome = UnknownPolicy
		return
	case pd.scope != scope:
		res.Outcome = ScopeMismatch
		return
	}
	if group == "" {
		group = DefaultGroup
	}
	g := pd.groups[group]
	if g == nil {
		res.Outcome = UnknownGroup
		return
	}
	key := g.keyPrefix + counter
	tag := key[len(g.keyPrefix):]
	if n := strings.IndexByte(tag, ':'); n >= 0 {
		tag = tag[:n]
	}
	r := batch.next(size)
	*r = g.template
	r.Key, r.Tag = key, tag
	res.Outcome, res.Rule, res.Matched = Limited, r, g.template.Name
}
