package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// File is one parsed and validated envoyproxy/ratelimit rule file: one
// domain and its descriptor tree. It is immutable once ParseFile returns, so
// a File can be reused by several Compile calls (a reload that only changed
// the catalog need not re-read the rules).
type File struct {
	// Name is the name the file was parsed under; errors and logs use it.
	Name string
	// Domain is the file's domain.
	Domain string

	domainLine int
	tree       *node
	replaces   bool // some rule in the file replaces another
}

// ParseError is a problem in a rule file, located by file and line so that
// an operator can go straight to it. Line is 0 when the problem has no
// single line (an empty file).
type ParseError struct {
	File   string
	Line   int
	Reason string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Reason
	}
	return e.File + ": " + e.Reason
}

// The YAML schema of envoyproxy/ratelimit's rule files. Decoding is strict:
// a key that is not listed here is an error, where envoyproxy/ratelimit
// accepts any of its known keys at any level and ignores the misplaced ones.
type yamlRoot struct {
	Domain      string           `yaml:"domain"`
	Descriptors []yamlDescriptor `yaml:"descriptors"`

	domainLine int
}

type yamlDescriptor struct {
	Key         string           `yaml:"key"`
	Value       string           `yaml:"value"`
	RateLimit   *yamlRateLimit   `yaml:"rate_limit"`
	Descriptors []yamlDescriptor `yaml:"descriptors"`
	ShadowMode  bool             `yaml:"shadow_mode"`
	// DetailedMetric and ValueToMetric put request values into
	// envoyproxy/ratelimit's stat names; accepted and ignored here.
	DetailedMetric bool `yaml:"detailed_metric"`
	ValueToMetric  bool `yaml:"value_to_metric"`
	// ShareThreshold makes every value a wildcard matches share one counter.
	ShareThreshold bool `yaml:"share_threshold"`

	line int // of the descriptor's mapping, attached after decoding
}

type yamlRateLimit struct {
	RequestsPerUnit uint32         `yaml:"requests_per_unit"`
	Unit            string         `yaml:"unit"`
	UnitMultiplier  *uint32        `yaml:"unit_multiplier"`
	Unlimited       bool           `yaml:"unlimited"`
	Name            string         `yaml:"name"`
	Replaces        []yamlReplaces `yaml:"replaces"`

	line, unitLine, multiplierLine int
}

type yamlReplaces struct {
	Name string `yaml:"name"`

	line int
}

// unitPeriods are the rule-file units as envoyproxy/ratelimit counts them:
// MONTH is a fixed 30-day window and YEAR 365 days, not calendar periods, so
// that a rule file answers here exactly as it did there.
var unitPeriods = map[rlsv3.RateLimitResponse_RateLimit_Unit]time.Duration{
	rlsv3.RateLimitResponse_RateLimit_SECOND: time.Second,
	rlsv3.RateLimitResponse_RateLimit_MINUTE: time.Minute,
	rlsv3.RateLimitResponse_RateLimit_HOUR:   time.Hour,
	rlsv3.RateLimitResponse_RateLimit_DAY:    24 * time.Hour,
	rlsv3.RateLimitResponse_RateLimit_WEEK:   7 * 24 * time.Hour,
	rlsv3.RateLimitResponse_RateLimit_MONTH:  30 * 24 * time.Hour,
	rlsv3.RateLimitResponse_RateLimit_YEAR:   365 * 24 * time.Hour,
}

// ruleLimit is the limit a rule file's requests_per_unit, unit and
// multiplier describe, in a fixed window as envoyproxy/ratelimit counts.
// Zero requests is a valid rule there and in quota: it denies every request.
func ruleLimit(requests uint32, period time.Duration, multiplier uint32) (quota.Limit, error) {
	l := quota.Limit{Requests: uint64(requests), Period: period * time.Duration(multiplier), Algorithm: quota.FixedWindow}
	if err := l.Validate(); err != nil {
		return quota.Limit{}, err
	}
	return l, nil
}

// ParseFile parses and validates one rule file. Every problem is reported as
// a *ParseError naming name and the line; several problems are joined.
func ParseFile(name string, data []byte) (File, error) {
	root, errs := decodeStrict(name, data)
	if errs != nil {
		return File{}, fmt.Errorf("parse rule file: %w", errs)
	}
	p := &fileParser{name: name}
	f := p.build(root)
	if len(p.errs) > 0 {
		return File{}, fmt.Errorf("parse rule file: %w", errors.Join(p.errs...))
	}
	return f, nil
}

var (
	typeErrLine   = regexp.MustCompile(`^line (\d+): (.*)$`)
	syntaxErrLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)
	unknownField  = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// decodeStrict decodes data with unknown keys rejected, then walks the same
// document as nodes to attach line numbers for the semantic checks.
func decodeStrict(name string, data []byte) (*yamlRoot, error) {
	var root yamlRoot
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&root)
	switch {
	case errors.Is(err, io.EOF):
		return nil, &ParseError{File: name, Reason: "config file cannot have empty domain (the file is empty)"}
	case err != nil:
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlError(name, err)
		}
		return nil, &ParseError{File: name, Line: line, Reason: "a rule file holds one YAML document; found a second"}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if len(doc.Content) == 1 {
		attachRoot(doc.Content[0], &root)
	}
	return &root, nil
}

// yamlError turns the decoder's messages into ParseErrors with the file name
// and line where the decoder gave one.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, lineError(name, msg, typeErrLine))
		}
		return errors.Join(errs...)
	}
	return lineError(name, err.Error(), syntaxErrLine)
}

func lineError(name, msg string, re *regexp.Regexp) *ParseError {
	pe := &ParseError{File: name, Reason: msg}
	if m := re.FindStringSubmatch(msg); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Reason = m[2]
	}
	if m := unknownField.FindStringSubmatch(pe.Reason); m != nil {
		pe.Reason = fmt.Sprintf("unknown key %q", m[1])
	}
	return pe
}

// mapValue returns the value node of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func lineOf(n *yaml.Node, fallback int) int {
	if n == nil {
		return fallback
	}
	return n.Line
}

func attachRoot(n *yaml.Node, r *yamlRoot) {
	r.domainLine = lineOf(mapValue(n, "domain"), n.Line)
	attachDescriptors(mapValue(n, "descriptors"), r.Descriptors, n.Line)
}

func attachDescriptors(seq *yaml.Node, ds []yamlDescriptor, parentLine int) {
	for i := range ds {
		var item *yaml.Node
		if seq != nil && seq.Kind == yaml.SequenceNode && i < len(seq.Content) {
			item = seq.Content[i]
		}
		d := &ds[i]
		d.line = lineOf(item, parentLine)
		attachDescriptors(mapValue(item, "descriptors"), d.Descriptors, d.line)
		if rl := d.RateLimit; rl != nil {
			rn := mapValue(item, "rate_limit")
			rl.line = lineOf(rn, d.line)
			rl.unitLine = lineOf(mapValue(rn, "unit"), rl.line)
			rl.multiplierLine = lineOf(mapValue(rn, "unit_multiplier"), rl.line)
			reps := mapValue(rn, "replaces")
			for j := range rl.Replaces {
				var rep *yaml.Node
				if reps != nil && reps.Kind == yaml.SequenceNode && j < len(reps.Content) {
					rep = reps.Content[j]
				}
				rl.Replaces[j].line = lineOf(rep, rl.line)
			}
		}
	}
}

// fileParser validates a decoded file and builds its match tree, collecting
// every problem rather than stopping at the first.
type fileParser struct {
	name string
	errs []error
}

func (p *fileParser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{File: p.name, Line: line, Reason: fmt.Sprintf(format, args...)})
}

func (p *fileParser) build(root *yamlRoot) File {
	f := File{Name: p.name, Domain: root.Domain, domainLine: max(root.domainLine, 1)}
	if root.Domain == "" {
		p.errorf(f.domainLine, "config file cannot have empty domain")
	}
	f.tree = newNode("")
	p.load(&f, f.tree, root.Domain+".", root.Descriptors)
	return f
}

// load adds descriptors under parent, as envoyproxy/ratelimit's
// loadDescriptors does: the map key is "key" or "key_value", and keys ending
// in "*" are also listed, in file order, as the level's wildcards.
func (p *fileParser) load(f *File, parent *node, parentPath string, ds []yamlDescriptor) {
	for i := range ds {
		d := &ds[i]
		if d.Key == "" {
			p.errorf(d.line, "descriptor has empty key")
			continue
		}
		composite := d.Key
		if d.Value != "" {
			composite += "_" + d.Value
		}
		path := parentPath + composite
		if _, dup := parent.children[composite]; dup {
			p.errorf(d.line, "duplicate descriptor composite key '%s'", path)
			continue
		}
		wildcard := strings.HasSuffix(composite, "*")
		if d.ShareThreshold && !wildcard {
			p.errorf(d.line, "share_threshold can only be used with wildcard values (ending with '*'), but found key '%s'", composite)
		}
		child := newNode(composite)
		child.share = d.ShareThreshold && wildcard
		if d.RateLimit != nil {
			child.rule = p.rule(d, path)
			if len(child.rule.replaces) > 0 {
				f.replaces = true
			}
		}
		p.load(f, child, path+".", d.Descriptors)
		parent.children[composite] = child
		if wildcard {
			parent.wildcards = append(parent.wildcards, wildcardChild{prefix: composite[:len(composite)-1], child: child})
		}
	}
}

func (p *fileParser) rule(d *yamlDescriptor, path string) *ruleDef {
	rl := d.RateLimit
	def := &ruleDef{
		name:      path,
		ownName:   rl.Name,
		unlimited: rl.Unlimited,
		shadow:    d.ShadowMode,
	}
	if rl.Name != "" {
		def.name = rl.Name
	}
	unit := rlsv3.RateLimitResponse_RateLimit_Unit(rlsv3.RateLimitResponse_RateLimit_Unit_value[strings.ToUpper(rl.Unit)])
	period, validUnit := unitPeriods[unit]
	switch {
	case rl.Unlimited && validUnit:
		p.errorf(rl.unitLine, "should not specify rate limit unit when unlimited")
	case rl.Unlimited:
		// envoyproxy/ratelimit ignores an unrecognised unit on an
		// unlimited rule, so such files stay loadable.
	case !validUnit:
		p.errorf(rl.unitLine, "invalid rate limit unit '%s' (want second, minute, hour, day, week, month or year)", rl.Unit)
	default:
		mult := uint32(1)
		if rl.UnitMultiplier != nil {
			mult = *rl.UnitMultiplier
		}
		if mult == 0 {
			p.errorf(rl.multiplierLine, "unit_multiplier must be at least 1")
			break
		}
		l, err := ruleLimit(rl.RequestsPerUnit, period, mult)
		if err != nil {
			p.errorf(rl.line, "rate limit: %v", err)
			break
		}
		def.limits = []Limit{{Label: "default", Limit: l}}
	}
	for _, r := range rl.Replaces {
		switch r.Name {
		case "":
			p.errorf(r.line, "should not have an empty replaces entry")
		case rl.Name:
			p.errorf(r.line, "replaces should not contain name of same descriptor")
		default:
			def.replaces = append(def.replaces, r.Name)
		}
	}
	return def
}

// LoadDir reads every rule file in dir: regular files (or links to them)
// named *.yaml or *.yml, in name order, skipping names that start with a dot
// so that a Kubernetes ConfigMap mount's "..data" entries are not read
// twice. Subdirectories are not read.
func LoadDir(ctx context.Context, dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load rules from %s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		if ext := filepath.Ext(n); ext != ".yaml" && ext != ".yml" {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, n)) // follows ConfigMap symlinks
		if err != nil {
			return nil, fmt.Errorf("load rules from %s: %w", dir, err)
		}
		if info.Mode().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	var errs []error
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load rules from %s: %w", dir, err)
		}
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := ParseFile(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("load rules from %s: %w", dir, errors.Join(errs...))
	}
	return files, nil
}
