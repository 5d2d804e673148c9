package analytics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SinkKind is where events are exported.
type SinkKind uint8

const (
	// SinkOff exports no events (usage metrics still count them).
	SinkOff SinkKind = iota
	// SinkJSONL writes JSON lines to a file, or to stdout for "-".
	SinkJSONL
	// SinkOTLPGRPC sends OTLP log records over gRPC, in plaintext: in a
	// mesh the sidecar carries it over mTLS.
	SinkOTLPGRPC
	// SinkOTLPHTTP sends OTLP log records over HTTP(S) to a URL.
	SinkOTLPHTTP
)

// SinkSpec is a parsed -analytics flag value.
type SinkSpec struct {
	Kind SinkKind
	// Target is the file ("-" for stdout), HOST:PORT, or the logs URL
	// (with its path: a URL given without one gets /v1/logs).
	Target string
}

// DefaultOTLPLogsPath is the OTLP/HTTP logs path, used when an otlp-http
// URL has none.
const DefaultOTLPLogsPath = "/v1/logs"

// ParseSink reads the -analytics flag: off, jsonl:FILE (jsonl:- for
// stdout), otlp-grpc:HOST:PORT or otlp-http:URL. It checks the form only;
// nothing is opened or dialled. A URL with user information, a query or a
// fragment is refused: credentials for the collector belong in the
// OTEL_EXPORTER_OTLP_HEADERS environment variable, not in a flag that
// ends up in process listings and logs.
func ParseSink(s string) (SinkSpec, error) {
	kind, rest, found := strings.Cut(s, ":")
	switch {
	case s == "off":
		return SinkSpec{Kind: SinkOff}, nil
	case !found:
		return SinkSpec{}, fmt.Errorf("analytics sink %q: want off, jsonl:FILE, otlp-grpc:HOST:PORT or otlp-http:URL", s)
	}
	switch kind {
	case "jsonl":
		if rest == "" {
			return SinkSpec{}, errors.New(`analytics sink "jsonl:": want a file, or - for stdout`)
		}
		if strings.ContainsRune(rest, 0) {
			return SinkSpec{}, errors.New("analytics sink jsonl: file name holds a NUL byte")
		}
		return SinkSpec{Kind: SinkJSONL, Target: rest}, nil
	case "otlp-grpc":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" {
			return SinkSpec{}, fmt.Errorf("analytics sink otlp-grpc:%s: want HOST:PORT", rest)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return SinkSpec{}, fmt.Errorf("analytics sink otlp-grpc:%s: port %q is not 1-65535", rest, port)
		}
		if strings.ContainsAny(host, "/@?# ") {
			return SinkSpec{}, fmt.Errorf("analytics sink otlp-grpc:%s: want HOST:PORT, not a URL", rest)
		}
		return SinkSpec{Kind: SinkOTLPGRPC, Target: rest}, nil
	case "otlp-http":
		u, err := url.Parse(rest)
		if err != nil {
			return SinkSpec{}, fmt.Errorf("analytics sink otlp-http: %w", err)
		}
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			return SinkSpec{}, errors.New("analytics sink otlp-http: want an http:// or https:// URL")
		case u.Host == "" || u.Hostname() == "":
			return SinkSpec{}, errors.New("analytics sink otlp-http: URL has no host")
		case u.User != nil:
			return SinkSpec{}, errors.New("analytics sink otlp-http: URL must not carry credentials (use OTEL_EXPORTER_OTLP_HEADERS)")
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "":
			return SinkSpec{}, errors.New("analytics sink otlp-http: URL must not have a query or fragment")
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = DefaultOTLPLogsPath
			u.RawPath = ""
		}
		return SinkSpec{Kind: SinkOTLPHTTP, Target: u.String()}, nil
	}
	return SinkSpec{}, fmt.Errorf("analytics sink %q: unknown kind %q (want off, jsonl, otlp-grpc or otlp-http)", s, kind)
}

// String is the flag value that parses back to s.
func (s SinkSpec) String() string {
	switch s.Kind {
	case SinkJSONL:
		return "jsonl:" + s.Target
	case SinkOTLPGRPC:
		return "otlp-grpc:" + s.Target
	case SinkOTLPHTTP:
		return "otlp-http:" + s.Target
	}
	return "off"
}

// SinkOptions are what OpenSink needs besides the spec.
type SinkOptions struct {
	// Stdout is where jsonl:- writes; required for it.
	Stdout io.Writer
	// ServiceName and ServiceVersion name the process in the OTLP
	// resource (service.name, service.version).
	ServiceName, ServiceVersion string
	// Timeout bounds one OTLP export, retries included. Default 10s.
	Timeout time.Duration
}

// OpenSink opens the sink spec names. OTLP exporters connect lazily, so an
// unreachable collector fails exports (counted, logged), never the start.
// SinkOff has no sink to open: check Kind first.
func OpenSink(ctx context.Context, spec SinkSpec, opts SinkOptions) (Sink, error) {
	switch spec.Kind {
	case SinkJSONL:
		if spec.Target == "-" {
			if opts.Stdout == nil {
				return nil, errors.New("open analytics sink jsonl:-: no stdout writer given")
			}
			return NewJSONLines(opts.Stdout), nil
		}
		return OpenJSONLines(spec.Target)
	case SinkOTLPGRPC:
		return DialOTLPGRPC(ctx, spec.Target, opts)
	case SinkOTLPHTTP:
		return DialOTLPHTTP(ctx, spec.Target, opts)
	}
	return nil, errors.New("open analytics sink: off has no sink")
}
