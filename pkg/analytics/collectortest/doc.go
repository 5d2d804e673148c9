// Package collectortest runs the OpenTelemetry Collector's OTLP receiver
// (go.opentelemetry.io/collector/receiver/otlpreceiver) inside a test, on
// loopback gRPC and HTTP ports, and records the log records it receives.
// It is the collector of the analytics tests: the real receiver decodes
// what the exporters send, so a record that reaches Records is one a
// deployed collector would have accepted.
//
// Why in-process and not a collector binary: no otelcol binary can be had
// on the build machines, and the collector's builder would fetch and
// compile the whole distribution for every CI run. The receiver is the
// part that parses the wire format; the file exporter behind it in a real
// collector only re-encodes what the receiver decoded.
//
// It is no part of the request path: the analytics tests stand it where
// the deployment's collector receives step 4's events. Importing it
// registers the collector's gRPC codec for the whole test binary, as any
// collector component does; it delegates to the protobuf codec for other
// messages.
package collectortest
