package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/bench/noop"
)

func startNoop(t *testing.T) string {
	t.Helper()
	srv, err := noop.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return srv.Addr()
}

func TestPrintsATableRowPerTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	addr := startNoop(t)
	base := startNoop(t)
	common := []string{"-addr", addr, "-n", "300", "-warmup", "50", "-c", "4", "-conns", "2"}

	tests := []struct {
		name string
		args []string
		rows []*regexp.Regexp
	}{
		{
			name: "the example rate-limit request",
			args: []string{"-name", "under-test"},
			rows: []*regexp.Regexp{regexp.MustCompile(`under-test\s+1\s+300\s+\d+\s+1\.000\s+1\.000\s.*\s-\s+OK=300\s*$`)},
		},
		{
			name: "four descriptors from a request file, against a baseline, in three rounds",
			args: []string{"-requests", "../../requests/rls-four.yaml", "-baseline", base, "-rounds", "3"},
			rows: []*regexp.Regexp{
				regexp.MustCompile(`baseline ` + regexp.QuoteMeta(base) + `\s+3\s+900\s+\d+\s+1\.000\s+1\.000\s.*OK=900\s*$`),
				regexp.MustCompile(regexp.QuoteMeta(addr) + `\s+3\s+900\s+\d+\s+\d\.\d{3}\s+\d\.\d{3}\s.*OK=900\s*$`),
			},
		},
		{
			name: "an ext_authz Check with an API key",
			args: []string{"-service", "authz", "-requests", "../../requests/authz-apikey.yaml"},
			rows: []*regexp.Regexp{regexp.MustCompile(`\s+300\s.*\s-\s+OK=300\s*$`)},
		},
		{
			name: "access-log messages on streams",
			args: []string{"-service", "als", "-requests", writeFile(t, "als.yaml", "identifier: {logName: bench}\n")},
			rows: []*regexp.Regexp{regexp.MustCompile(`\s+300\s.*\s-\s+-\s*$`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(ctx, append(common, tt.args...), &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != 1+len(tt.rows) || !strings.Contains(lines[0], "req/s") {
				t.Fatalf("want a header and %d rows, got:\n%s", len(tt.rows), stdout.String())
			}
			for i, re := range tt.rows {
				if !re.MatchString(lines[i+1]) {
					t.Errorf("row %d = %q, want it to match %s", i+1, lines[i+1], re)
				}
			}
		})
	}
}

func TestFailsWithoutAUsableTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	addr := startNoop(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown service", []string{"-service", "grpc"}, `unknown service "grpc"`},
		{"a missing request file", []string{"-requests", "does-not-exist.yaml"}, "does-not-exist.yaml"},
		{"a request file of the wrong type", []string{"-requests", writeFile(t, "bad.yaml", "domian: x\n")}, `unknown field "domian"`},
		{"no example for the access log", []string{"-service", "als"}, "give a file"},
		{"zero calls", []string{"-n", "0"}, "requests 0"},
		{"a stray argument", []string{"extra"}, "unexpected arguments"},
		{"a server that is not there", []string{"-addr", "127.0.0.1:1", "-dial-timeout", "200ms"}, "not ready"},
		{"every call failing", []string{"-service", "authz", "-n", "20", "-warmup", "0", "-timeout", "1ns"}, "every call to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(ctx, append([]string{"-addr", addr}, tt.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
