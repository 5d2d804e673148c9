package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// Document is one decoded catalog object and where it was written.
type Document struct {
	Pos  Pos    // the line of the document's first key
	Kind string // one of the Kind constants
	Name string // metadata.name
	// Object is *IdentityProvider, *API, *Application, *Subscription or
	// *Policy, matching Kind.
	Object any

	file  *sourceFile // for the line of a field named by a later Problem
	index int         // the document's ordinal in file's YAML stream
}

// sourceFile keeps a file's bytes so that validation can find the line of
// any field without holding every document's yaml.Node: a large catalog's
// nodes cost far more memory than its text, and they are needed only when
// something is wrong.
type sourceFile struct {
	name string
	data []byte

	once sync.Once
	docs []*yaml.Node
}

// Decode reads the YAML documents of one file strictly. An unknown field, a
// value of the wrong type, an unknown kind or apiVersion is a Problem naming
// file and line; empty documents are skipped. On error it returns every
// Problem it found as Problems, and no documents: a catalog that is partly
// read would report references to the missing part as dangling.
//
// Decode keeps data for locating fields in later Problems; the caller must
// not modify it afterwards.
func Decode(file string, data []byte) ([]Document, error) {
	src := &sourceFile{name: file, data: data}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		docs     []Document
		problems Problems
	)
	for index := 0; ; index++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, syntaxProblem(file, err))
			break
		}
		doc, ps := decodeDocument(src, index, &root)
		problems = append(problems, ps...)
		if doc != nil {
			docs = append(docs, *doc)
		}
	}
	if len(problems) > 0 {
		problems.sort()
		return nil, problems
	}
	return docs, nil
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parserProblems are the messages of yaml's parser (not its scanner). For
// these, yaml reports the 0-based line of the construct being parsed, so
// one is added to name the line where that construct starts.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxProblem turns the parser's "yaml: line N: msg" into a Problem.
func syntaxProblem(file string, err error) *Problem {
	p := &Problem{Pos: Pos{File: file, Line: 1}, Err: fmt.Errorf("invalid YAML: %w", err)}
	m := syntaxLine.FindStringSubmatch(err.Error())
	if m == nil {
		return p
	}
	msg := strings.TrimPrefix(err.Error(), m[0])
	line, _ := strconv.Atoi(m[1])
	for _, prefix := range parserProblems {
		if strings.HasPrefix(msg, prefix) {
			line++
			break
		}
	}
	p.Pos.Line = max(line, 1)
	p.Err = errors.New("invalid YAML: " + msg)
	return p
}

// decodeDocument dispatches one YAML document on apiVersion and kind and
// decodes it strictly. It returns nil and no problems for an empty document.
func decodeDocument(src *sourceFile, index int, root *yaml.Node) (*Document, Problems) {
	if len(root.Content) == 0 {
		return nil, nil
	}
	top := root.Content[0]
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		return nil, nil
	}
	at := func(line int, kind, name, field string, err error) Problems {
		return Problems{{Pos: Pos{File: src.name, Line: line}, Kind: kind, Name: name, Field: field, Err: err}}
	}
	if top.Kind != yaml.MappingNode {
		return nil, at(top.Line, "", "", "", fmt.Errorf("a catalog document must be a mapping, not %s", nodeKindName(top)))
	}
	apiVersion, avLine := scalarField(top, "apiVersion")
	kind, kindLine := scalarField(top, "kind")
	name := ""
	if md := mappingField(top, "metadata"); md != nil {
		name, _ = scalarField(md, "name")
	}
	switch {
	case avLine == 0:
		return nil, at(top.Line, kind, name, "apiVersion", errors.New("required"))
	case apiVersion != APIVersion:
		return nil, at(avLine, kind, name, "apiVersion", fmt.Errorf("unsupported %q (want %s)", apiVersion, APIVersion))
	case kindLine == 0:
		return nil, at(top.Line, "", name, "kind", errors.New("required"))
	}
	var obj any
	switch kind {
	case KindIdentityProvider:
		obj = new(IdentityProvider)
	case KindAPI:
		obj = new(API)
	case KindApplication:
		obj = new(Application)
	case KindSubscription:
		obj = new(Subscription)
	case KindPolicy:
		obj = new(Policy)
	default:
		return nil, at(kindLine, "", name, "kind", fmt.Errorf("unknown kind %q (want %s, %s, %s, %s or %s)",
			kind, KindIdentityProvider, KindAPI, KindApplication, KindSubscription, KindPolicy))
	}

	var problems Problems
	report := func(line int, field string, err error) {
		problems = append(problems, &Problem{Pos: Pos{File: src.name, Line: line}, Kind: kind, Name: name, Field: field, Err: err})
	}
	s := strict{report: report}
	s.check(top, reflect.TypeOf(obj).Elem(), nil)
	if err := top.Decode(obj); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				line, rest := splitLine(msg)
				if line == 0 {
					line = top.Line
				}
				report(line, "", errors.New(rest))
			}
		} else {
			report(top.Line, "", fmt.Errorf("decode: %w", err))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return &Document{
		Pos:    Pos{File: src.name, Line: top.Line},
		Kind:   kind,
		Name:   name,
		Object: obj,
		file:   src,
		index:  index,
	}, nil
}

var typeErrorLine = regexp.MustCompile(`^line (\d+): `)

// splitLine parses yaml's "line N: msg".
func splitLine(msg string) (int, string) {
	m := typeErrorLine.FindStringSubmatch(msg)
	if m == nil {
		return 0, msg
	}
	n, _ := strconv.Atoi(m[1])
	return n, msg[len(m[0]):]
}

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	default:
		return "a document"
	}
}

// scalarField returns a top-level scalar's value and the line of its key; 0
// when absent or not a scalar.
func scalarField(m *yaml.Node, key string) (string, int) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == key {
			if v.Kind != yaml.ScalarNode {
				return "", 0
			}
			return v.Value, k.Line
		}
	}
	return "", 0
}

func mappingField(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == key && v.Kind == yaml.MappingNode {
			return v
		}
	}
	return nil
}

// strict reports mapping keys that name no field of the Go type they decode
// into. yaml's Decoder.KnownFields does this only for a whole stream, and a
// document must first be read as a node to learn its kind; checking the
// node keeps the original file's line numbers.
type strict struct {
	// aliased holds each (node, type) reached through an alias, so that an
	// alias repeated many times or nested in its own anchor is checked
	// once. Without aliases a document is a tree and needs no bookkeeping.
	aliased map[visit]bool
	report  func(line int, field string, err error)
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

// path is a field path built only when a problem needs it.
type path struct {
	parent *path
	name   string
	index  int // when name is ""
}

func (p *path) String() string {
	if p == nil {
		return ""
	}
	prefix := p.parent.String()
	if p.name == "" {
		return prefix + "[" + strconv.Itoa(p.index) + "]"
	}
	if prefix == "" {
		return p.name
	}
	return prefix + "." + p.name
}

func (s *strict) check(n *yaml.Node, t reflect.Type, at *path) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
		v := visit{n, t}
		if s.aliased[v] {
			return
		}
		if s.aliased == nil {
			s.aliased = make(map[visit]bool)
		}
		s.aliased[v] = true
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		fields := knownFields[t]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue // the decoder reports a non-scalar key
			}
			if k.ShortTag() == "!!merge" {
				s.checkMerge(v, t, at)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				field := &path{parent: at, name: k.Value}
				s.report(k.Line, field.String(), unknownField(k.Value))
				continue
			}
			if needsCheck(ft) {
				s.check(v, ft, &path{parent: at, name: k.Value})
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode || !needsCheck(t.Elem()) {
			return
		}
		for i, item := range n.Content {
			s.check(item, t.Elem(), &path{parent: at, index: i})
		}
	}
}

// needsCheck reports whether a value of type t can hold a mapping whose
// keys must be checked. Maps in the catalog (labels, annotations) hold
// strings, which the decoder checks.
func needsCheck(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

// checkMerge checks a "<<" merge's value as the struct it merges into.
func (s *strict) checkMerge(v *yaml.Node, t reflect.Type, at *path) {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			s.check(item, t, at)
		}
		return
	}
	s.check(v, t, at)
}

func unknownField(name string) error {
	if strings.EqualFold(name, "clientSecret") {
		return errors.New("unknown field: a secret is never written in the catalog; use clientSecretFile or clientSecretEnv")
	}
	return errors.New("unknown field")
}

// knownFields maps each struct type of the five kinds to its YAML keys and
// their Go types. It is computed once and never modified.
var knownFields = func() map[reflect.Type]map[string]reflect.Type {
	out := make(map[reflect.Type]map[string]reflect.Type)
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || out[t] != nil {
			return
		}
		fields := make(map[string]reflect.Type, t.NumField())
		out[t] = fields
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch name {
			case "-":
				continue
			case "":
				name = strings.ToLower(f.Name)
			}
			fields[name] = f.Type
			add(f.Type)
		}
	}
	for _, v := range []any{IdentityProvider{}, API{}, Application{}, Subscription{}, Policy{}} {
		add(reflect.TypeOf(v))
	}
	return out
}()

// line finds the line of a field in document index of the file, for a
// Problem found after decoding. It returns the line of the deepest part of
// field that exists, or 0.
func (f *sourceFile) line(index int, field string) int {
	f.once.Do(func() {
		dec := yaml.NewDecoder(bytes.NewReader(f.data))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				return
			}
			f.docs = append(f.docs, &n)
		}
	})
	if index >= len(f.docs) || len(f.docs[index].Content) == 0 {
		return 0
	}
	n := f.docs[index].Content[0]
	line := n.Line
	for part := range strings.SplitSeq(field, ".") {
		name, idx := splitIndex(part)
		if name != "" {
			next, keyLine := lookupKey(n, name)
			if next == nil {
				return line
			}
			n, line = next, keyLine
		}
		for _, i := range idx {
			for n.Kind == yaml.AliasNode && n.Alias != nil {
				n = n.Alias
			}
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}

// splitIndex splits "operations[2]" into "operations" and [2].
func splitIndex(part string) (string, []int) {
	name, rest, found := strings.Cut(part, "[")
	if !found {
		return part, nil
	}
	var idx []int
	for _, s := range strings.Split(rest, "[") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "]"))
		if err != nil {
			break
		}
		idx = append(idx, n)
	}
	return name, idx
}

func lookupKey(n *yaml.Node, key string) (*yaml.Node, int) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return n.Content[i+1], k.Line
		}
	}
	return nil, 0
}
