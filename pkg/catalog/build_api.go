package catalog

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// APIs: base paths, hosts, credentials and compiled operations.

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

// checkLiteral checks a literal segment of a base path or template: not
// empty, "." or "..", and nothing a URL would escape or a matcher would read
// as syntax.
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
		case hasPort(h):
			// Requests are matched on the host without its port, so an API
			// listed with one would never match.
			b.addf(d, f, "%q has a port; list the host alone (requests match on the host without the port)", spec.Hosts[i])
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

// hasPort reports a host written with a port (a.test:8443, [::1]:80); a
// bare IPv6 address has colons but no port.
func hasPort(h string) bool {
	_, _, err := net.SplitHostPort(h)
	return err == nil
}
