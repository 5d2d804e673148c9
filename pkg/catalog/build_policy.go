package catalog

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// Policies: limits compiled to quota.Limit values, and condition groups.

func (b *builder) location(name string) (*time.Location, error) {
	if loc, ok := b.locations[name]; ok {
		return loc, nil
	}
	if name == "Local" {
		return nil, errors.New(`"Local" differs between machines; replicas must agree on where a month starts`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	b.locations[name] = loc
	return loc, nil
}

func (b *builder) limit(d *Document, field string, ls LimitSpec) (quota.Limit, bool) {
	ok := true
	alg, err := quota.ParseAlgorithm(ls.Algorithm)
	if err != nil {
		b.add(d, field+".algorithm", err)
		ok = false
	}
	l := quota.Limit{Requests: ls.Requests, Algorithm: alg}
	switch ls.Per {
	case "":
		b.add(d, field+".per", errRequired)
		ok = false
	case "month":
		l.Monthly = true
		if ls.TimeZone != "" {
			loc, err := b.location(ls.TimeZone)
			if err != nil {
				b.add(d, field+".timeZone", fmt.Errorf("unknown time zone: %w", err))
				ok = false
			}
			l.Location = loc
		}
	default:
		per, err := time.ParseDuration(ls.Per)
		if err != nil {
			b.add(d, field+".per", fmt.Errorf("%w (want a duration such as 1s or 1m, or month)", err))
			ok = false
		}
		l.Period = per
		if ls.TimeZone != "" {
			b.add(d, field+".timeZone", errors.New("only a calendar month (per: month) has a time zone"))
			ok = false
		}
	}
	if !ok {
		return quota.Limit{}, false
	}
	if err := policyLimit(l); err != nil {
		b.add(d, field, err)
		return quota.Limit{}, false
	}
	return l, true
}

// errZeroRequests: a rule file's requests_per_unit: 0 denies everything, as
// envoyproxy/ratelimit's does, and quota counts it so; in a Policy it is
// almost always a typo, and an application is cut off with a BLOCKED
// subscription, which says so in the analytics, not with a zero tier.
var errZeroRequests = errors.New("requests must be at least 1 (block an application with its subscription's state: BLOCKED)")

// policyLimit is quota's validation plus the Policy-only rule above.
func policyLimit(l quota.Limit) error {
	if l.Requests == 0 {
		return errZeroRequests
	}
	return l.Validate()
}

func (b *builder) limits(d *Document, field string, specs []LimitSpec) ([]quota.Limit, bool) {
	if len(specs) == 0 {
		b.add(d, field, errors.New("at least one limit is required"))
		return nil, false
	}
	out := make([]quota.Limit, 0, len(specs))
	ok := true
	for i, ls := range specs {
		l, good := b.limit(d, field+"["+strconv.Itoa(i)+"]", ls)
		ok = ok && good
		out = append(out, l)
	}
	return out, ok
}

// distinctCounters reports limits of one set that would share a counter:
// quota keys a counter by the limit's period and algorithm, not its size.
func (b *builder) distinctCounters(d *Document, field string, limits []quota.Limit, burst *quota.Limit) {
	seen := make(map[string]int, len(limits)+1)
	for i, l := range limits {
		if j, dup := seen[l.ID()]; dup {
			b.addf(d, fmt.Sprintf("%s[%d]", field, i), "same period and algorithm as %s[%d]; the two would share one counter", field, j)
			continue
		}
		seen[l.ID()] = i
	}
	if burst != nil {
		if j, dup := seen[burst.ID()]; dup {
			b.addf(d, "spec.burst", "same period and algorithm as %s[%d]; the two would share one counter", field, j)
		}
	}
}

func (b *builder) policy(d *Document) {
	p := d.Object.(*Policy)
	spec := &p.Spec
	ok := true
	var scope Scope
	if spec.Scope == "" {
		b.add(d, "spec.scope", errRequired)
		ok = false
	} else if s, err := ParseScope(spec.Scope); err != nil {
		b.add(d, "spec.scope", err)
		ok = false
	} else {
		scope = s
	}
	limits, good := b.limits(d, "spec.limits", spec.Limits)
	ok = ok && good

	var burst *quota.Limit
	if spec.Burst != nil {
		// A burst counts in a fixed window, the default algorithm, as
		// pkg/rules counts it.
		l := quota.Limit{Requests: spec.Burst.Requests, Algorithm: quota.FixedWindow}
		switch per, err := time.ParseDuration(spec.Burst.Per); {
		case spec.Burst.Per == "":
			b.add(d, "spec.burst.per", errRequired)
			ok = false
		case err != nil:
			b.add(d, "spec.burst.per", fmt.Errorf("%w (want a duration such as 1s; a burst is never per month)", err))
			ok = false
		default:
			l.Period = per
			if err := policyLimit(l); err != nil {
				b.add(d, "spec.burst", err)
				ok = false
			}
		}
		burst = &l
	}
	if good {
		b.distinctCounters(d, "spec.limits", limits, burst)
	}

	groups := make([]CompiledGroup, 0, len(spec.ConditionGroups))
	descs := make(map[string]int, len(spec.ConditionGroups))
	for i, cg := range spec.ConditionGroups {
		field := "spec.conditionGroups[" + strconv.Itoa(i) + "]"
		g, good := b.group(d, field, cg)
		ok = ok && good
		switch {
		case cg.Description == "":
			b.add(d, field+".description", errors.New("required: it names the group in metadata and counters"))
			ok = false
		case cg.Description == DefaultGroup:
			b.addf(d, field+".description", "%q is reserved for the default limits", DefaultGroup)
			ok = false
		case strings.Contains(cg.Description, "|"):
			b.addf(d, field+".description", "%q contains '|', which separates the parts of a counter key", cg.Description)
			ok = false
		default:
			if j, dup := descs[cg.Description]; dup {
				b.addf(d, field+".description", "%q is also the description of conditionGroups[%d]; descriptions name groups and must be unique", cg.Description, j)
				ok = false
			}
			descs[cg.Description] = i
		}
		if good {
			b.distinctCounters(d, field+".limits", g.Limits, burst)
		}
		groups = append(groups, g)
	}
	if !ok {
		return
	}
	stop := true
	if spec.StopOnQuotaReach != nil {
		stop = *spec.StopOnQuotaReach
	}
	cp := &CompiledPolicy{
		Name:             d.Name,
		Scope:            scope,
		Limits:           limits,
		Burst:            burst,
		StopOnQuotaReach: stop,
		Groups:           groups,
		Pos:              d.Pos,
		Doc:              p,
	}
	withBurst := func(ls []quota.Limit) []quota.Limit {
		if burst == nil {
			return ls
		}
		return append(slices.Clip(ls), *burst)
	}
	cp.counted = make([][]quota.Limit, 0, len(groups)+1)
	cp.counted = append(cp.counted, withBurst(limits))
	for _, g := range groups {
		cp.counted = append(cp.counted, withBurst(g.Limits))
	}
	b.snap.policies[d.Name] = cp
}

func (b *builder) group(d *Document, field string, cg ConditionGroup) (CompiledGroup, bool) {
	g := CompiledGroup{Description: cg.Description}
	ok := true
	if len(cg.Conditions) == 0 {
		b.add(d, field+".conditions", errors.New("at least one condition is required"))
		ok = false
	}
	for i, c := range cg.Conditions {
		cc, good := b.condition(d, field+".conditions["+strconv.Itoa(i)+"]", c)
		ok = ok && good
		g.Conditions = append(g.Conditions, cc)
	}
	limits, good := b.limits(d, field+".limits", cg.Limits)
	g.Limits = limits
	return g, ok && good
}

func (b *builder) condition(d *Document, field string, c Condition) (CompiledCondition, bool) {
	n := 0
	for _, set := range []bool{c.IP != nil, c.Header != nil, c.QueryParam != nil, c.Claim != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		b.addf(d, field, "a condition holds exactly one of ip, header, queryParam or claim, not %d", n)
		return CompiledCondition{}, false
	}
	if c.IP != nil {
		p, err := parsePrefix(c.IP.CIDR)
		if err != nil {
			b.add(d, field+".ip.cidr", err)
			return CompiledCondition{}, false
		}
		return CompiledCondition{Kind: ConditionIP, Prefix: p, Invert: c.IP.Invert}, true
	}
	kind, name, v := ConditionHeader, "header", c.Header
	switch {
	case c.QueryParam != nil:
		kind, name, v = ConditionQueryParam, "queryParam", c.QueryParam
	case c.Claim != nil:
		kind, name, v = ConditionClaim, "claim", c.Claim
	}
	ok := true
	if v.Name == "" {
		b.add(d, field+"."+name+".name", errRequired)
		ok = false
	}
	if v.Value == "" {
		b.add(d, field+"."+name+".value", errors.New(`required ("*" matches any value that is present)`))
		ok = false
	}
	cc := CompiledCondition{Kind: kind, Name: v.Name, Match: MatchExact, Value: v.Value, Invert: v.Invert}
	if kind == ConditionHeader {
		cc.Name = strings.ToLower(v.Name)
	}
	switch {
	case v.Value == "*":
		cc.Match, cc.Value = MatchPresent, ""
	case strings.HasSuffix(v.Value, "*"):
		cc.Match, cc.Value = MatchPrefix, strings.TrimSuffix(v.Value, "*")
	}
	return cc, ok
}

// parsePrefix reads a CIDR; a bare address is a single host.
func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errRequired
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: an address with a zone cannot be matched", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// policyRef resolves a policy reference and checks that its scope fits the
// place it is used.
func (b *builder) policyRef(d *Document, field, name string, want Scope) *CompiledPolicy {
	p, ok := b.snap.policies[name]
	if !ok {
		if _, declared := b.declared[KindPolicy][name]; !declared {
			b.addf(d, field, "unknown Policy %q", name)
		}
		return nil
	}
	if p.Scope != want {
		b.addf(d, field, "Policy %q has scope %s; here it must have scope %s", name, p.Scope, want)
		return nil
	}
	return p
}
