package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestSharedPartsValidate(t *testing.T) {
	srv := DefaultServer(":8081", ":8080")
	tests := []struct {
		name    string
		part    Validator
		wantErr string // "" means valid
	}{
		{"default server", srv, ""},
		{"server on ephemeral ports for tests", Server{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, ""},
		{"server without a gRPC address", Server{HTTPAddr: ":8080"}, "grpcAddr: required"},
		{"server with a port out of range", Server{GRPCAddr: ":65536", HTTPAddr: ":8080"}, `grpcAddr: port "65536"`},
		{"server with a named port", Server{GRPCAddr: ":grpc", HTTPAddr: ":8080"}, `grpcAddr: port "grpc"`},
		{"server with both listeners on one port", Server{GRPCAddr: ":9000", HTTPAddr: ":9000"}, "httpAddr: must differ"},
		{"server with a negative grace", Server{GRPCAddr: ":1", HTTPAddr: ":2", ShutdownGrace: -time.Second}, "shutdownGrace: must not be negative"},
		{"server with a negative drain delay", Server{GRPCAddr: ":1", HTTPAddr: ":2", DrainDelay: -1}, "drainDelay: must not be negative"},
		{"no TLS", TLS{}, ""},
		{"TLS", TLS{CertFile: "c", KeyFile: "k"}, ""},
		{"mutual TLS", TLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}, ""},
		{"TLS key without certificate", TLS{KeyFile: "k"}, "certFile and keyFile must be set together"},
		{"client CA without server certificate", TLS{ClientCAFile: "ca"}, "clientCAFile needs certFile"},
		{"default log", DefaultLog(), ""},
		{"text log at a custom level", Log{Level: "INFO+2", Format: "text"}, ""},
		{"log at an unknown level", Log{Level: "verbose", Format: "json"}, `level: want debug, info, warn or error, got "verbose"`},
		{"log in an unknown format", Log{Level: "info", Format: "logfmt"}, `format: want "json" or "text"`},
		{"tracing off", DefaultTracing(), ""},
		{"tracing to HOST:PORT", Tracing{Endpoint: "otel-collector.observability:4317", SampleRatio: 0.1}, ""},
		{"tracing to a URL", Tracing{Endpoint: "https://collector.example:4317", SampleRatio: 1}, ""},
		{"tracing to a URL with another scheme", Tracing{Endpoint: "grpc://collector:4317", SampleRatio: 1}, "endpoint: URL scheme must be http or https"},
		{"tracing to a host without port", Tracing{Endpoint: "collector", SampleRatio: 1}, "endpoint: want HOST:PORT"},
		{"tracing with a ratio above one", Tracing{SampleRatio: 1.5}, "sampleRatio: want a number from 0 to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.part.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestLogSlogLevel(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"INFO", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"info+2", slog.LevelInfo + 2},
		{"nonsense", slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			if got := (Log{Level: tt.level}).SlogLevel(); got != tt.want {
				t.Errorf("SlogLevel() = %v, want %v", got, tt.want)
			}
		})
	}
}
