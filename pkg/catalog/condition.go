package catalog

import (
	"net/netip"
	"strings"
)

// Attributes are the parts of a request that policy conditions read.
// pkg/authz implements it over the ext_authz check request and the verified
// token; the catalog declares it because the conditions are evaluated here.
type Attributes interface {
	// ClientAddr is the downstream client's address; invalid when unknown.
	ClientAddr() netip.Addr
	// Header returns a request header by lower-case name.
	Header(name string) (string, bool)
	QueryParam(name string) (string, bool)
	// Claim returns a token claim as a string; absent when unauthenticated.
	Claim(name string) (string, bool)
}

// ConditionKind is what a condition reads from the request.
type ConditionKind uint8

const (
	ConditionIP ConditionKind = iota + 1
	ConditionHeader
	ConditionQueryParam
	ConditionClaim
)

// ValueMatch is how a header, query parameter or claim value is compared.
type ValueMatch uint8

const (
	MatchExact   ValueMatch = iota + 1
	MatchPrefix             // written as "value*"
	MatchPresent            // written as "*"
)

// CompiledCondition is one condition of a group, parsed once.
type CompiledCondition struct {
	Kind   ConditionKind
	Prefix netip.Prefix // ConditionIP
	Name   string       // header (lower case), query parameter or claim name
	Match  ValueMatch
	Value  string // without the trailing "*" of a prefix match
	Invert bool
}

// Matches reports whether the request satisfies the condition. An absent
// value or unknown client address does not match, so an inverted condition
// matches it.
func (c *CompiledCondition) Matches(a Attributes) bool {
	var ok bool
	switch c.Kind {
	case ConditionIP:
		addr := a.ClientAddr()
		ok = addr.IsValid() && c.Prefix.Contains(addr.Unmap())
	case ConditionHeader:
		ok = c.matchValue(a.Header(c.Name))
	case ConditionQueryParam:
		ok = c.matchValue(a.QueryParam(c.Name))
	case ConditionClaim:
		ok = c.matchValue(a.Claim(c.Name))
	}
	return ok != c.Invert
}

func (c *CompiledCondition) matchValue(v string, present bool) bool {
	if !present {
		return false
	}
	switch c.Match {
	case MatchPresent:
		return true
	case MatchPrefix:
		return strings.HasPrefix(v, c.Value)
	}
	return v == c.Value
}

// Matches reports whether every condition of the group matches.
func (g *CompiledGroup) Matches(a Attributes) bool {
	for i := range g.Conditions {
		if !g.Conditions[i].Matches(a) {
			return false
		}
	}
	return true
}

// Group returns the first condition group the request matches, or nil for
// the default limits. Its Description (or DefaultGroup) is what authz puts
// in the *_policy_group metadata.
func (p *CompiledPolicy) Group(a Attributes) *CompiledGroup {
	for i := range p.Groups {
		if p.Groups[i].Matches(a) {
			return &p.Groups[i]
		}
	}
	return nil
}
