package rules

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar from the current answers")

// A fixture is a txtar archive: a comment, then sections introduced by
// "-- name --" lines.
//
//	-- rules/NAME.yaml --  a rule file (several allowed; parsed in order)
//	-- policies.yaml --    catalog Policy documents (multi-document YAML),
//	                       loaded through catalog.Decode and catalog.Build
//	-- error --            compiling must fail with every line as a substring
//	-- requests --         one request per line: "domain: desc | desc ...";
//	                       a desc is space-separated "key=value" entries
//	                       (%-escaped, so %20 is a space) and an optional
//	                       "@N/UNIT" or "@N/UNITxM" limit override
//	-- want --             each request line, then one line per descriptor
type archive struct {
	comment  string
	sections []section
}

type section struct {
	name string
	data string
}

func parseArchive(data string) archive {
	var a archive
	cur := -1
	var b strings.Builder
	flush := func() {
		if cur < 0 {
			a.comment = b.String()
		} else {
			a.sections[cur].data = b.String()
		}
		b.Reset()
	}
	for _, line := range strings.SplitAfter(data, "\n") {
		t := strings.TrimRight(line, "\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			flush()
			a.sections = append(a.sections, section{name: strings.TrimSpace(t[3 : len(t)-3])})
			cur = len(a.sections) - 1
			continue
		}
		b.WriteString(line)
	}
	flush()
	return a
}

func (a archive) format() string {
	var b strings.Builder
	b.WriteString(a.comment)
	for _, s := range a.sections {
		fmt.Fprintf(&b, "-- %s --\n", s.name)
		b.WriteString(s.data)
	}
	return b.String()
}

func (a archive) get(name string) (string, bool) {
	for _, s := range a.sections {
		if s.name == name {
			return s.data, true
		}
	}
	return "", false
}

// loadPolicies loads catalog Policy documents as the binaries do: decoded
// strictly and compiled by catalog.Build, whose problems name file and line.
// A Policy's validation lives there; pkg/catalog/testdata/cases holds its
// cases.
func loadPolicies(data string) ([]*catalog.CompiledPolicy, error) {
	docs, err := catalog.Decode("policies.yaml", []byte(data))
	if err != nil {
		return nil, err
	}
	snap, err := catalog.Build(docs)
	if err != nil {
		return nil, err
	}
	return snap.Policies(), nil
}

// archivePolicies loads the archive's policies.yaml, if any.
func archivePolicies(a archive) ([]*catalog.CompiledPolicy, error) {
	data, ok := a.get("policies.yaml")
	if !ok {
		return nil, nil
	}
	return loadPolicies(data)
}

// compileArchive parses the archive's rule files and policies and compiles
// them.
func compileArchive(a archive) (*Set, []File, error) {
	var files []File
	var errs []error
	for _, s := range a.sections {
		if !strings.HasPrefix(s.name, "rules/") {
			continue
		}
		f, err := ParseFile(s.name, []byte(s.data))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	policies, err := archivePolicies(a)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	set, err := Compile(files, policies)
	return set, files, err
}

// request is one parsed request line.
type request struct {
	domain string
	descs  []*rlv3.RateLimitDescriptor
}

var unitNames = map[string]typev3.RateLimitUnit{
	"SECOND": typev3.RateLimitUnit_SECOND, "MINUTE": typev3.RateLimitUnit_MINUTE, "HOUR": typev3.RateLimitUnit_HOUR,
	"DAY": typev3.RateLimitUnit_DAY, "MONTH": typev3.RateLimitUnit_MONTH, "YEAR": typev3.RateLimitUnit_YEAR,
	"WEEK": typev3.RateLimitUnit(7), "UNKNOWN": typev3.RateLimitUnit_UNKNOWN,
}

func parseRequest(line string) (request, error) {
	domain, rest, ok := strings.Cut(line, ":")
	if !ok {
		return request{}, fmt.Errorf("request %q: want \"domain: descriptors\"", line)
	}
	req := request{domain: strings.TrimSpace(domain)}
	for _, part := range strings.Split(rest, "|") {
		d, err := parseDescriptor(part)
		if err != nil {
			return request{}, fmt.Errorf("request %q: %w", line, err)
		}
		req.descs = append(req.descs, d)
	}
	return req, nil
}

func parseDescriptor(s string) (*rlv3.RateLimitDescriptor, error) {
	d := &rlv3.RateLimitDescriptor{}
	for _, tok := range strings.Fields(s) {
		if o, ok := strings.CutPrefix(tok, "@"); ok {
			n, unit, ok := strings.Cut(o, "/")
			if !ok {
				return nil, fmt.Errorf("override %q: want @N/UNIT", tok)
			}
			unit, mult, hasMult := strings.Cut(unit, "x")
			rpu, err := strconv.ParseUint(n, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("override %q: %w", tok, err)
			}
			u, ok := unitNames[strings.ToUpper(unit)]
			if !ok {
				return nil, fmt.Errorf("override %q: unknown unit", tok)
			}
			d.Limit = &rlv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: uint32(rpu), Unit: u}
			if hasMult {
				m, err := strconv.ParseUint(mult, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("override %q: %w", tok, err)
				}
				d.Limit.UnitMultiplier = wrapperspb.UInt32(uint32(m))
			}
			continue
		}
		k, v, _ := strings.Cut(tok, "=")
		k, err := url.PathUnescape(k)
		if err != nil {
			return nil, err
		}
		v, err = url.PathUnescape(v)
		if err != nil {
			return nil, err
		}
		d.Entries = append(d.Entries, &rlv3.RateLimitDescriptor_Entry{Key: k, Value: v})
	}
	return d, nil
}

// renderResolution is the one-line text form fixtures compare.
func renderResolution(r Resolution) string {
	var b strings.Builder
	b.WriteString(r.Outcome.String())
	if r.Rule == nil {
		if r.Matched != "" {
			fmt.Fprintf(&b, " matched=%s", r.Matched)
		}
		return b.String()
	}
	rl := r.Rule
	fmt.Fprintf(&b, " name=%s", rl.Name)
	if rl.Scope != "" {
		fmt.Fprintf(&b, " scope=%s policy=%s group=%q", rl.Scope, rl.Policy, rl.Group)
	}
	if rl.Shadow {
		b.WriteString(" shadow")
	}
	fmt.Fprintf(&b, " key=%q tag=%q limits=[", rl.Key, rl.Tag)
	for i, l := range rl.Limits {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s", l.Label, l.Limit)
	}
	b.WriteString("]")
	return b.String()
}

func renderRequests(set *Set, requests string) (string, error) {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(requests, "\n"), "\n") {
		b.WriteString(line)
		b.WriteByte('\n')
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		req, err := parseRequest(t)
		if err != nil {
			return "", err
		}
		for _, r := range set.Resolve(req.domain, req.descs) {
			b.WriteString("  ")
			b.WriteString(renderResolution(r))
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// TestFixtures walks testdata/*.txtar: each holds rule files and policies,
// then either the error compiling them must give, or requests and the
// answer for each of their descriptors.
func TestFixtures(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no fixtures in testdata")
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a := parseArchive(string(raw))
			set, _, err := compileArchive(a)
			if wantErr, ok := a.get("error"); ok {
				if err == nil {
					t.Fatalf("compiled without error; want an error containing:\n%s", wantErr)
				}
				for _, w := range strings.Split(strings.TrimSpace(wantErr), "\n") {
					if !strings.Contains(err.Error(), strings.TrimSpace(w)) {
						t.Errorf("error %q\ndoes not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			requests, ok := a.get("requests")
			if !ok {
				t.Fatal("fixture has neither an error nor a requests section")
			}
			got, err := renderRequests(set, requests)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				replaced := false
				for i := range a.sections {
					if a.sections[i].name == "want" {
						a.sections[i].data, replaced = got, true
					}
				}
				if !replaced {
					a.sections = append(a.sections, section{name: "want", data: got})
				}
				if err := os.WriteFile(path, []byte(a.format()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, _ := a.get("want")
			if got != want {
				t.Errorf("answers differ (-want +got):\n%s", lineDiff(want, got))
			}
			// The reference matcher must agree on every request.
			checkAgainstReference(t, a, requests)
		})
	}
}

// lineDiff is a minimal line diff for fixture failures.
func lineDiff(want, got string) string {
	w := strings.Split(want, "\n")
	g := strings.Split(got, "\n")
	var b bytes.Buffer
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
