package catalog

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// Build validates documents as one catalog and compiles them into a
// Snapshot. It reports every problem it finds, as Problems sorted by file
// and line, and returns no Snapshot when there is any: a catalog is
// all-or-nothing, so that a reload never serves half of an edit.
//
// Build reads no secret: an introspection secret is checked to be
// referenced, by file or environment variable, not that it exists.
func Build(docs []Document) (*Snapshot, error) {
	var problems Problems
	byKind := make(map[string][]*Document)
	for i := range docs {
		d := &docs[i]
		if !objectFits(d) {
			problems = append(problems, &Problem{Pos: d.Pos, Kind: d.Kind, Name: d.Name,
				Err: fmt.Errorf("a %s document cannot hold a %T", d.Kind, d.Object)})
			continue
		}
		byKind[d.Kind] = append(byKind[d.Kind], d)
	}
	n := func(kind string) int { return len(byKind[kind]) }
	b := &builder{
		snap: &Snapshot{
			idps:         make(map[string]*CompiledIdentityProvider, n(KindIdentityProvider)),
			idpsByIssuer: make(map[string]*CompiledIdentityProvider, n(KindIdentityProvider)),
			apis:         make(map[string]*CompiledAPI, n(KindAPI)),
			routes:       make(map[route]*CompiledAPI, n(KindAPI)),
			apps:         make(map[string]*CompiledApplication, n(KindApplication)),
			clients:      make(map[string]clientEntry, n(KindApplication)),
			keys:         make(map[[32]byte]*CompiledAPIKey, n(KindApplication)),
			subs:         make(map[subKey]*CompiledSubscription, n(KindSubscription)),
			policies:     make(map[string]*CompiledPolicy, n(KindPolicy)),
		},
		problems:   problems,
		declared:   make(map[string]map[string]*Document),
		locations:  make(map[string]*time.Location),
		atBasePath: make(map[string]*CompiledAPI, n(KindAPI)),
	}
	for _, kind := range []string{KindPolicy, KindIdentityProvider, KindAPI, KindApplication, KindSubscription} {
		b.declare(kind, byKind[kind])
	}
	for _, d := range b.unique[kindIndex[KindPolicy]] {
		b.policy(d)
	}
	for _, d := range b.unique[kindIndex[KindIdentityProvider]] {
		b.identityProvider(d)
	}
	for _, d := range b.unique[kindIndex[KindAPI]] {
		b.api(d)
	}
	b.routeOverlaps()
	for _, d := range b.unique[kindIndex[KindApplication]] {
		b.application(d)
	}
	for _, d := range b.unique[kindIndex[KindSubscription]] {
		b.subscription(d)
	}
	if len(b.problems) > 0 {
		b.problems.sort()
		return nil, b.problems
	}
	b.snap.index()
	return b.snap, nil
}

// objectFits reports whether d.Object is the type its Kind says, so that a
// Document made by hand rather than by Decode cannot make Build panic.
func objectFits(d *Document) bool {
	var ok bool
	switch d.Kind {
	case KindIdentityProvider:
		_, ok = d.Object.(*IdentityProvider)
	case KindAPI:
		_, ok = d.Object.(*API)
	case KindApplication:
		_, ok = d.Object.(*Application)
	case KindSubscription:
		_, ok = d.Object.(*Subscription)
	case KindPolicy:
		_, ok = d.Object.(*Policy)
	}
	return ok
}

type builder struct {
	snap     *Snapshot
	problems Problems
	// declared holds every well-named document by kind and name, compiled
	// or not, so that a reference to a document that failed validation is
	// not reported a second time as dangling.
	declared  map[string]map[string]*Document
	unique    [5][]*Document // per kind in declaration order, duplicates removed
	locations map[string]*time.Location

	atBasePath map[string]*CompiledAPI // the first API routed at each base path, any host
}

var errRequired = errors.New("required")

// add records a problem at field of d, locating the field's line lazily.
func (b *builder) add(d *Document, field string, err error) {
	line := d.Pos.Line
	if field != "" && d.file != nil {
		if l := d.file.line(d.index, field); l > 0 {
			line = l
		}
	}
	b.problems = append(b.problems, &Problem{
		Pos: Pos{File: d.Pos.File, Line: line}, Kind: d.Kind, Name: d.Name, Field: field, Err: err,
	})
}

func (b *builder) addf(d *Document, field, format string, args ...any) {
	b.add(d, field, fmt.Errorf(format, args...))
}

var kindIndex = map[string]int{KindPolicy: 0, KindIdentityProvider: 1, KindAPI: 2, KindApplication: 3, KindSubscription: 4}

// nameRE is a Kubernetes object name (RFC 1123 subdomain), so that the
// documents can become custom resources unchanged. It also keeps ":" out of
// the names that counters join with ":".
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func (b *builder) declare(kind string, docs []*Document) {
	seen := make(map[string]*Document, len(docs))
	b.declared[kind] = seen
	for _, d := range docs {
		switch {
		case d.Name == "":
			b.add(d, "metadata.name", errRequired)
			continue
		case len(d.Name) > 253 || !nameRE.MatchString(d.Name):
			b.addf(d, "metadata.name", "%q is not a valid name (lower-case letters, digits, '-' and '.', as a Kubernetes object name)", d.Name)
			continue
		}
		if first, dup := seen[d.Name]; dup {
			b.addf(d, "metadata.name", "duplicate %s name; first defined at %s", kind, first.Pos)
			continue
		}
		seen[d.Name] = d
		b.unique[kindIndex[kind]] = append(b.unique[kindIndex[kind]], d)
	}
}

// --- limits and policies ---

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
	if err := l.Validate(); err != nil {
		b.add(d, field, err)
		return quota.Limit{}, false
	}
	return l, true
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
			if err := l.Validate(); err != nil {
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

// --- identity providers ---

var jwtAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (b *builder) duration(d *Document, field, s string) (time.Duration, bool) {
	if s == "" {
		return 0, true
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		b.add(d, field, err)
		return 0, false
	}
	if v < 0 {
		b.addf(d, field, "%s is negative", s)
		return 0, false
	}
	return v, true
}

// httpURL checks an absolute http or https URL; http is allowed for an
// identity provider inside the mesh or in tests.
func httpURL(s string) error {
	if s == "" {
		return errRequired
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is not an http or https URL", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return fmt.Errorf("%q carries credentials; reference a secret instead", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q has a query or fragment", s)
	}
	return nil
}

func (b *builder) identityProvider(d *Document) {
	idp := d.Object.(*IdentityProvider)
	spec := &idp.Spec
	ok := true
	c := &CompiledIdentityProvider{Name: d.Name, Issuer: spec.Issuer, Pos: d.Pos, Doc: idp}
	if err := httpURL(spec.Issuer); err != nil {
		b.add(d, "spec.issuer", err)
		ok = false
	} else if first, dup := b.snap.idpsByIssuer[spec.Issuer]; dup {
		b.addf(d, "spec.issuer", "issuer %q is also IdentityProvider %q (%s); a token's issuer must name one provider", spec.Issuer, first.Name, first.Pos)
		ok = false
	} else {
		// Claimed even if this provider has other problems, so that a
		// second provider with the issuer is reported too.
		b.snap.idpsByIssuer[spec.Issuer] = c
	}
	if spec.JWT == nil && spec.Introspection == nil {
		b.add(d, "spec", errors.New("needs jwt, introspection or both: there is no other way to verify a token"))
		ok = false
	}
	if j := spec.JWT; j != nil {
		v := &JWTVerification{
			JWKSURI:       j.JWKSURI,
			Audiences:     j.Audiences,
			Algorithms:    j.Algorithms,
			ClientIDClaim: cmp.Or(j.ClientIDClaim, "client_id"),
			RequireType:   j.RequireType,
		}
		if j.JWKSURI != "" {
			if err := httpURL(j.JWKSURI); err != nil {
				b.add(d, "spec.jwt.jwksURI", err)
				ok = false
			}
		}
		if len(j.Audiences) == 0 {
			b.add(d, "spec.jwt.audiences", errors.New("at least one audience is required, so that a token minted for another service is refused"))
			ok = false
		}
		for i, a := range j.Audiences {
			if a == "" {
				b.add(d, fmt.Sprintf("spec.jwt.audiences[%d]", i), errors.New("empty audience"))
				ok = false
			}
		}
		for i, a := range j.Algorithms {
			if !jwtAlgorithms[a] {
				b.addf(d, fmt.Sprintf("spec.jwt.algorithms[%d]", i), "%q is not allowed (want an asymmetric algorithm: RS*, PS*, ES* or EdDSA)", a)
				ok = false
			}
		}
		skew, good := b.duration(d, "spec.jwt.clockSkew", j.ClockSkew)
		ok = ok && good
		v.ClockSkew = skew
		c.JWT = v
	}
	if in := spec.Introspection; in != nil {
		if err := httpURL(in.Endpoint); err != nil {
			b.add(d, "spec.introspection.endpoint", err)
			ok = false
		}
		if in.ClientID == "" {
			b.add(d, "spec.introspection.clientId", errRequired)
			ok = false
		}
		switch {
		case in.ClientSecretFile == "" && in.ClientSecretEnv == "":
			b.add(d, "spec.introspection", errors.New("needs clientSecretFile or clientSecretEnv"))
			ok = false
		case in.ClientSecretFile != "" && in.ClientSecretEnv != "":
			b.add(d, "spec.introspection.clientSecretEnv", errors.New("set clientSecretFile or clientSecretEnv, not both"))
			ok = false
		case in.ClientSecretEnv != "" && !envNameRE.MatchString(in.ClientSecretEnv):
			b.addf(d, "spec.introspection.clientSecretEnv", "%q is not an environment variable name", in.ClientSecretEnv)
			ok = false
		}
		method := cmp.Or(in.AuthMethod, "client_secret_basic")
		if method != "client_secret_basic" && method != "client_secret_post" {
			b.addf(d, "spec.introspection.authMethod", "unknown %q (want client_secret_basic or client_secret_post)", in.AuthMethod)
			ok = false
		}
		c.Introspection = &Introspection{
			Endpoint:     in.Endpoint,
			ClientID:     in.ClientID,
			ClientSecret: SecretRef{File: in.ClientSecretFile, Env: in.ClientSecretEnv},
			AuthMethod:   method,
		}
	}
	var good bool
	c.Cache.MaxTTL, good = b.duration(d, "spec.cache.maxTTL", spec.Cache.MaxTTL)
	ok = ok && good
	c.Cache.NegativeTTL, good = b.duration(d, "spec.cache.negativeTTL", spec.Cache.NegativeTTL)
	ok = ok && good
	c.Cache.StaleIfError, good = b.duration(d, "spec.cache.staleIfError", spec.Cache.StaleIfError)
	ok = ok && good
	if !ok {
		return
	}
	b.snap.idps[d.Name] = c
}

// --- APIs ---

var (
	versionRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	paramNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	methods      = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true, "TRACE": true, "CONNECT": true}
)

// security parses a list of credential kinds; present is false for an
// empty list, which inherits.
func (b *builder) security(d *Document, field string, list []string) (sec Security, present, ok bool) {
	if len(list) == 0 {
		return 0, false, true
	}
	ok = true
	seen := make(map[string]bool, len(list))
	none := false
	for i, s := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if seen[s] {
			b.addf(d, f, "%q is listed twice", s)
			ok = false
			continue
		}
		seen[s] = true
		switch s {
		case "oauth2":
			sec |= SecurityOAuth2
		case "apiKey":
			sec |= SecurityAPIKey
		case "none":
			none = true
		default:
			b.addf(d, f, "unknown security %q (want oauth2, apiKey or none)", s)
			ok = false
		}
	}
	if none && len(list) > 1 {
		b.add(d, field, errors.New(`"none" must be alone: an operation either needs no credential or names those it accepts`))
		ok = false
	}
	return sec, true, ok
}

// checkPath checks a base path or template's literal parts: no empty, "."
// or ".." segment, nothing a URL would escape or a matcher would read as
// syntax.
func checkLiteral(seg string) error {
	switch {
	case seg == "":
		return errors.New(`empty segment ("//" or a trailing "/")`)
	case seg == "." || seg == "..":
		return fmt.Errorf("%q segment", seg)
	case strings.ContainsAny(seg, "{}*?# \t\r\n"):
		return fmt.Errorf("segment %q has a character a path cannot hold here", seg)
	}
	return nil
}

func checkBasePath(p string) error {
	switch {
	case p == "":
		return errRequired
	case p[0] != '/':
		return fmt.Errorf("%q must start with /", p)
	case p == "/":
		return nil
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%q must not end with / (only the root base path is /)", p)
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if err := checkLiteral(seg); err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
	}
	return nil
}

// compileTemplate splits an operation path template into segments.
func compileTemplate(t string) ([]Segment, error) {
	switch {
	case t == "":
		return nil, errRequired
	case t[0] != '/':
		return nil, fmt.Errorf("%q must start with /", t)
	case t == "/":
		return nil, nil
	}
	parts := strings.Split(t[1:], "/")
	segs := make([]Segment, 0, len(parts))
	params := make(map[string]bool)
	for i, p := range parts {
		switch {
		case p == "**":
			if i != len(parts)-1 {
				return nil, fmt.Errorf("%q: ** may only be the last segment", t)
			}
			segs = append(segs, Segment{Kind: SegmentRest})
		case p == "*":
			segs = append(segs, Segment{Kind: SegmentWildcard})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name := p[1 : len(p)-1]
			if !paramNameRE.MatchString(name) {
				return nil, fmt.Errorf("%q: bad parameter name %q", t, name)
			}
			if params[name] {
				return nil, fmt.Errorf("%q: parameter %q appears twice", t, name)
			}
			params[name] = true
			segs = append(segs, Segment{Kind: SegmentParam, Text: name})
		default:
			if err := checkLiteral(p); err != nil {
				return nil, fmt.Errorf("%q: %w (a segment is a literal, {param}, * or a final **)", t, err)
			}
			segs = append(segs, Segment{Kind: SegmentLiteral, Text: p})
		}
	}
	return segs, nil
}

// shape is what a template matches, with parameter names erased: two
// operations of one shape and method could never be told apart.
func shape(method string, segs []Segment) string {
	var sb strings.Builder
	sb.WriteString(method)
	sb.WriteByte(' ')
	if len(segs) == 0 {
		sb.WriteByte('/')
	}
	for _, s := range segs {
		sb.WriteByte('/')
		switch s.Kind {
		case SegmentLiteral:
			sb.WriteString(s.Text)
		case SegmentRest:
			sb.WriteString("**")
		default:
			sb.WriteString("*")
		}
	}
	return sb.String()
}

func (b *builder) api(d *Document) {
	a := d.Object.(*API)
	spec := &a.Spec
	ok := true
	switch {
	case spec.Version == "":
		b.add(d, "spec.version", errRequired)
		ok = false
	case !versionRE.MatchString(spec.Version):
		b.addf(d, "spec.version", "%q is not a valid version (letters, digits, '.', '_' and '-')", spec.Version)
		ok = false
	}
	if err := checkBasePath(spec.BasePath); err != nil {
		b.add(d, "spec.basePath", err)
		ok = false
	}
	c := &CompiledAPI{
		Name:        d.Name,
		Version:     spec.Version,
		ID:          d.Name + ":" + spec.Version,
		DisplayName: spec.DisplayName,
		BasePath:    spec.BasePath,
		Pos:         d.Pos,
		Doc:         a,
	}
	hosts := make(map[string]bool, len(spec.Hosts))
	for i, h := range spec.Hosts {
		f := fmt.Sprintf("spec.hosts[%d]", i)
		h = strings.ToLower(h)
		switch {
		case h == "" || strings.ContainsAny(h, "/ \t\r\n?#@"):
			b.addf(d, f, "%q is not a host name", spec.Hosts[i])
			ok = false
		case hosts[h]:
			b.addf(d, f, "host %q is listed twice", h)
			ok = false
		}
		hosts[h] = true
		c.Hosts = append(c.Hosts, h)
	}
	seenIdP := make(map[string]bool, len(spec.IdentityProviders))
	for i, name := range spec.IdentityProviders {
		f := fmt.Sprintf("spec.identityProviders[%d]", i)
		if seenIdP[name] {
			b.addf(d, f, "IdentityProvider %q is listed twice", name)
			ok = false
			continue
		}
		seenIdP[name] = true
		idp, found := b.snap.idps[name]
		if !found {
			if _, declared := b.declared[KindIdentityProvider][name]; !declared {
				b.addf(d, f, "unknown IdentityProvider %q", name)
			}
			ok = false
			continue
		}
		c.IdentityProviders = append(c.IdentityProviders, idp)
	}
	sec, present, good := b.security(d, "spec.security", spec.Security)
	ok = ok && good
	if !present {
		sec = SecurityOAuth2
	}
	c.Security = sec
	if spec.APIKey != nil {
		for i, h := range spec.APIKey.Headers {
			if !headerNameRE.MatchString(h) {
				b.addf(d, fmt.Sprintf("spec.apiKey.headers[%d]", i), "%q is not a header name", h)
				ok = false
			}
			c.APIKeyHeaders = append(c.APIKeyHeaders, strings.ToLower(h))
		}
		for i, q := range spec.APIKey.QueryParams {
			if q == "" {
				b.add(d, fmt.Sprintf("spec.apiKey.queryParams[%d]", i), errors.New("empty query parameter name"))
				ok = false
			}
			c.APIKeyQueryParams = append(c.APIKeyQueryParams, q)
		}
	}
	if spec.Policy != "" {
		c.Policy = b.policyRef(d, "spec.policy", spec.Policy, ScopeAPI)
		ok = ok && c.Policy != nil
	}

	used := sec
	if len(spec.Operations) == 0 {
		b.add(d, "spec.operations", errors.New("at least one operation is required"))
		ok = false
	}
	shapes := make(map[string]int, len(spec.Operations))
	for i, op := range spec.Operations {
		field := "spec.operations[" + strconv.Itoa(i) + "]"
		o := &CompiledOperation{API: c, Method: op.Method, Template: op.Path, Scopes: op.Scopes}
		if !methods[op.Method] {
			if op.Method == "" {
				b.add(d, field+".method", errRequired)
			} else {
				b.addf(d, field+".method", "unknown HTTP method %q (want an upper-case method such as GET)", op.Method)
			}
			ok = false
		}
		segs, err := compileTemplate(op.Path)
		if err != nil {
			b.add(d, field+".path", err)
			ok = false
		}
		o.Segments = segs
		if err == nil && methods[op.Method] {
			key := shape(op.Method, segs)
			if j, dup := shapes[key]; dup {
				b.addf(d, field, "%s %s matches the same requests as operations[%d] (%s %s)", op.Method, op.Path, j, spec.Operations[j].Method, spec.Operations[j].Path)
				ok = false
			}
			shapes[key] = i
		}
		for j, s := range op.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n") {
				b.addf(d, fmt.Sprintf("%s.scopes[%d]", field, j), "%q is not an OAuth2 scope", s)
				ok = false
			}
		}
		osec, present, good := b.security(d, field+".security", op.Security)
		ok = ok && good
		o.Security = sec
		if present {
			o.Security = osec
		}
		if good {
			used |= o.Security
		}
		if op.Policy != "" {
			o.Policy = b.policyRef(d, field+".policy", op.Policy, ScopeResource)
			ok = ok && o.Policy != nil
		}
		o.Name = op.Method + " " + op.Path
		o.Counter = c.ID + ":" + o.Name
		c.Operations = append(c.Operations, o)
	}
	if used.Has(SecurityOAuth2) && len(spec.IdentityProviders) == 0 {
		b.add(d, "spec.identityProviders", errors.New("oauth2 security needs at least one identity provider whose tokens the API trusts"))
		ok = false
	}
	if used.Has(SecurityAPIKey) && len(c.APIKeyHeaders) == 0 && len(c.APIKeyQueryParams) == 0 {
		b.add(d, "spec.apiKey", errors.New("apiKey security needs at least one header or query parameter to read the key from"))
		ok = false
	}
	if !ok {
		return
	}
	b.snap.apis[d.Name] = c
}

// routeOverlaps reports two APIs that claim the same base path on a common
// host (an API without hosts serves every host), since a request could not
// tell which of them it is for.
func (b *builder) routeOverlaps() {
	for _, d := range b.unique[kindIndex[KindAPI]] {
		c, ok := b.snap.apis[d.Name]
		if !ok {
			continue
		}
		hosts := c.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			key := route{host: h, basePath: c.BasePath}
			var other *CompiledAPI
			if o, taken := b.snap.routes[key]; taken {
				other = o
			} else if o, taken := b.snap.routes[route{basePath: c.BasePath}]; taken {
				other = o // an any-host API already serves this base path
			} else if h == "" {
				other = b.atBasePath[c.BasePath] // some host already has it
			}
			if other != nil {
				where := "on host " + strconv.Quote(h)
				if h == "" || len(other.Hosts) == 0 {
					where = "on every host"
				}
				b.addf(d, "spec.basePath", "base path %q %s is also served by API %q (%s)", c.BasePath, where, other.Name, other.Pos)
				continue
			}
			b.snap.routes[key] = c
			if _, seen := b.atBasePath[c.BasePath]; !seen {
				b.atBasePath[c.BasePath] = c
			}
		}
	}
}

// --- applications and subscriptions ---

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (b *builder) application(d *Document) {
	a := d.Object.(*Application)
	spec := &a.Spec
	ok := true
	c := &CompiledApplication{Name: d.Name, DisplayName: spec.DisplayName, Owner: spec.Owner, Pos: d.Pos, Doc: a}
	if spec.Policy != "" {
		c.Policy = b.policyRef(d, "spec.policy", spec.Policy, ScopeApplication)
		ok = ok && c.Policy != nil
	}
	for i, oc := range spec.OAuthClients {
		field := "spec.oauthClients[" + strconv.Itoa(i) + "]"
		kt, err := ParseKeyType(oc.KeyType)
		if err != nil {
			b.add(d, field+".keyType", err)
			ok = false
		}
		switch other, dup := b.snap.clients[oc.ClientID]; {
		case oc.ClientID == "":
			b.add(d, field+".clientId", errRequired)
			ok = false
		case dup && other.app == c:
			b.addf(d, field+".clientId", "OAuth client %q is listed twice", oc.ClientID)
			ok = false
		case dup:
			b.addf(d, field+".clientId", "OAuth client %q also belongs to Application %q (%s)", oc.ClientID, other.app.Name, other.app.Pos)
			ok = false
		default:
			// Claimed at once, so that a duplicate within this
			// application is found too.
			b.snap.clients[oc.ClientID] = clientEntry{app: c, keyType: kt}
		}
		c.OAuthClients = append(c.OAuthClients, OAuthClientBinding{ClientID: oc.ClientID, KeyType: kt})
	}
	ids := make(map[string]int, len(spec.APIKeys))
	for i, k := range spec.APIKeys {
		field := "spec.apiKeys[" + strconv.Itoa(i) + "]"
		key := &CompiledAPIKey{Application: c, ID: k.ID, AllowedReferrers: k.AllowedReferrers}
		switch j, dup := ids[k.ID]; {
		case k.ID == "":
			b.add(d, field+".id", errors.New("required: it names the key in logs and analytics"))
			ok = false
		case dup:
			b.addf(d, field+".id", "key id %q is also apiKeys[%d]", k.ID, j)
			ok = false
		default:
			ids[k.ID] = i
		}
		if !sha256RE.MatchString(k.SHA256) {
			b.add(d, field+".sha256", errors.New("want the key's SHA-256 as 64 lower-case hex digits"))
			ok = false
		} else {
			hex.Decode(key.Hash[:], []byte(k.SHA256))
			if other, dup := b.snap.keys[key.Hash]; dup {
				b.addf(d, field+".sha256", "same key hash as key %q of Application %q (%s)", other.ID, other.Application.Name, other.Application.Pos)
				ok = false
			} else {
				b.snap.keys[key.Hash] = key
			}
		}
		kt, err := ParseKeyType(k.KeyType)
		if err != nil {
			b.add(d, field+".keyType", err)
			ok = false
		}
		key.KeyType = kt
		if k.Expires != "" {
			t, err := time.Parse(time.RFC3339, k.Expires)
			if err != nil {
				b.add(d, field+".expires", fmt.Errorf("want an RFC 3339 time such as 2027-06-30T00:00:00Z: %w", err))
				ok = false
			}
			key.Expires = t
		}
		for j, s := range k.AllowedCIDRs {
			p, err := parsePrefix(s)
			if err != nil {
				b.add(d, fmt.Sprintf("%s.allowedCIDRs[%d]", field, j), err)
				ok = false
			}
			key.AllowedIPs = append(key.AllowedIPs, p)
		}
		for j, r := range k.AllowedReferrers {
			if r == "" {
				b.add(d, fmt.Sprintf("%s.allowedReferrers[%d]", field, j), errors.New("empty referrer pattern"))
				ok = false
			}
		}
		c.APIKeys = append(c.APIKeys, key)
	}
	// Client ids and key hashes stay claimed even when the application has
	// problems, so that a second application using them is reported too;
	// Build returns no snapshot then.
	if ok {
		b.snap.apps[d.Name] = c
	}
}

func (b *builder) subscription(d *Document) {
	s := d.Object.(*Subscription)
	spec := &s.Spec
	ok := true
	c := &CompiledSubscription{Name: d.Name, Pos: d.Pos, Doc: s}
	// missing reports an empty or dangling reference; one to a document
	// that exists but failed validation was reported there.
	missing := func(field, kind, name string) {
		ok = false
		if name == "" {
			b.add(d, field, errRequired)
		} else if _, declared := b.declared[kind][name]; !declared {
			b.addf(d, field, "unknown %s %q", kind, name)
		}
	}
	if app, found := b.snap.apps[spec.Application]; found {
		c.Application = app
	} else {
		missing("spec.application", KindApplication, spec.Application)
	}
	if api, found := b.snap.apis[spec.API]; found {
		c.API = api
	} else {
		missing("spec.api", KindAPI, spec.API)
	}
	if spec.Policy == "" {
		b.add(d, "spec.policy", errors.New("required: the plan the application is subscribed under"))
		ok = false
	} else {
		c.Policy = b.policyRef(d, "spec.policy", spec.Policy, ScopeSubscription)
		ok = ok && c.Policy != nil
	}
	state, err := ParseSubscriptionState(spec.State)
	if err != nil {
		b.add(d, "spec.state", err)
		ok = false
	}
	c.State = state
	if !ok {
		return
	}
	key := subKey{app: c.Application.Name, api: c.API.Name}
	if other, dup := b.snap.subs[key]; dup {
		b.addf(d, "spec.api", "Application %q is already subscribed to API %q by Subscription %q (%s)", key.app, key.api, other.Name, other.Pos)
		return
	}
	c.Counter = c.Application.Name + ":" + c.API.ID
	b.snap.subs[key] = c
}
