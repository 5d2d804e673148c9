package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"time"
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
