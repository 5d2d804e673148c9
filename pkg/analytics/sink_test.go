package analytics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

func TestParseSink(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    analytics.SinkSpec
		wantErr string
	}{
		{name: "off", in: "off", want: analytics.SinkSpec{Kind: analytics.SinkOff}},
		{name: "jsonl to a file", in: "jsonl:/var/log/portcullis/events.jsonl", want: analytics.SinkSpec{Kind: analytics.SinkJSONL, Target: "/var/log/portcullis/events.jsonl"}},
		{name: "jsonl to stdout", in: "jsonl:-", want: analytics.SinkSpec{Kind: analytics.SinkJSONL, Target: "-"}},
		{name: "jsonl file name with a colon", in: "jsonl:C:events", want: analytics.SinkSpec{Kind: analytics.SinkJSONL, Target: "C:events"}},
		{name: "otlp over gRPC", in: "otlp-grpc:otel-collector.observability:4317", want: analytics.SinkSpec{Kind: analytics.SinkOTLPGRPC, Target: "otel-collector.observability:4317"}},
		{name: "otlp over gRPC to IPv6", in: "otlp-grpc:[::1]:4317", want: analytics.SinkSpec{Kind: analytics.SinkOTLPGRPC, Target: "[::1]:4317"}},
		{name: "otlp over HTTP with a path", in: "otlp-http:https://collector.example:4318/v1/logs", want: analytics.SinkSpec{Kind: analytics.SinkOTLPHTTP, Target: "https://collector.example:4318/v1/logs"}},
		{name: "otlp over HTTP gets the logs path", in: "otlp-http:http://collector:4318", want: analytics.SinkSpec{Kind: analytics.SinkOTLPHTTP, Target: "http://collector:4318/v1/logs"}},
		{name: "otlp over HTTP root path gets the logs path", in: "otlp-http:http://collector:4318/", want: analytics.SinkSpec{Kind: analytics.SinkOTLPHTTP, Target: "http://collector:4318/v1/logs"}},

		{name: "empty", in: "", wantErr: "want off, jsonl:FILE"},
		{name: "no kind", in: "stdout", wantErr: "want off, jsonl:FILE"},
		{name: "unknown kind", in: "kafka:broker:9092", wantErr: `unknown kind "kafka"`},
		{name: "jsonl without a file", in: "jsonl:", wantErr: "want a file"},
		{name: "jsonl with a NUL", in: "jsonl:a\x00b", wantErr: "NUL"},
		{name: "grpc without a port", in: "otlp-grpc:collector", wantErr: "want HOST:PORT"},
		{name: "grpc without a host", in: "otlp-grpc::4317", wantErr: "want HOST:PORT"},
		{name: "grpc port zero", in: "otlp-grpc:collector:0", wantErr: "not 1-65535"},
		{name: "grpc port too big", in: "otlp-grpc:collector:65536", wantErr: "not 1-65535"},
		{name: "grpc given a URL", in: "otlp-grpc:http://collector:4317", wantErr: "want HOST:PORT"},
		{name: "http without a scheme", in: "otlp-http:collector:4318", wantErr: "want an http:// or https:// URL"},
		{name: "http with another scheme", in: "otlp-http:ftp://collector/x", wantErr: "want an http:// or https:// URL"},
		{name: "http without a host", in: "otlp-http:http:///v1/logs", wantErr: "no host"},
		{name: "http with credentials", in: "otlp-http:https://user:" + secretKey + "@collector/v1/logs", wantErr: "must not carry credentials"},
		{name: "http with a query", in: "otlp-http:https://collector/v1/logs?token=x", wantErr: "query or fragment"},
		{name: "http with a fragment", in: "otlp-http:https://collector/v1/logs#x", wantErr: "query or fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := analytics.ParseSink(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSink(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				assertNoSecret(t, "error", err.Error())
				return
			}
			if err != nil {
				t.Fatalf("ParseSink(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseSink(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := analytics.ParseSink(got.String())
			if err != nil || again != got {
				t.Errorf("ParseSink(String()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

// FuzzParseSink: a spec that parses prints as a flag value that parses to
// the same spec, and no input panics.
func FuzzParseSink(f *testing.F) {
	for _, s := range []string{"off", "jsonl:-", "jsonl:/tmp/x", "otlp-grpc:[::1]:4317", "otlp-http:http://c:4318", "otlp-http:https://c/v1/logs", "otlp-http:http://%zz", "otlp-grpc::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := analytics.ParseSink(s)
		if err != nil {
			return
		}
		again, err := analytics.ParseSink(spec.String())
		if err != nil {
			t.Fatalf("ParseSink(%q) = %+v, whose String %q does not parse: %v", s, spec, spec.String(), err)
		}
		if again != spec {
			t.Fatalf("ParseSink(%q) = %+v, then %+v", s, spec, again)
		}
	})
}

func TestOpenSinkJSONLinesWritesOneEventPerLine(t *testing.T) {
	tests := []struct {
		name   string
		target string
		read   func(t *testing.T, stdout *bytes.Buffer, file string) string
	}{
		{name: "stdout", target: "-", read: func(_ *testing.T, stdout *bytes.Buffer, _ string) string { return stdout.String() }},
		{name: "file", target: "events.jsonl", read: func(t *testing.T, _ *bytes.Buffer, file string) string {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("read the events file: %v", err)
			}
			return string(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			target := tt.target
			if target != "-" {
				target = filepath.Join(t.TempDir(), target)
			}
			s, err := analytics.OpenSink(context.Background(), analytics.SinkSpec{Kind: analytics.SinkJSONL, Target: target},
				analytics.SinkOptions{Stdout: &stdout})
			if err != nil {
				t.Fatalf("OpenSink: %v", err)
			}
			if s.Name() != "jsonl" {
				t.Errorf("Name = %q", s.Name())
			}
			e1, e2 := fullEvent(), fullEvent()
			e2.CorrelationID = "second"
			if err := s.Export(context.Background(), []analytics.Event{e1, e2}); err != nil {
				t.Fatalf("Export: %v", err)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := s.Export(context.Background(), []analytics.Event{e1}); err == nil {
				t.Error("Export after Shutdown succeeded")
			}
			lines := strings.Split(strings.TrimSuffix(tt.read(t, &stdout, target), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d lines, want 2: %q", len(lines), lines)
			}
			for i, want := range []string{e1.CorrelationID, "second"} {
				var got map[string]any
				if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				if got["correlationId"] != want {
					t.Errorf("line %d correlationId = %v, want %s", i, got["correlationId"], want)
				}
			}
		})
	}
}

func TestOpenSinkRefusesWhatItCannotOpen(t *testing.T) {
	tests := []struct {
		name    string
		spec    analytics.SinkSpec
		wantErr string
	}{
		{name: "off", spec: analytics.SinkSpec{Kind: analytics.SinkOff}, wantErr: "off has no sink"},
		{name: "stdout without a writer", spec: analytics.SinkSpec{Kind: analytics.SinkJSONL, Target: "-"}, wantErr: "no stdout writer"},
		{name: "file in a missing directory", spec: analytics.SinkSpec{Kind: analytics.SinkJSONL, Target: "/nonexistent-dir/x/events.jsonl"}, wantErr: "open analytics file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := analytics.OpenSink(context.Background(), tt.spec, analytics.SinkOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("OpenSink = %v, %v; want error containing %q", s, err, tt.wantErr)
			}
		})
	}
}
