package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/portcullis-dev/portcullis/internal/config"
)

func TestNewLoggerWritesTheConfiguredFormatAndLevel(t *testing.T) {
	tests := []struct {
		name     string
		cfg      config.Log
		wantJSON bool
		debugOn  bool
	}{
		{"json at info", config.Log{Level: "info", Format: "json"}, true, false},
		{"empty format means json", config.Log{Level: "info"}, true, false},
		{"text at debug", config.Log{Level: "debug", Format: "text"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("quiet")
			log.Info("hello", "n", 1)
			out := buf.String()
			if got := strings.Contains(out, "quiet"); got != tt.debugOn {
				t.Errorf("debug record written = %v, want %v; output %q", got, tt.debugOn, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			var rec map[string]any
			isJSON := json.Unmarshal([]byte(last), &rec) == nil
			if isJSON != tt.wantJSON {
				t.Fatalf("JSON = %v, want %v: %q", isJSON, tt.wantJSON, last)
			}
			if !strings.Contains(last, "hello") {
				t.Errorf("info record missing: %q", last)
			}
		})
	}
}

func TestNewLoggerRejectsAnUnknownFormat(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, config.Log{Level: "info", Format: "xml"}, nil); err == nil {
		t.Fatal("NewLogger accepted format xml")
	}
}

func TestLoggerLevelFollowsItsLevelVar(t *testing.T) {
	var buf bytes.Buffer
	var level slog.LevelVar
	log, err := NewLogger(&buf, config.Log{Level: "warn", Format: "json"}, &level)
	if err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelWarn {
		t.Fatalf("LevelVar = %v, want the configured warn", level.Level())
	}
	log.Info("before")
	level.Set(slog.LevelDebug) // what a reload does
	log.Info("after")
	out := buf.String()
	if strings.Contains(out, "before") || !strings.Contains(out, "after") {
		t.Errorf("output %q: want only the record logged after lowering the level", out)
	}
}

func TestLoggerRedactsCredentialAttributes(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, config.DefaultLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("request",
		"Authorization", "Bearer abc.def",
		slog.Group("req", "api-key", "k-123", "path", "/v1/pets"),
		"token_cache_size", 3,
	)
	out := buf.String()
	for _, secret := range []string{"abc.def", "k-123"} {
		if strings.Contains(out, secret) {
			t.Errorf("output %q leaks %q", out, secret)
		}
	}
	for _, kept := range []string{"/v1/pets", `"token_cache_size":3`, Redacted} {
		if !strings.Contains(out, kept) {
			t.Errorf("output %q lacks %q", out, kept)
		}
	}
}

func TestNewRegistryHasRuntimeAndProcessMetrics(t *testing.T) {
	reg := NewRegistry()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !have[name] {
			t.Errorf("registry lacks %s", name)
		}
	}
	// Independent registries: building a second one must not collide.
	if _, err := NewRegistry().Gather(); err != nil {
		t.Errorf("second registry: %v", err)
	}
}

func TestTracerProviderIsNilWhenTracingIsOff(t *testing.T) {
	tp, shutdown, err := NewTracerProvider(t.Context(), config.DefaultTracing(), Service{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if tp != nil {
		t.Errorf("provider = %v, want nil when no endpoint is set", tp)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// collector is a fake OTLP/gRPC trace collector.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestTracerProviderExportsSpansToTheCollector(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	for _, tt := range []struct {
		name     string
		endpoint string
	}{
		{"HOST:PORT endpoint", lis.Addr().String()},
		{"URL endpoint", "http://" + lis.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			col.mu.Lock()
			col.reqs = nil
			col.mu.Unlock()
			cfg := config.Tracing{Endpoint: tt.endpoint, Insecure: true, SampleRatio: 1}
			tp, shutdown, err := NewTracerProvider(t.Context(), cfg, Service{Name: "portcullis-test", Version: "v0"})
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(t.Context(), "check")
			span.End()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := shutdown(ctx); err != nil { // flushes the batch
				t.Fatalf("shutdown: %v", err)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			var spans []string
			var service string
			for _, req := range col.reqs {
				for _, rs := range req.GetResourceSpans() {
					for _, a := range rs.GetResource().GetAttributes() {
						if a.GetKey() == "service.name" {
							service = a.GetValue().GetStringValue()
						}
					}
					for _, ss := range rs.GetScopeSpans() {
						for _, s := range ss.GetSpans() {
							spans = append(spans, s.GetName())
						}
					}
				}
			}
			if len(spans) != 1 || spans[0] != "check" {
				t.Errorf("collector got spans %v, want [check]", spans)
			}
			if service != "portcullis-test" {
				t.Errorf("service.name = %q, want portcullis-test", service)
			}
		})
	}
}
