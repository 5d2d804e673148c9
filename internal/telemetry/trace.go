package telemetry

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// Service identifies the process in the traces it exports.
type Service struct {
	Name    string // e.g. "portcullis-authz"
	Version string // build version; may be empty
}

// NewTracerProvider returns a provider that batches spans to the OTLP/gRPC
// collector cfg names, sampling root spans at cfg.SampleRatio and following
// the caller's decision otherwise (Envoy usually decides). When tracing is
// off it returns a nil provider, which callers take to mean "do not
// instrument", and a shutdown that does nothing.
//
// shutdown flushes buffered spans and must be called before exit with a
// context bounding how long that may take. The exporter connects lazily:
// an unreachable collector costs dropped spans, never a failed start.
func NewTracerProvider(ctx context.Context, cfg config.Tracing, svc Service) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !cfg.Enabled() {
		return nil, noop, nil
	}
	opts := []otlptracegrpc.Option{}
	if strings.Contains(cfg.Endpoint, "://") {
		opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	} else {
		opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, noop, fmt.Errorf("create OTLP trace exporter for %s: %w", cfg.Endpoint, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", svc.Name)}
	if svc.Version != "" {
		attrs = append(attrs, attribute.String("service.version", svc.Version))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, noop, fmt.Errorf("build trace resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return sdk, func(ctx context.Context) error {
		if err := sdk.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down tracer provider: %w", err)
		}
		return nil
	}, nil
}

// Propagator reads and writes W3C trace context and baggage, the headers
// Envoy forwards to ext_authz and rate-limit services when tracing is on.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
