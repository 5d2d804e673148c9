package catalog

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Pos is where a document or field was written, so that an operator reading
// a log line can open the file at the right place.
type Pos struct {
	File string
	Line int // 1-based; 0 when unknown
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Problem is one thing wrong with the catalog. It names the file and line,
// the document (kind and name) and the field path, because a catalog is
// edited by hand and an error that cannot be found is not fixed.
type Problem struct {
	Pos   Pos
	Kind  string // document kind; empty when the document could not be read that far
	Name  string // document metadata.name; may be empty
	Field string // e.g. "spec.operations[2].policy"; empty for the whole document
	Err   error
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	b.WriteString(": ")
	switch {
	case p.Kind != "" && p.Name != "":
		b.WriteString(p.Kind + " " + strconv.Quote(p.Name) + ": ")
	case p.Kind != "":
		b.WriteString(p.Kind + ": ")
	case p.Name != "":
		b.WriteString(strconv.Quote(p.Name) + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	if p.Err != nil {
		b.WriteString(p.Err.Error())
	}
	return b.String()
}

func (p *Problem) Unwrap() error { return p.Err }

// Problems is every problem found in one load. A catalog is validated as a
// whole so that one reload attempt shows the operator everything to fix,
// not the first thing.
type Problems []*Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find a single *Problem in the list.
func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// sort orders problems by file and line, keeping the order of discovery for
// problems on one line.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
}
