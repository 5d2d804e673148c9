package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Server is the config part for the listeners every binary runs: the gRPC
// port Envoy calls and the HTTP admin port Prometheus and the kubelet call.
type Server struct {
	GRPCAddr string `yaml:"grpcAddr" env:"PORTCULLIS_GRPC_ADDR"`
	HTTPAddr string `yaml:"httpAddr" env:"PORTCULLIS_HTTP_ADDR"`

	// DrainDelay is how long the server keeps answering, already reporting
	// NOT_SERVING, after shutdown starts, so endpoints and Envoy clusters
	// stop routing to it before connections are closed.
	DrainDelay time.Duration `yaml:"drainDelay" env:"PORTCULLIS_DRAIN_DELAY"`

	// ShutdownGrace bounds how long in-flight calls may take to finish
	// after the drain delay before they are cut. DrainDelay plus
	// ShutdownGrace should stay under the pod's termination grace period.
	ShutdownGrace time.Duration `yaml:"shutdownGrace" env:"PORTCULLIS_SHUTDOWN_GRACE"`

	TLS TLS `yaml:"tls"`
}

// DefaultServer is the Server part with the given listen addresses, which
// each binary chooses so authz and ratelimit can run side by side.
func DefaultServer(grpcAddr, httpAddr string) Server {
	return Server{
		GRPCAddr:      grpcAddr,
		HTTPAddr:      httpAddr,
		DrainDelay:    5 * time.Second,
		ShutdownGrace: 15 * time.Second,
	}
}

// Validate checks the Server part's own fields.
func (s Server) Validate() error {
	var errs []error
	if err := checkAddr(s.GRPCAddr); err != nil {
		errs = append(errs, fmt.Errorf("grpcAddr: %w", err))
	}
	if err := checkAddr(s.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("httpAddr: %w", err))
	}
	if s.GRPCAddr == s.HTTPAddr && s.GRPCAddr != "" && !portZero(s.GRPCAddr) {
		errs = append(errs, fmt.Errorf("httpAddr: must differ from grpcAddr %q", s.GRPCAddr))
	}
	if s.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("drainDelay: must not be negative, got %v", s.DrainDelay))
	}
	if s.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdownGrace: must not be negative, got %v", s.ShutdownGrace))
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("required, as HOST:PORT or :PORT")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want HOST:PORT or :PORT: %w", err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	} else if n == 0 && port != "0" {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func portZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// TLS is the config part for serving gRPC over TLS, and for mutual TLS
// when ClientCAFile is set. Inside an Istio mesh the sidecar usually
// provides mTLS and this stays empty.
type TLS struct {
	CertFile string `yaml:"certFile" env:"PORTCULLIS_TLS_CERT_FILE"`
	KeyFile  string `yaml:"keyFile" env:"PORTCULLIS_TLS_KEY_FILE"`
	// ClientCAFile, when set, requires and verifies client certificates
	// against the CAs in this PEM file.
	ClientCAFile string `yaml:"clientCAFile" env:"PORTCULLIS_TLS_CLIENT_CA_FILE"`
}

// Enabled reports whether the server should speak TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Validate checks that the files come as a usable set; whether they can be
// read and parsed is checked when the server loads them.
func (t TLS) Validate() error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("certFile and keyFile must be set together"))
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		errs = append(errs, errors.New("clientCAFile needs certFile and keyFile: mutual TLS is TLS first"))
	}
	return errors.Join(errs...)
}

// Log is the config part for the process's structured logs.
type Log struct {
	// Level is debug, info, warn or error, optionally with an offset such
	// as "info+2" (slog's syntax). It can change on reload.
	Level string `yaml:"level" env:"PORTCULLIS_LOG_LEVEL"`
	// Format is json (for log collectors) or text (for people).
	Format string `yaml:"format" env:"PORTCULLIS_LOG_FORMAT"`
}

// Log formats.
const (
	LogJSON = "json"
	LogText = "text"
)

// DefaultLog logs JSON at info, what log pipelines expect.
func DefaultLog() Log { return Log{Level: "info", Format: LogJSON} }

// SlogLevel is Level parsed; Validate has rejected levels it cannot parse,
// so the info fallback only serves a Log that was never validated.
func (l Log) SlogLevel() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

// Validate checks the Log part's own fields.
func (l Log) Validate() error {
	var errs []error
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		errs = append(errs, fmt.Errorf("level: want debug, info, warn or error, got %q", l.Level))
	}
	if l.Format != LogJSON && l.Format != LogText {
		errs = append(errs, fmt.Errorf("format: want %q or %q, got %q", LogJSON, LogText, l.Format))
	}
	return errors.Join(errs...)
}

// Tracing is the config part for OpenTelemetry traces. Tracing is off
// unless Endpoint is set.
type Tracing struct {
	// Endpoint is the OTLP/gRPC collector, as HOST:PORT or a URL
	// (http://collector:4317 for plaintext, https://… for TLS).
	Endpoint string `yaml:"endpoint" env:"PORTCULLIS_OTLP_ENDPOINT"`
	// Insecure sends to a HOST:PORT endpoint without TLS, as in-cluster
	// collectors usually expect. A URL endpoint's scheme decides instead.
	Insecure bool `yaml:"insecure" env:"PORTCULLIS_OTLP_INSECURE"`
	// SampleRatio is the fraction of traces started here that are
	// recorded. Traces Envoy started keep Envoy's decision.
	SampleRatio float64 `yaml:"sampleRatio" env:"PORTCULLIS_TRACE_SAMPLE_RATIO"`
}

// DefaultTracing is off; when an endpoint is set it records every trace
// started here and talks plaintext to an in-cluster collector.
func DefaultTracing() Tracing { return Tracing{Insecure: true, SampleRatio: 1} }

// Enabled reports whether traces are exported.
func (t Tracing) Enabled() bool { return t.Endpoint != "" }

// Validate checks the Tracing part's own fields.
func (t Tracing) Validate() error {
	var errs []error
	if !(t.SampleRatio >= 0 && t.SampleRatio <= 1) { // also rejects NaN
		errs = append(errs, fmt.Errorf("sampleRatio: want a number from 0 to 1, got %v", t.SampleRatio))
	}
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err == nil && u.Scheme != "" && u.Host != "" {
			if u.Scheme != "http" && u.Scheme != "https" {
				errs = append(errs, fmt.Errorf("endpoint: URL scheme must be http or https, got %q", u.Scheme))
			}
		} else if _, _, err := net.SplitHostPort(t.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("endpoint: want HOST:PORT or an http(s) URL: %w", err))
		}
	}
	return errors.Join(errs...)
}
