package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/portcullis-dev/portcullis/internal/watch"
)

// Reloader re-loads a Source when its file changes and hands each new valid
// config to the binary; a config that fails to load or validate is logged
// and ignored, so the process keeps running on the last good one.
type Reloader[T any] struct {
	src  Source[T]
	log  *slog.Logger
	w    *watch.Watcher // nil when src has no file
	last T
}

// NewReloader starts watching src.File, then loads src once and returns
// that first config: watching first means no edit made between the two is
// missed. An error here (unreadable or invalid config) should stop the
// binary; later errors only keep the last good config. log receives reload
// outcomes; nil discards them.
func NewReloader[T any](src Source[T], log *slog.Logger) (*Reloader[T], T, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader[T]{src: src, log: log}
	if src.File != "" {
		w, err := watch.New([]string{src.File}, watch.Options{Logger: log})
		if err != nil {
			var zero T
			return nil, zero, fmt.Errorf("watch config: %w", err)
		}
		r.w = w
	}
	cfg, err := src.Load()
	if err != nil {
		_ = r.Close()
		return nil, cfg, err
	}
	r.last = cfg
	return r, cfg, nil
}

// Run calls apply with each new config that loads and validates and differs
// from the last good one, on Run's goroutine, until ctx is done. With no
// file to watch it returns at once. apply decides what can change live (a
// log level, limits) and what needs a restart (listen addresses).
func (r *Reloader[T]) Run(ctx context.Context, apply func(T)) error {
	if r.w == nil {
		return nil
	}
	return r.w.Run(ctx, func() {
		cfg, err := r.src.Load()
		if err != nil {
			attrs := []any{slog.String("file", r.src.File), slog.Any("error", err)}
			var fe *FileError
			if errors.As(err, &fe) && fe.Line > 0 {
				attrs = append(attrs, slog.Int("line", fe.Line))
			}
			r.log.Error("config reload failed; keeping the last good config", attrs...)
			return
		}
		if reflect.DeepEqual(cfg, r.last) {
			r.log.Debug("config file changed but the config did not", slog.String("file", r.src.File))
			return
		}
		r.last = cfg
		r.log.Info("config reloaded", slog.String("file", r.src.File))
		apply(cfg)
	})
}

// Close stops watching; Run does it on return, so call Close only when Run
// is never called.
func (r *Reloader[T]) Close() error {
	if r.w == nil {
		return nil
	}
	return r.w.Close()
}
