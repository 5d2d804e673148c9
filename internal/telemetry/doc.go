// Package telemetry builds the three observability outputs every binary
// has: a structured slog logger, a Prometheus registry, and an
// OpenTelemetry tracer provider.
//
// It is off the request path: cmd/* build these once at start-up and hand
// them to the parts that log, count and trace. Nothing is registered
// globally; the registry is not prometheus.DefaultRegisterer and the tracer
// provider is not installed with otel.SetTracerProvider, so tests can build
// as many as they like and each binary decides what it wires where.
package telemetry
