package config

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recordHandler sends every log record to a channel.
type recordHandler struct{ records chan<- slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.records <- r.Clone()
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func attrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	return m
}

// replace writes content beside path and renames it over path, as config
// management and editors do.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderAppliesValidChangesAndKeepsTheLastGoodConfig(t *testing.T) {
	path := writeConfig(t, "workers: 1\n")
	records := make(chan slog.Record, 100)
	src := Source[testConfig]{File: path, Lookup: env("PORTCULLIS_LOG_FORMAT", "text"), Defaults: defaults}
	r, first, err := NewReloader(src, slog.New(recordHandler{records}))
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	if first.Workers != 1 || first.Log.Format != "text" {
		t.Fatalf("first config has workers %d, log format %q; want 1 and text", first.Workers, first.Log.Format)
	}

	applied := make(chan testConfig, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func(c testConfig) { applied <- c }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitApplied := func(workers int) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case c := <-applied:
				if c.Log.Format != "text" {
					t.Errorf("reloaded config lost the environment override: format %q", c.Log.Format)
				}
				if c.Workers == workers {
					return
				}
				t.Fatalf("applied workers %d, want %d", c.Workers, workers)
			case <-timeout:
				t.Fatalf("workers %d never applied", workers)
			}
		}
	}
	waitFailure := func(wantInError string, wantLine int) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case rec := <-records:
				if rec.Level != slog.LevelError {
					continue
				}
				a := attrs(rec)
				if a["file"] != path || !strings.Contains(a["error"], wantInError) {
					t.Fatalf("failure logged with %v, want file %s and an error containing %q", a, path, wantInError)
				}
				if wantLine > 0 && a["line"] != strconv.Itoa(wantLine) {
					t.Errorf("failure logged at line %q, want %d", a["line"], wantLine)
				}
				return
			case c := <-applied:
				t.Fatalf("a bad config was applied: %+v", c)
			case <-timeout:
				t.Fatalf("no reload failure logged for %q", wantInError)
			}
		}
	}

	replace(t, path, "workers: 2\n")
	waitApplied(2)

	replace(t, path, "workers: 3\nwrokers: 4\n")
	waitFailure("field wrokers not found", 2)

	replace(t, path, "workers: 3\nserver:\n  grpcAddr: nowhere\n")
	waitFailure("server: grpcAddr", 0)

	// The good config after two bad ones is applied: the reloader is still
	// watching and its last good value did not move.
	replace(t, path, "workers: 5\n")
	waitApplied(5)
}

func TestNewReloaderFailsOnABadFirstConfig(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"unknown field", "wrokers: 1\n", ":1: field wrokers not found"},
		{"invalid value", "log:\n  format: xml\n", "log: format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Source[testConfig]{File: writeConfig(t, tt.content), Defaults: defaults}
			_, _, err := NewReloader(src, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewReloader = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReloaderWithoutAFileHasNothingToWatch(t *testing.T) {
	r, cfg, err := NewReloader(Source[testConfig]{Defaults: defaults}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 4 {
		t.Errorf("workers = %d, want the default 4", cfg.Workers)
	}
	if err := r.Run(t.Context(), func(testConfig) { t.Error("apply called with nothing to watch") }); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if _, _, err := NewReloader(Source[testConfig]{File: filepath.Join(t.TempDir(), "no", "such.yaml")}, nil); err == nil {
		t.Error("NewReloader with a file in a missing directory succeeded")
	}
}
