package daemon

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/config"
)

type testConfig struct {
	Log     config.Log     `yaml:"log"`
	Tracing config.Tracing `yaml:"tracing"`
	Name    string         `yaml:"name"`
}

func parts(c testConfig) Parts { return Parts{Log: c.Log, Tracing: c.Tracing} }

func defaults() testConfig {
	return testConfig{Log: config.DefaultLog(), Tracing: config.DefaultTracing(), Name: "x"}
}

func TestStartBuildsTheBaseAndClosesInReverseOrder(t *testing.T) {
	b, cfg, err := Start(context.Background(), config.Source[testConfig]{Defaults: defaults}, io.Discard, "test", parts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "x" || b.Log == nil || b.Registry == nil || b.Reloader == nil || b.Tracer != nil {
		t.Fatalf("base %+v, config %+v", b, cfg)
	}
	var order []string
	b.OnClose(func() error { order = append(order, "first"); return nil })
	b.OnClose(func() error { order = append(order, "second"); return errors.New("logged, not fatal") })
	b.Close()
	if strings.Join(order, ",") != "second,first" {
		t.Fatalf("close order %v", order)
	}
	b.Close() // idempotent
	if len(order) != 2 {
		t.Fatalf("closers ran twice: %v", order)
	}
}

func TestStartRefusesABadConfigFileWithItsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("name: y\ncolour: blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Start(context.Background(), config.Source[testConfig]{File: path, Defaults: defaults}, io.Discard, "test", parts)
	if err == nil || !strings.Contains(err.Error(), "c.yaml") || !strings.Contains(err.Error(), "2") {
		t.Fatalf("error %v, want the file and line 2", err)
	}
}
