package rules

import (
	"fmt"
	"os"
	"strings"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
)

// FuzzParseFile feeds arbitrary bytes to the rule-file parser. It must never
// panic; a file it accepts must compile, and on descriptors built from the
// file's own keys the compiled matcher must agree with the reference.
func FuzzParseFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			if file.tree != nil {
				t.Fatal("ParseFile returned a tree with an error")
			}
			return
		}
		set, err := Compile([]File{file}, nil)
		if err != nil {
			t.Fatalf("a parsed file does not compile: %v", err)
		}
		root, err := decodeStrict("fuzz.yaml", data)
		if err != nil {
			t.Fatalf("ParseFile accepted what decodeStrict rejects: %v", err)
		}
		ref := newRefConfig([]*yamlRoot{root}, nil)
		for _, descs := range descriptorsFor(root.Descriptors, nil, 0) {
			compareWithReference(t, set, ref, file.Domain, descs)
		}
	})
}

// descriptorsFor builds requests that walk the file's own tree: for every
// node the path to it (wildcards filled in), once alone and once with every
// path so far in one request, so that replaces are exercised too.
func descriptorsFor(ds []yamlDescriptor, prefix []*rlv3.RateLimitDescriptor_Entry, depth int) [][]*rlv3.RateLimitDescriptor {
	if depth > 6 {
		return nil
	}
	var out [][]*rlv3.RateLimitDescriptor
	var all []*rlv3.RateLimitDescriptor
	for _, d := range ds {
		v := d.Value
		if strings.HasSuffix(v, "*") {
			v = strings.TrimSuffix(v, "*") + "x"
		} else if v == "" {
			v = "any"
		}
		entries := append(append([]*rlv3.RateLimitDescriptor_Entry(nil), prefix...), &rlv3.RateLimitDescriptor_Entry{Key: d.Key, Value: v})
		desc := &rlv3.RateLimitDescriptor{Entries: entries}
		out = append(out, []*rlv3.RateLimitDescriptor{desc})
		all = append(all, desc)
		out = append(out, descriptorsFor(d.Descriptors, entries, depth+1)...)
		if len(out) > 200 {
			break
		}
	}
	if len(all) > 1 {
		out = append(out, all)
	}
	return out
}

// fuzzSet is the fixture FuzzResolve matches against: testdata/fuzz_set.txtar.
func fuzzSet(t testing.TB) (*Set, *refConfig) {
	t.Helper()
	raw, err := os.ReadFile("testdata/fuzz_set.txtar")
	if err != nil {
		t.Fatal(err)
	}
	a := parseArchive(string(raw))
	set, _, err := compileArchive(a)
	if err != nil {
		t.Fatal(err)
	}
	var roots []*yamlRoot
	for _, s := range a.sections {
		if strings.HasPrefix(s.name, "rules/") {
			r, err := decodeStrict(s.name, []byte(s.data))
			if err != nil {
				t.Fatal(err)
			}
			roots = append(roots, r)
		}
	}
	policies, err := archivePolicies(a)
	if err != nil {
		t.Fatal(err)
	}
	return set, newRefConfig(roots, policies)
}

// FuzzResolve resolves arbitrary descriptors, written in the fixtures'
// request syntax, against testdata/fuzz_set.txtar. It must never panic and
// must agree with the reference matcher.
func FuzzResolve(f *testing.F) {
	set, ref := fuzzSet(f)
	f.Fuzz(func(t *testing.T, domain, descriptors string) {
		var descs []*rlv3.RateLimitDescriptor
		for _, part := range strings.Split(descriptors, "|") {
			d, err := parseDescriptor(part)
			if err != nil {
				return
			}
			descs = append(descs, d)
		}
		compareWithReference(t, set, ref, domain, descs)
	})
}

// TestFuzzSetIsAFixture keeps the fuzz fixture honest: it must compile, and
// its requests section must resolve as recorded (TestFixtures checks the
// answers; this checks the file is there and rich enough).
func TestFuzzSetIsAFixture(t *testing.T) {
	set, _ := fuzzSet(t)
	for _, d := range []string{"api", "edge", "test-domain", PortcullisDomain} {
		if !set.HasDomain(d) {
			t.Errorf("fuzz set lacks domain %q", d)
		}
	}
	if got := fmt.Sprint(set.Domains()); got != "[api edge portcullis test-domain]" {
		t.Errorf("Domains() = %s", got)
	}
}
