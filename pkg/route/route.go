package route

import (
	"errors"
	"net/url"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// Match errors. Authz maps each to its deny: ErrNoAPI and ErrNoOperation
// to 404 (or an allow, where configured), ErrBadPath to 400. None of them
// is a technical failure.
var (
	// ErrNoAPI is a host and path that no API serves.
	ErrNoAPI = errors.New("no API serves this host and path")
	// ErrNoOperation is a path under an API that none of its operations of
	// the request's method matches; Match.API is set.
	ErrNoOperation = errors.New("no operation matches the method and path")
	// ErrBadPath wraps every refusal of a path that could escape its
	// prefix; the *PathError says which rule refused it.
	ErrBadPath = errors.New("path refused")
)

// PathError is a path refused before matching. Reason is one of the
// Reason constants: a short, stable label for logs and metrics that never
// echoes the path.
type PathError struct {
	Reason string
}

func (e *PathError) Error() string { return "path refused: " + e.Reason }

// Unwrap makes every PathError match ErrBadPath.
func (e *PathError) Unwrap() error { return ErrBadPath }

// Reasons a path is refused.
const (
	ReasonNotAbsolute    = "not an absolute path"
	ReasonDotSegment     = "dot segment"
	ReasonEmptySegment   = "empty segment"
	ReasonEncodedSlash   = "encoded slash or backslash"
	ReasonEncodedDot     = "encoded dot"
	ReasonEncodedPercent = "encoded percent sign"
	ReasonSemicolon      = "semicolon"
	ReasonBackslash      = "backslash"
	ReasonBadEscape      = "malformed percent-encoding"
	ReasonControl        = "control character or NUL"
	ReasonNotASCII       = "character outside printable ASCII"
	ReasonFragment       = "fragment"
)

// The refusals are preallocated, so that a refused path costs no
// allocation; they are never modified.
var (
	errNotAbsolute    = &PathError{ReasonNotAbsolute}
	errDotSegment     = &PathError{ReasonDotSegment}
	errEmptySegment   = &PathError{ReasonEmptySegment}
	errEncodedSlash   = &PathError{ReasonEncodedSlash}
	errEncodedDot     = &PathError{ReasonEncodedDot}
	errEncodedPercent = &PathError{ReasonEncodedPercent}
	errSemicolon      = &PathError{ReasonSemicolon}
	errBackslash      = &PathError{ReasonBackslash}
	errBadEscape      = &PathError{ReasonBadEscape}
	errControl        = &PathError{ReasonControl}
	errNotASCII       = &PathError{ReasonNotASCII}
	errFragment       = &PathError{ReasonFragment}
)

// Param is one {name} of the matched template and the path segment it
// matched, still percent-encoded as the request wrote it.
type Param struct {
	Name  string
	Value string
}

// Match is what a request resolved to. API and Op are the catalog's shared
// values and must not be modified.
type Match struct {
	API *catalog.CompiledAPI
	// Op is nil when Match returns ErrNoOperation.
	Op *catalog.CompiledOperation
	// Path is the request path without the query string.
	Path string
	// Query is the query string without its "?"; "" when there is none.
	Query string

	rest string // the part of Path under the API's base path
}

// Params are the template's {param} values in template order; nil when it
// has none. They are computed on demand, so that a caller that never asks
// (authz only needs the operation) pays no allocation.
func (m Match) Params() []Param {
	if m.Op == nil {
		return nil
	}
	n := 0
	for _, s := range m.Op.Segments {
		if s.Kind == catalog.SegmentParam {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Param, 0, n)
	rest := m.rest
	for _, s := range m.Op.Segments {
		if rest == "" || rest == "/" || s.Kind == catalog.SegmentRest {
			break
		}
		seg, tail := rest[1:], ""
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, tail = seg[:i], seg[i:]
		}
		if s.Kind == catalog.SegmentParam {
			out = append(out, Param{Name: s.Text, Value: seg})
		}
		rest = tail
	}
	return out
}

// Table resolves requests against one catalog Snapshot. It is immutable
// and safe for concurrent use; a catalog reload builds a new one.
type Table struct {
	snap  *catalog.Snapshot
	hosts map[string]*baseNode // lower-case host → its APIs' base paths
	any   *baseNode            // APIs serving every host
}

// baseNode is one segment of a base-path trie.
type baseNode struct {
	children map[string]*baseNode // by decoded literal
	api      *apiRoutes           // the API whose base path ends here
}

// apiRoutes are one API's operations, by method then template.
type apiRoutes struct {
	api     *catalog.CompiledAPI
	methods [len(methodNames)]*opNode
}

// opNode is one segment of an operation-template trie.
type opNode struct {
	lit   map[string]*opNode // by decoded literal
	param *opNode
	wild  *opNode
	end   *leaf // a template ending here
	rest  *leaf // a template ending here with "**"
}

type leaf struct {
	op *catalog.CompiledOperation
}

var methodNames = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

const methodGET, methodHEAD = 0, 1

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "CONNECT":
		return 8
	}
	return -1
}

// New indexes snap's APIs and operations. It trusts the catalog's
// validation (one API per host and base path, no two operations of one
// method and shape) and keeps the first of any duplicate it meets.
func New(snap *catalog.Snapshot) *Table {
	t := &Table{snap: snap, hosts: make(map[string]*baseNode), any: &baseNode{}}
	for _, api := range snap.APIs() {
		r := &apiRoutes{api: api}
		for _, op := range api.Operations {
			m := methodIndex(op.Method)
			if m < 0 {
				continue
			}
			if r.methods[m] == nil {
				r.methods[m] = &opNode{}
			}
			r.methods[m].insert(op)
		}
		if len(api.Hosts) == 0 {
			t.any.insert(api.BasePath, r)
			continue
		}
		for _, h := range api.Hosts {
			root := t.hosts[h]
			if root == nil {
				root = &baseNode{}
				t.hosts[h] = root
			}
			root.insert(api.BasePath, r)
		}
	}
	return t
}

// Snapshot is the catalog the table was built from, so that a caller
// holding a Table reads the rest of the request's facts from the same
// catalog.
func (t *Table) Snapshot() *catalog.Snapshot { return t.snap }

func (n *baseNode) insert(basePath string, r *apiRoutes) {
	for _, seg := range splitPath(basePath) {
		if n.children == nil {
			n.children = make(map[string]*baseNode)
		}
		key := literalKey(seg)
		c := n.children[key]
		if c == nil {
			c = &baseNode{}
			n.children[key] = c
		}
		n = c
	}
	if n.api == nil {
		n.api = r
	}
}

func (n *opNode) insert(op *catalog.CompiledOperation) {
	for i, s := range op.Segments {
		switch s.Kind {
		case catalog.SegmentLiteral:
			if n.lit == nil {
				n.lit = make(map[string]*opNode)
			}
			key := literalKey(s.Text)
			c := n.lit[key]
			if c == nil {
				c = &opNode{}
				n.lit[key] = c
			}
			n = c
		case catalog.SegmentParam:
			if n.param == nil {
				n.param = &opNode{}
			}
			n = n.param
		case catalog.SegmentWildcard:
			if n.wild == nil {
				n.wild = &opNode{}
			}
			n = n.wild
		case catalog.SegmentRest:
			if i == len(op.Segments)-1 && n.rest == nil {
				n.rest = &leaf{op: op}
			}
			return
		}
	}
	if n.end == nil {
		n.end = &leaf{op: op}
	}
}

// splitPath splits "/a/b" into ["a", "b"]; "/" and "" have no segments.
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// literalKey is a template or base-path literal as the matcher compares
// it: percent-decoded, like the request's segments. A literal that does
// not decode stays as written; no valid request segment decodes to it.
func literalKey(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	d, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return d
}

// Match resolves a request: host is Envoy's :authority, method its :method
// and rawPath its :path (path and query). On ErrNoOperation the returned
// Match has API, Path and Query set; on any other error it is empty apart
// from Path and Query.
func (t *Table) Match(host, method, rawPath string) (Match, error) {
	path, query := rawPath, ""
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		path, query = rawPath[:i], rawPath[i+1:]
	}
	m := Match{Path: path, Query: query}
	if err := checkPath(path); err != nil {
		return m, err
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}

	r, end := t.any.walk(path)
	if root := t.hosts[normalizeHost(host)]; root != nil {
		if hr, hend := root.walk(path); hr != nil && (r == nil || hend >= end) {
			r, end = hr, hend
		}
	}
	if r == nil {
		return m, ErrNoAPI
	}
	m.API = r.api
	rest := path[end:]

	mi := methodIndex(method)
	if mi < 0 {
		return m, ErrNoOperation
	}
	var l *leaf
	if n := r.methods[mi]; n != nil {
		l = n.find(rest)
	}
	if l == nil && mi == methodHEAD {
		if n := r.methods[methodGET]; n != nil {
			l = n.find(rest)
		}
	}
	if l == nil {
		return m, ErrNoOperation
	}
	m.Op, m.rest = l.op, rest
	return m, nil
}

// walk follows path down the base-path trie and returns the deepest API
// found and the length of the path its base path covers.
func (n *baseNode) walk(path string) (*apiRoutes, int) {
	r, end := n.api, 0
	for i := 0; i < len(path) && n.children != nil; {
		j := strings.IndexByte(path[i+1:], '/')
		if j < 0 {
			j = len(path)
		} else {
			j += i + 1
		}
		seg := path[i+1 : j]
		if seg == "" {
			break
		}
		if strings.IndexByte(seg, '%') < 0 {
			n = n.children[seg]
		} else {
			var buf [64]byte
			n = n.children[string(decode(buf[:0], seg))]
		}
		if n == nil {
			break
		}
		if n.api != nil {
			r, end = n.api, j
		}
		i = j
	}
	return r, end
}

// find returns the most specific template matching rest ("" or "/" for no
// segments, else "/seg/seg"), trying children in order of specificity and
// backtracking: depth first in that order finds the template whose
// segment kinds are least, left to right.
func (n *opNode) find(rest string) *leaf {
	if rest == "" || rest == "/" {
		if n.end != nil {
			return n.end
		}
		return n.rest
	}
	seg, tail := rest[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, tail = seg[:i], seg[i:]
	}
	if n.lit != nil {
		var c *opNode
		if strings.IndexByte(seg, '%') < 0 {
			c = n.lit[seg]
		} else {
			var buf [64]byte
			c = n.lit[string(decode(buf[:0], seg))]
		}
		if c != nil {
			if l := c.find(tail); l != nil {
				return l
			}
		}
	}
	if n.param != nil {
		if l := n.param.find(tail); l != nil {
			return l
		}
	}
	if n.wild != nil {
		if l := n.wild.find(tail); l != nil {
			return l
		}
	}
	return n.rest
}

// normalizeHost lower-cases host and drops its port and a trailing dot,
// allocating only when host has upper-case letters.
func normalizeHost(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[:i], ':') < 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// checkPath refuses a path that could mean something else to the upstream
// than to the matcher (see the package documentation).
func checkPath(p string) error {
	if p == "" || p[0] != '/' {
		return errNotAbsolute
	}
	segStart := 1
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if i > 0 {
				if err := checkSegment(p[segStart:i], false); err != nil {
					return err
				}
			}
			segStart = i + 1
		case c == '%':
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return errBadEscape
			}
			switch d := byte(unhex(p[i+1])<<4 | unhex(p[i+2])); {
			case d == '/' || d == '\\':
				return errEncodedSlash
			case d == '.':
				return errEncodedDot
			case d == '%':
				return errEncodedPercent
			case d == ';':
				return errSemicolon
			case d < 0x20 || d == 0x7f:
				return errControl
			}
			i += 2
		case c == '\\':
			return errBackslash
		case c == ';':
			return errSemicolon
		case c == '#':
			return errFragment
		case c < 0x20 || c == 0x7f:
			return errControl
		case c == ' ' || c >= 0x80:
			return errNotASCII
		}
	}
	return checkSegment(p[segStart:], true)
}

// checkSegment refuses "." and "..", and an empty segment other than the
// one a trailing slash (or the root path) leaves.
func checkSegment(seg string, last bool) error {
	switch seg {
	case "":
		if !last {
			return errEmptySegment
		}
	case ".", "..":
		return errDotSegment
	}
	return nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// decode appends the percent-decoding of s, whose escapes checkPath has
// already found well formed, to dst.
func decode(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			dst = append(dst, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
			continue
		}
		dst = append(dst, s[i])
	}
	return dst
}
