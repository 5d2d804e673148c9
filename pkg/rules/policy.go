package rules

import (
	"errors"
	"fmt"
	"strings"
	"time"

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
const DefaultGroup = "default"

var policyScopes = [...]string{"subscription", "application", "api", "resource"}

// policyDef is a compiled Policy: one prepared Rule per group.
type policyDef struct {
	scope  string
	groups map[string]*groupDef
}

type groupDef struct {
	template  Rule   // Key and Tag empty
	keyPrefix string // "portcullis|scope|policy|group|"
}

func compilePolicies(ps []catalog.Policy) (map[string]*policyDef, error) {
	out := make(map[string]*policyDef, len(ps))
	seen := make(map[string]bool, len(ps))
	var errs []error
	for i := range ps {
		p := &ps[i]
		name := p.Metadata.Name
		if name == "" {
			errs = append(errs, fmt.Errorf("policy #%d: metadata.name is empty", i+1))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("policy %q: defined twice", name))
			continue
		}
		seen[name] = true
		pd, err := compilePolicy(name, &p.Spec)
		if err != nil {
			// One line per problem, each naming the policy.
			for _, e := range leaves(err) {
				errs = append(errs, fmt.Errorf("policy %q: %w", name, e))
			}
			continue
		}
		out[name] = pd
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func compilePolicy(name string, spec *catalog.PolicySpec) (*policyDef, error) {
	var errs []error
	if !validScope(spec.Scope) {
		errs = append(errs, fmt.Errorf("spec.scope: %q is not one of subscription, application, api, resource", spec.Scope))
	}
	var burst *Limit
	if b := spec.Burst; b != nil {
		l, err := compileLimit(catalog.LimitSpec{Requests: b.Requests, Per: b.Per}, "spec.burst")
		if err != nil {
			errs = append(errs, err)
		} else if l.Monthly {
			errs = append(errs, errors.New("spec.burst.per: a burst cannot be per month"))
		} else {
			burst = &Limit{Label: "burst", Limit: l}
		}
	}
	// stopOnQuotaReach: false counts and reports without ever denying.
	shadow := spec.StopOnQuotaReach != nil && !*spec.StopOnQuotaReach
	pd := &policyDef{scope: spec.Scope, groups: make(map[string]*groupDef, len(spec.ConditionGroups)+1)}
	add := func(group, field string, specs []catalog.LimitSpec) {
		limits, err := compileLimits(specs, field, burst)
		if err != nil {
			errs = append(errs, err)
			return
		}
		pd.groups[group] = &groupDef{
			template:  Rule{Name: name, Scope: spec.Scope, Policy: name, Group: group, Shadow: shadow, Limits: limits},
			keyPrefix: PortcullisDomain + "|" + spec.Scope + "|" + name + "|" + group + "|",
		}
	}
	add(DefaultGroup, "spec.limits", spec.Limits)
	for i, g := range spec.ConditionGroups {
		field := fmt.Sprintf("spec.conditionGroups[%d]", i)
		switch {
		case g.Description == "":
			errs = append(errs, fmt.Errorf("%s.description is empty; it names the group in descriptors and counters", field))
		case g.Description == DefaultGroup:
			errs = append(errs, fmt.Errorf("%s.description %q is reserved for the policy's own limits", field, DefaultGroup))
		case strings.Contains(g.Description, "|"):
			errs = append(errs, fmt.Errorf("%s.description %q contains '|', which separates counter key parts", field, g.Description))
		case pd.groups[g.Description] != nil:
			errs = append(errs, fmt.Errorf("%s.description %q is not unique in the policy", field, g.Description))
		default:
			add(g.Description, field+".limits", g.Limits)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return pd, nil
}

// leaves flattens joined errors.
func leaves(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

func validScope(s string) bool {
	for _, v := range policyScopes {
		if s == v {
			return true
		}
	}
	return false
}

// compileLimits compiles one group's limits and appends the burst. Two limits
// with the same window and algorithm would share a counter, so that is an
// error. Labels: "default" for a single limit, else the limit's "per" (with
// the algorithm when two limits share a "per"), and "burst".
func compileLimits(specs []catalog.LimitSpec, field string, burst *Limit) ([]Limit, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s: at least one limit is required", field)
	}
	out := make([]Limit, 0, len(specs)+1)
	var errs []error
	for i, s := range specs {
		l, err := compileLimit(s, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, Limit{Label: s.Per, Limit: l})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 1 {
		out[0].Label = "default"
	} else {
		for i := range out {
			for j := range out {
				if i != j && specs[i].Per == specs[j].Per {
					out[i].Label = specs[i].Per + "-" + out[i].Limit.Algorithm.String()
				}
			}
		}
	}
	if burst != nil {
		out = append(out, *burst)
	}
	for i := range out {
		for j := 0; j < i; j++ {
			if out[i].Limit.ID() == out[j].Limit.ID() {
				return nil, fmt.Errorf("%s: limits %q and %q count over the same window with the same algorithm and would share a counter", field, out[j].Label, out[i].Label)
			}
		}
	}
	return out, nil
}

// compileLimit reads one limit: "per" is a Go duration or "month", a
// calendar month in timeZone (UTC when empty).
func compileLimit(s catalog.LimitSpec, field string) (quota.Limit, error) {
	alg, err := quota.ParseAlgorithm(s.Algorithm)
	if err != nil {
		return quota.Limit{}, fmt.Errorf("%s.algorithm: %w", field, err)
	}
	l := quota.Limit{Requests: s.Requests, Algorithm: alg}
	switch {
	case s.Per == "month":
		l.Monthly = true
		if s.TimeZone != "" {
			loc, err := time.LoadLocation(s.TimeZone)
			if err != nil {
				return quota.Limit{}, fmt.Errorf("%s.timeZone: %w", field, err)
			}
			l.Location = loc
		}
	case s.TimeZone != "":
		return quota.Limit{}, fmt.Errorf("%s.timeZone: applies only to per: month, not per: %q", field, s.Per)
	default:
		d, err := time.ParseDuration(s.Per)
		if err != nil {
			return quota.Limit{}, fmt.Errorf("%s.per: want a Go duration such as 1m or \"month\": %w", field, err)
		}
		l.Period = d
	}
	if err := l.Validate(); err != nil {
		return quota.Limit{}, fmt.Errorf("%s: %w", field, err)
	}
	return l, nil
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
	if seen&required != required || !validScope(scope) {
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
