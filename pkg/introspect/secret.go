package introspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// maxSecretBytes bounds a secret file, so that a reference to the wrong
// file (a log, a device) is an error rather than a large read.
const maxSecretBytes = 64 << 10

// secretRetry is the least time between two reads of the secret after a
// failure: the read after our credentials were refused, or after the
// secret could not be read.
const secretRetry = time.Second

// ReadSecret reads the secret ref names: a file's content with surrounding
// white space trimmed (so that a trailing newline written by an editor or
// `echo` is not part of it), or an environment variable's value. It is the
// default Options.SecretLookup. Its errors name the location, never the
// content.
func ReadSecret(ref catalog.SecretRef) (string, error) {
	switch {
	case ref.File != "" && ref.Env != "":
		return "", fmt.Errorf("read secret: %s names both a file and an environment variable", ref)
	case ref.File != "":
		f, err := os.Open(ref.File)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		if err != nil {
			return "", fmt.Errorf("read secret %s: %w", ref, err)
		}
		if len(b) > maxSecretBytes {
			return "", fmt.Errorf("read secret %s: larger than %d bytes", ref, maxSecretBytes)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("read secret %s: empty", ref)
		}
		return s, nil
	case ref.Env != "":
		s, ok := os.LookupEnv(ref.Env)
		if !ok {
			return "", fmt.Errorf("read secret %s: not set", ref)
		}
		if s == "" {
			return "", fmt.Errorf("read secret %s: empty", ref)
		}
		return s, nil
	}
	return "", errors.New("read secret: the reference names no file and no environment variable")
}

// secret holds the client secret between reads. Re-reading on a period,
// rather than watching the file, follows a Kubernetes Secret volume's
// atomic symlink swap and an environment lookup alike, at the cost of one
// small read a minute.
type secret struct {
	ref     catalog.SecretRef
	lookup  func(catalog.SecretRef) (string, error)
	refresh time.Duration
	log     *slog.Logger
	name    string // the provider's, for logs

	mu       sync.Mutex
	value    string
	have     bool
	err      error     // the last read's error when there is no value
	readAt   time.Time // the last read, good or bad
	nextRead time.Time
	failing  bool // the last read failed; logged once per streak
}

// get returns the secret, reading it when the last read is older than the
// refresh period. A failed read keeps serving the last good value.
func (s *secret) get(ctx context.Context, now time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.nextRead) {
		if s.have {
			return s.value, nil
		}
		return "", s.err
	}
	v, err := s.lookup(s.ref)
	s.readAt = now
	if err != nil {
		s.nextRead = now.Add(secretRetry)
		if !s.failing {
			s.failing = true
			s.log.LogAttrs(ctx, slog.LevelError, "introspect: cannot read the client secret",
				slog.String("provider", s.name), slog.String("secret", s.ref.String()),
				slog.Bool("using_previous", s.have), slog.String("error", err.Error()))
		}
		if s.have {
			return s.value, nil
		}
		s.err = err
		return "", err
	}
	if s.failing {
		s.failing = false
		s.log.LogAttrs(ctx, slog.LevelInfo, "introspect: client secret read again",
			slog.String("provider", s.name), slog.String("secret", s.ref.String()))
	}
	s.value, s.have, s.err = v, true, nil
	s.nextRead = now.Add(s.refresh)
	return v, nil
}

// stale makes the next get re-read the secret, at most once per
// secretRetry: the provider refused our credentials, perhaps because the
// secret was rotated and the new one is already mounted.
func (s *secret) stale() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if retry := s.readAt.Add(secretRetry); retry.Before(s.nextRead) {
		s.nextRead = retry
	}
}
