package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// LoadPath reads, validates and compiles the catalog at path: one YAML file,
// or every *.yaml and *.yml file directly in a directory, in name order.
//
// A directory may be a Kubernetes ConfigMap mount, where each file is a
// symlink into "..data/" and "..data" itself points at a timestamped
// directory that the kubelet swaps atomically: entries whose names start
// with "." are skipped and symlinks are followed, so each file is read
// once, through its public name.
//
// Problems in the documents are returned as Problems; failure to read is
// any other error.
func LoadPath(ctx context.Context, path string) (*Snapshot, error) {
	docs, err := ReadPath(ctx, path)
	if err != nil {
		return nil, err
	}
	return Build(docs)
}

// ReadPath reads and decodes the catalog files at path, as LoadPath does,
// without validating the catalog as a whole. Decoding problems of every
// file are returned together as Problems.
func ReadPath(ctx context.Context, path string) ([]Document, error) {
	files, err := catalogFiles(path)
	if err != nil {
		return nil, err
	}
	// Files decode in parallel: parsing YAML is most of a load's time, and
	// files are independent until Build.
	type result struct {
		docs []Document
		err  error
	}
	results := make([]result, len(files))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := ctx.Err(); err != nil {
				results[i].err = fmt.Errorf("read catalog: %w", err)
				return
			}
			data, err := os.ReadFile(f)
			if err != nil {
				results[i].err = fmt.Errorf("read catalog: %w", err)
				return
			}
			results[i].docs, results[i].err = Decode(f, data)
		}()
	}
	wg.Wait()

	total := 0
	for _, r := range results {
		total += len(r.docs)
	}
	var (
		docs     = make([]Document, 0, total)
		problems Problems
	)
	for _, r := range results {
		var ps Problems
		switch {
		case errors.As(r.err, &ps):
			problems = append(problems, ps...)
		case r.err != nil:
			return nil, r.err
		}
		docs = append(docs, r.docs...)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return docs, nil
}

// catalogFiles lists the files to read at path, in a deterministic order.
func catalogFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if ext := strings.ToLower(filepath.Ext(name)); ext != ".yaml" && ext != ".yml" {
			continue
		}
		full := filepath.Join(path, name)
		if e.Type()&fs.ModeSymlink != 0 || e.IsDir() {
			fi, err := os.Stat(full) // follows the link
			if err != nil {
				return nil, fmt.Errorf("read catalog: %w", err)
			}
			if !fi.Mode().IsRegular() {
				continue
			}
		} else if !e.Type().IsRegular() {
			continue
		}
		files = append(files, full)
	}
	return files, nil
}
