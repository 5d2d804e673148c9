package catalog

import (
	"errors"
	"testing"
)

// FuzzDecode holds Decode and Build to their contract on any input: no
// panic, and every error is a list of problems that each name the file and
// a line, because an operator must be able to find what to fix.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Decode("fuzz.yaml", data)
		if err == nil {
			_, err = Build(docs)
		}
		if err == nil {
			return
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not Problems: %v", err)
		}
		for _, p := range ps {
			if p.Pos.File != "fuzz.yaml" || p.Pos.Line <= 0 || p.Err == nil {
				t.Fatalf("problem without file, line or reason: %#v", p)
			}
		}
	})
}
