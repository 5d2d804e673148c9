package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/rules"
)

// ruleset keeps rules.Current compiled from the two inputs, the rule-file
// directory and the catalog's policies, and recompiles when either
// changes. A compile that fails keeps the set in force and logs why: the
// errors carry file and line.
type ruleset struct {
	cur rules.Current
	dir string
	log *slog.Logger

	mu       sync.Mutex // serialises recompiles
	files    []rules.File
	policies []*catalog.CompiledPolicy
}

func (r *ruleset) Rules() *rules.Set { return r.cur.Rules() }

// loadFiles re-reads the rule directory and recompiles.
func (r *ruleset) loadFiles(ctx context.Context) error {
	var files []rules.File
	if r.dir != "" {
		var err error
		if files, err = rules.LoadDir(ctx, r.dir); err != nil {
			return fmt.Errorf("load rules: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.compile(files, r.policies)
}

// setCatalog recompiles with the policies of a new catalog snapshot.
func (r *ruleset) setCatalog(s *catalog.Snapshot) error {
	pols := s.Policies()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.compile(r.files, pols)
}

func (r *ruleset) compile(files []rules.File, pols []*catalog.CompiledPolicy) error {
	set, err := rules.Compile(files, pols)
	if err != nil {
		return fmt.Errorf("compile rules: %w", err)
	}
	r.files, r.policies = files, pols
	r.cur.Store(set)
	r.log.Info("rules in force", slog.Any("domains", set.Domains()), slog.Int("policies", len(pols)))
	return nil
}
