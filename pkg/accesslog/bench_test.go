package accesslog_test

import (
	"context"
	"io"
	"testing"
	"time"

	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/accesslog"
	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/analytics/collectortest"
)

type discard struct{}

func (discard) Name() string                                    { return "noop" }
func (discard) Export(context.Context, []analytics.Event) error { return nil }
func (discard) Shutdown(context.Context) error                  { return nil }

// BenchmarkStream is the access-log sink's sustained rate: b.N entries
// over one real gRPC stream in messages of 100 (Envoy's default buffer
// holds about that many), converted, queued, and exported by each sink
// until the Emitter's Close has flushed them. exported/s counts what the
// sink accepted over the whole run; drops/op is the share the bounded
// queue refused because the sink fell behind; x-noop is exported/s over
// the no-op sink's. The OTLP sinks export to the Collector's receiver in
// the same process, sharing its CPU.
func BenchmarkStream(b *testing.B) {
	coll := collectortest.StartCounting(b)
	otlp := func(flag string) func(b *testing.B) analytics.Sink {
		return func(b *testing.B) analytics.Sink {
			spec, err := analytics.ParseSink(flag)
			if err != nil {
				b.Fatal(err)
			}
			s, err := analytics.OpenSink(context.Background(), spec, analytics.SinkOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
	}
	sinks := []struct {
		name string
		open func(b *testing.B) analytics.Sink
	}{
		{"noop", func(*testing.B) analytics.Sink { return discard{} }},
		{"jsonl", func(*testing.B) analytics.Sink { return analytics.NewJSONLines(io.Discard) }},
		{"otlp-grpc", otlp("otlp-grpc:" + coll.GRPCAddr())},
		{"otlp-http", otlp("otlp-http:" + coll.HTTPURL())},
	}
	entries := make([]*alsdata.HTTPAccessLogEntry, 100)
	for i := range entries {
		entries[i] = baseEntry()
	}
	snap := loadCatalog(b)
	var noopRate float64
	for _, sk := range sinks {
		b.Run(sk.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			sink := sk.open(b)
			em, err := analytics.NewEmitter(analytics.EmitterOptions{Sinks: []analytics.Sink{sink}, QueueSize: 1 << 15, Registerer: reg})
			if err != nil {
				b.Fatal(err)
			}
			h := start(b, accesslog.Options{Sink: em, Catalog: fixedCatalog{snap}, TrustedHops: 1})
			s := h.open(b, context.Background(), node)
			b.ReportAllocs()
			b.ResetTimer()
			begin := time.Now()
			for sent := 0; sent < b.N; {
				n := min(len(entries), b.N-sent)
				s.send(entries[:n]...)
				sent += n
			}
			if err := s.close(); err != nil {
				b.Fatal(err)
			}
			if err := em.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(begin)
			b.StopTimer()
			exported, _ := metricValue(b, reg, "portcullis_analytics_events_exported_total", "sink", sink.Name())
			dropped, _ := metricValue(b, reg, "portcullis_analytics_events_dropped_total", "reason", "queue_full")
			rate := exported / elapsed.Seconds()
			b.ReportMetric(rate, "exported/s")
			b.ReportMetric(dropped/float64(b.N), "drops/op")
			if sk.name == "noop" {
				noopRate = rate
			} else if noopRate > 0 {
				b.ReportMetric(rate/noopRate, "x-noop")
			}
		})
	}
}
