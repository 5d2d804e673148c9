package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

func TestParseErrorsLocateTheProblem(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		wantLine int
		wantText string
	}{
		{"unknown key", "domain: d\ndescriptors:\n  - key: a\n    valu: b\n", 4, `unknown key "valu"`},
		{"bad unit", "domain: d\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: fortnight\n", 5, "invalid rate limit unit 'fortnight'"},
		{"empty key", "domain: d\ndescriptors:\n  - value: a\n", 3, "descriptor has empty key"},
		{"empty domain", "domain: \"\"\n", 1, "config file cannot have empty domain"},
		{"wrong type", "domain: d\ndescriptors:\n  - key: a\n    shadow_mode: maybe\n", 4, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile("f.yaml", []byte(tt.data))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.File != "f.yaml" || pe.Line != tt.wantLine || !strings.Contains(pe.Reason, tt.wantText) {
				t.Errorf("got %s:%d %q; want f.yaml:%d containing %q", pe.File, pe.Line, pe.Reason, tt.wantLine, tt.wantText)
			}
			if !strings.HasPrefix(err.Error(), "parse rule file: f.yaml:") {
				t.Errorf("error %q does not name the operation and file", err)
			}
		})
	}
}

func TestCompileRejectsAFileNotFromParseFile(t *testing.T) {
	_, err := Compile([]File{{Name: "hand-made", Domain: "d"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "hand-made") {
		t.Fatalf("Compile of a zero File: err = %v", err)
	}
}

func TestLoadDirReadsYAMLFilesInNameOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "domain: b\n")
	write("a.yml", "domain: a\n")
	write("notes.txt", "not yaml at all: [")
	write(".hidden.yaml", "domain: hidden\n")
	// A ConfigMap mount: files are links into a dot-named directory.
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("..data/c.yaml", "domain: c\n")
	if err := os.Symlink(filepath.Join("..data", "c.yaml"), filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o700); err != nil {
		t.Fatal(err)
	}

	files, err := LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for _, f := range files {
		domains = append(domains, f.Domain)
	}
	if got := strings.Join(domains, ","); got != "a,b,c" {
		t.Errorf("domains = %s; want a,b,c", got)
	}
	if _, err := Compile(files, nil); err != nil {
		t.Errorf("Compile: %v", err)
	}
}

func TestLoadDirReportsEveryBadFile(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a.yaml": "domain: a\nbogus: 1\n", "b.yaml": "descriptors: []\n", "c.yaml": "domain: c\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadDir(context.Background(), dir)
	if err == nil {
		t.Fatal("LoadDir accepted bad files")
	}
	for _, want := range []string{"a.yaml:2: unknown key \"bogus\"", "b.yaml:1: config file cannot have empty domain"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLoadDirFailsOnAMissingDirectoryAndACancelledContext(t *testing.T) {
	if _, err := LoadDir(context.Background(), filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: err = %v; want os.ErrNotExist", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("domain: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadDir(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v; want context.Canceled", err)
	}
}

func TestANilSetKnowsNoDomain(t *testing.T) {
	var s *Set
	res := s.Resolve("edge", []*rlv3.RateLimitDescriptor{{}})
	if len(res) != 1 || res[0].Outcome != NoDomain || res[0].Rule != nil {
		t.Errorf("Resolve on nil Set = %+v", res)
	}
	if s.HasDomain("edge") || s.Domains() != nil {
		t.Error("a nil Set claims a domain")
	}
}

func TestANilDescriptorIsBad(t *testing.T) {
	f, err := ParseFile("edge.yaml", []byte("domain: edge\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile([]File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &rlv3.RateLimitDescriptor{Entries: []*rlv3.RateLimitDescriptor_Entry{{Key: "a", Value: "1"}}}
	res := set.Resolve("edge", []*rlv3.RateLimitDescriptor{nil, a})
	if res[0].Outcome != BadDescriptor || res[1].Outcome != Limited {
		t.Errorf("outcomes = %v, %v; want bad_descriptor, limited", res[0].Outcome, res[1].Outcome)
	}
}

func TestResolveReturnsRulesThatOutliveTheCall(t *testing.T) {
	set, _ := fuzzSet(t)
	d := func(v string) []*rlv3.RateLimitDescriptor {
		return []*rlv3.RateLimitDescriptor{{Entries: []*rlv3.RateLimitDescriptor_Entry{{Key: "remote_address", Value: v}}}}
	}
	first := set.Resolve("edge", d("1.1.1.1"))
	second := set.Resolve("edge", d("2.2.2.2"))
	if first[0].Rule.Key != "edge_remote_address_1.1.1.1_" || second[0].Rule.Key != "edge_remote_address_2.2.2.2_" {
		t.Errorf("keys = %q, %q", first[0].Rule.Key, second[0].Rule.Key)
	}
}

func TestOutcomeLabels(t *testing.T) {
	want := "limited override unlimited replaced no_domain no_match unknown_policy scope_mismatch unknown_group bad_descriptor"
	var got []string
	for _, o := range Outcomes() {
		got = append(got, o.String())
	}
	if strings.Join(got, " ") != want {
		t.Errorf("outcomes = %v; want %s", got, want)
	}
	if s := Outcome(200).String(); s != "outcome(200)" {
		t.Errorf("unknown outcome = %q", s)
	}
}

// TestTheShippedExamplesCompile keeps examples/ loadable: the rule files
// and the Policy documents of the example catalog.
func TestTheShippedExamplesCompile(t *testing.T) {
	files, err := LoadDir(context.Background(), filepath.Join("..", "..", "examples", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.LoadPath(context.Background(), filepath.Join("..", "..", "examples", "catalog", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policies := snap.Policies()
	if len(files) == 0 || len(policies) == 0 {
		t.Fatalf("examples hold %d rule files and %d policies; want some of each", len(files), len(policies))
	}
	set, err := Compile(files, policies)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"edge", PortcullisDomain} {
		if !set.HasDomain(d) {
			t.Errorf("examples lack domain %q", d)
		}
	}
}
