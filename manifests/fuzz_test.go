package manifests

import (
	"encoding/json"
	"io/fs"
	"testing"
)

// documents must never panic on any input, and what it returns must be
// JSON objects the strict decoders can take: it sits in front of every
// check in this package and of RateLimits.
func FuzzDocuments(f *testing.F) {
	_ = fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, err := fs.ReadFile(FS(), p); err == nil {
				f.Add(data)
			}
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := documents(data)
		if err != nil {
			return
		}
		for _, d := range docs {
			if !json.Valid(d.JSON) {
				t.Fatalf("line %d: invalid JSON %q", d.Line, d.JSON)
			}
			if string(d.JSON) == "null" {
				t.Fatalf("line %d: an empty document was returned", d.Line)
			}
		}
	})
}
