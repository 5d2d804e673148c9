package analytics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// scopeName is the instrumentation scope of the log records.
const scopeName = "github.com/portcullis-dev/portcullis/pkg/analytics"

// OTLP exports events as OpenTelemetry log records through an SDK log
// exporter (OTLP over gRPC or HTTP). One record per event: the event name
// says what produced it, the attributes are the event's fields under the
// names of the package documentation's table, the body a one-line summary.
//
// The Emitter already queues and batches, so the SDK's own batch processor
// (a second queue that drops silently when full) is not used: a processor
// of our own gathers the batch's records and Export hands them to the
// exporter at once, so a failure is seen, counted and logged by the
// Emitter.
type OTLP struct {
	name     string
	exp      sdklog.Exporter
	provider *sdklog.LoggerProvider
	logger   otellog.Logger
	gather   *gatherer
	attrs    []attribute.KeyValue
	now      func() time.Time
}

var _ Sink = (*OTLP)(nil)

// NewOTLP exports through exp; name labels the sink ("otlp-grpc",
// "otlp-http"); res is the resource the records are from (nil: the SDK's
// default). Shutdown shuts exp down.
func NewOTLP(name string, exp sdklog.Exporter, res *resource.Resource) *OTLP {
	g := &gatherer{}
	// AppendAttributes writes each key once, so the SDK's duplicate check
	// (an index map rebuilt for every attribute the logger copies, most of
	// an export's time) is skipped.
	opts := []sdklog.LoggerProviderOption{sdklog.WithProcessor(g), sdklog.WithAllowKeyDuplication()}
	if res != nil {
		opts = append(opts, sdklog.WithResource(res))
	}
	p := sdklog.NewLoggerProvider(opts...)
	return &OTLP{
		name:     name,
		exp:      exp,
		provider: p,
		logger:   p.Logger(scopeName),
		gather:   g,
		now:      time.Now,
	}
}

// DialOTLPGRPC exports to an OTLP/gRPC collector at HOST:PORT, in
// plaintext. The connection is made lazily.
func DialOTLPGRPC(ctx context.Context, hostPort string, opts SinkOptions) (*OTLP, error) {
	t := opts.timeout()
	exp, err := otlploggrpc.New(ctx,
		otlploggrpc.WithEndpoint(hostPort),
		otlploggrpc.WithInsecure(),
		otlploggrpc.WithTimeout(t),
		otlploggrpc.WithRetry(otlploggrpc.RetryConfig{
			Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: t / 4, MaxElapsedTime: t,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("create OTLP/gRPC log exporter for %s: %w", hostPort, err)
	}
	res, err := opts.resource()
	if err != nil {
		return nil, errors.Join(err, exp.Shutdown(ctx))
	}
	return NewOTLP("otlp-grpc", exp, res), nil
}

// DialOTLPHTTP exports to an OTLP/HTTP logs URL (http or https).
func DialOTLPHTTP(ctx context.Context, url string, opts SinkOptions) (*OTLP, error) {
	t := opts.timeout()
	exp, err := otlploghttp.New(ctx,
		otlploghttp.WithEndpointURL(url),
		otlploghttp.WithTimeout(t),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{
			Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: t / 4, MaxElapsedTime: t,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("create OTLP/HTTP log exporter for %s: %w", url, err)
	}
	res, err := opts.resource()
	if err != nil {
		return nil, errors.Join(err, exp.Shutdown(ctx))
	}
	return NewOTLP("otlp-http", exp, res), nil
}

func (o SinkOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 10 * time.Second
	}
	return o.Timeout
}

func (o SinkOptions) resource() (*resource.Resource, error) {
	name := o.ServiceName
	if name == "" {
		name = "portcullis"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("build analytics resource: %w", err)
	}
	return res, nil
}

// Name is "otlp-grpc" or "otlp-http".
func (o *OTLP) Name() string { return o.name }

// Export sends the batch as one OTLP request (the exporter retries
// transient failures within ctx's deadline).
func (o *OTLP) Export(ctx context.Context, events []Event) error {
	observed := o.now()
	for i := range events {
		var r otellog.Record
		o.attrs = o.record(&r, &events[i], observed, o.attrs[:0])
		o.logger.Emit(ctx, r)
	}
	err := o.exp.Export(ctx, o.gather.records)
	clear(o.gather.records)
	o.gather.records = o.gather.records[:0]
	if err != nil {
		return fmt.Errorf("export to %s: %w", o.name, err)
	}
	return nil
}

// Shutdown shuts the exporter down; the records were all exported by
// Export already.
func (o *OTLP) Shutdown(ctx context.Context) error {
	err := errors.Join(o.provider.Shutdown(ctx), o.exp.Shutdown(ctx))
	if err != nil {
		return fmt.Errorf("shut down %s sink: %w", o.name, err)
	}
	return nil
}

// record fills r from e; attrs is scratch space, returned for reuse.
func (o *OTLP) record(r *otellog.Record, e *Event, observed time.Time, attrs []attribute.KeyValue) []attribute.KeyValue {
	r.SetEventName(e.Source.eventName())
	r.SetTimestamp(e.Timestamp)
	r.SetObservedTimestamp(observed)
	if e.ErrorType != ErrorNone {
		r.SetSeverity(otellog.SeverityWarn)
		r.SetSeverityText("WARN")
	} else {
		r.SetSeverity(otellog.SeverityInfo)
		r.SetSeverityText("INFO")
	}
	r.SetBody(attribute.StringValue(Summary(e)))
	attrs = AppendAttributes(attrs, e)
	r.AddAttributes(attrs...)
	return attrs
}

// Summary is a one-line description of e for a log record's body:
// "GET /petstore/v1/pets/{id} 200", with the error code after a
// failure's status. It holds only the event's own fields.
func Summary(e *Event) string {
	b := make([]byte, 0, 64)
	if e.APIMethod != "" {
		b = append(b, e.APIMethod...)
		b = append(b, ' ')
	}
	if r := Route(e); r != "" {
		b = append(b, r...)
		b = append(b, ' ')
	} else if e.APIName != "" {
		b = append(b, e.APIID()...)
		b = append(b, ' ')
	}
	if e.ProxyResponseCode != 0 {
		b = strconv.AppendInt(b, int64(e.ProxyResponseCode), 10)
	} else if e.ErrorType == ErrorNone {
		b = append(b, "allowed"...)
	} else {
		b = append(b, '-')
	}
	if e.ErrorCode != "" {
		b = append(b, ' ')
		b = append(b, e.ErrorCode...)
	}
	return string(b)
}

// Route is the matched route, base path and template joined
// ("/petstore/v1" + "/pets/{id}"), OpenTelemetry's http.route; "" when no
// operation matched.
func Route(e *Event) string {
	if e.APIResourceTemplate == "" {
		return ""
	}
	ctx := e.APIContext
	if ctx == "/" {
		ctx = ""
	}
	return ctx + e.APIResourceTemplate
}

// gatherer is a log Processor that keeps what the logger emits for the
// sink's Export to hand to the exporter. Only the Emitter's goroutine
// emits, so it needs no lock.
type gatherer struct {
	records []sdklog.Record
}

func (g *gatherer) OnEmit(_ context.Context, r *sdklog.Record) error {
	g.records = append(g.records, r.Clone())
	return nil
}

func (g *gatherer) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (g *gatherer) Shutdown(context.Context) error                         { return nil }
func (g *gatherer) ForceFlush(context.Context) error                       { return nil }
