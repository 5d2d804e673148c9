package route

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// reference is the matcher written the slow, obvious way: refuse by
// scanning for forbidden text, then try every API and every operation and
// keep the most specific. The fuzz target holds Table.Match to it.
type reference struct {
	apis []*catalog.CompiledAPI
}

var errRefBad = errors.New("refused")

func (r reference) match(host, method, raw string) (api *catalog.CompiledAPI, op *catalog.CompiledOperation, params []Param, err error) {
	path, _, _ := strings.Cut(raw, "?")
	if refRefuses(path) {
		return nil, nil, nil, errRefBad
	}
	rawSegs := strings.Split(strings.TrimSuffix(path, "/"), "/")[1:]
	segs := make([]string, len(rawSegs))
	for i, s := range rawSegs {
		segs[i], _ = url.PathUnescape(s)
	}

	host = strings.ToLower(host)
	if strings.HasPrefix(host, "[") {
		if i := strings.Index(host, "]"); i >= 0 {
			host = host[:i+1]
		}
	} else if strings.Count(host, ":") == 1 {
		host = host[:strings.Index(host, ":")]
	}
	host = strings.TrimSuffix(host, ".")

	best, bestLen, bestHost := (*catalog.CompiledAPI)(nil), -1, false
	for _, a := range r.apis {
		forHost := slices.Contains(a.Hosts, host)
		if len(a.Hosts) > 0 && !forHost {
			continue
		}
		var bp []string
		if a.BasePath != "/" {
			bp = strings.Split(a.BasePath[1:], "/")
		}
		for i, s := range bp {
			if d, err := url.PathUnescape(s); err == nil {
				bp[i] = d
			}
		}
		if len(bp) > len(segs) || !slices.Equal(segs[:len(bp)], bp) {
			continue
		}
		if len(bp) > bestLen || (len(bp) == bestLen && forHost && !bestHost) {
			best, bestLen, bestHost = a, len(bp), forHost
		}
	}
	if best == nil {
		return nil, nil, nil, ErrNoAPI
	}
	segs, rawSegs = segs[bestLen:], rawSegs[bestLen:]
	op = refOperation(best, method, segs)
	if op == nil && method == "HEAD" {
		op = refOperation(best, "GET", segs)
	}
	if op == nil {
		return best, nil, nil, ErrNoOperation
	}
	for i, s := range op.Segments {
		if s.Kind == catalog.SegmentParam {
			params = append(params, Param{Name: s.Text, Value: rawSegs[i]})
		}
	}
	return best, op, params, nil
}

func refRefuses(path string) bool {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, `\;# `) || strings.Contains(path, "//") {
		return true
	}
	for _, c := range []byte(path) {
		if c < 0x20 || c >= 0x7f {
			return true
		}
	}
	for i := strings.Index(path, "%"); i >= 0; i = strings.Index(path, "%") {
		if len(path) < i+3 {
			return true
		}
		v, err := strconv.ParseUint(path[i+1:i+3], 16, 8)
		if err != nil || strings.ContainsRune("/\\.%;\x7f", rune(v)) || v < 0x20 {
			return true
		}
		path = path[i+3:]
	}
	for _, s := range strings.Split(path, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// refOperation keeps, of the operations matching segs, the one whose
// segment kinds are least left to right (a template ending sooner is
// less).
func refOperation(a *catalog.CompiledAPI, method string, segs []string) *catalog.CompiledOperation {
	var best *catalog.CompiledOperation
	var bestRank []int
	for _, op := range a.Operations {
		if op.Method != method || !refMatches(op.Segments, segs) {
			continue
		}
		rank := make([]int, len(op.Segments))
		for i, s := range op.Segments {
			rank[i] = int(s.Kind) // literal < param < wildcard < rest
		}
		if best == nil || slices.Compare(rank, bestRank) < 0 {
			best, bestRank = op, rank
		}
	}
	return best
}

func refMatches(tmpl []catalog.Segment, segs []string) bool {
	for i, s := range tmpl {
		if s.Kind == catalog.SegmentRest {
			return true
		}
		if i >= len(segs) || segs[i] == "" {
			return false
		}
		if s.Kind == catalog.SegmentLiteral {
			lit, err := url.PathUnescape(s.Text)
			if err != nil {
				lit = s.Text
			}
			if lit != segs[i] {
				return false
			}
		}
	}
	return len(tmpl) == len(segs)
}

func TestReferenceAgreesWithTheTableCases(t *testing.T) {
	ref := reference{apis: testTable(t).Snapshot().APIs()}
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			api, op, params, err := ref.match(tc.host, tc.method, tc.path)
			if tc.reason != "" {
				if err != errRefBad {
					t.Fatalf("reference accepted a path refused for %q", tc.reason)
				}
				return
			}
			checkMatch(t, tc, Match{API: api, Op: op, Query: tc.query}, params, err)
		})
	}
}

func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.host, tc.method, tc.path)
	}
	tab := testTable(f)
	ref := reference{apis: tab.Snapshot().APIs()}
	f.Fuzz(func(t *testing.T, host, method, path string) {
		m, err := tab.Match(host, method, path)
		api, op, params, refErr := ref.match(host, method, path)
		if refErr == errRefBad {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("Match(%q, %q, %q) = %v, %v; the reference refuses the path", host, method, path, opName(m.Op), err)
			}
			return
		}
		if errors.Is(err, ErrBadPath) {
			t.Fatalf("Match(%q, %q, %q) refused the path (%v); the reference accepts it", host, method, path, err)
		}
		if !errors.Is(err, refErr) || (err == nil) != (refErr == nil) || m.API != api || m.Op != op {
			t.Fatalf("Match(%q, %q, %q) = %s %s %v; reference = %s %s %v", host, method, path,
				apiName(m.API), opName(m.Op), err, apiName(api), opName(op), refErr)
		}
		if !slices.Equal(m.Params(), params) {
			t.Fatalf("Match(%q, %q, %q) params %v; reference %v", host, method, path, m.Params(), params)
		}
		if q, _ := strings.CutPrefix(path[len(m.Path):], "?"); m.Query != q {
			t.Fatalf("query %q, want %q", m.Query, q)
		}
	})
}

func opName(op *catalog.CompiledOperation) string {
	if op == nil {
		return "<nil>"
	}
	return op.Name
}
