package catalog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archive is a txtar-style file: a comment, then files each introduced by a
// "-- name --" line.
type archive struct {
	comment string
	files   []archiveFile
}

type archiveFile struct {
	name string
	data []byte
}

func parseArchive(data []byte) archive {
	var a archive
	var cur *archiveFile
	for line := range bytes.Lines(data) {
		text := strings.TrimRight(string(line), "\r\n")
		if strings.HasPrefix(text, "-- ") && strings.HasSuffix(text, " --") && len(text) > 6 {
			a.files = append(a.files, archiveFile{name: strings.TrimSpace(text[3 : len(text)-3])})
			cur = &a.files[len(a.files)-1]
			continue
		}
		if cur == nil {
			a.comment += string(line)
			continue
		}
		cur.data = append(cur.data, line...)
	}
	return a
}

// TestCatalogCases walks testdata/cases: each file is one catalog (its
// files written to a directory and loaded as the binaries load it) and a
// "want" section listing one expected problem per line, as a substring of
// that problem. A case with an empty want section is a valid catalog.
// Every problem must be wanted and every wanted line found, so a check that
// reports spurious follow-on problems fails too.
func TestCatalogCases(t *testing.T) {
	paths, err := filepath.Glob("testdata/cases/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a := parseArchive(data)
			dir := t.TempDir()
			var want []string
			for _, f := range a.files {
				if f.name == "want" {
					for l := range strings.Lines(string(f.data)) {
						if l = strings.TrimSpace(l); l != "" {
							want = append(want, l)
						}
					}
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := LoadPath(context.Background(), dir)
			if len(want) == 0 {
				if err != nil {
					t.Fatalf("want a valid catalog, got:\n%v", err)
				}
				if snap == nil {
					t.Fatal("no snapshot and no error")
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want problems, got %v", err)
			}
			if snap != nil {
				t.Error("a catalog with problems returned a snapshot")
			}
			checkProblems(t, ps, want)
		})
	}
}

func checkProblems(t *testing.T, ps Problems, want []string) {
	t.Helper()
	used := make([]bool, len(ps))
	for _, w := range want {
		found := false
		for i, p := range ps {
			if !used[i] && strings.Contains(p.Error(), w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no problem matches %q", w)
		}
	}
	for i, p := range ps {
		if !used[i] {
			t.Errorf("unexpected problem: %v", p)
		}
		if p.Pos.Line <= 0 {
			t.Errorf("problem without a line: %v", p)
		}
	}
}
