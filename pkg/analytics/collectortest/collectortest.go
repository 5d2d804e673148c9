package collectortest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/portcullis-dev/portcullis/internal/freeport"
)

// Record is one received log record, flattened for comparison.
type Record struct {
	Resource          map[string]any
	Scope             string
	EventName         string
	Timestamp         time.Time
	ObservedTimestamp time.Time
	Severity          string // severity text
	SeverityNumber    int32
	Body              string
	Attributes        map[string]any
}

// Collector is a running OTLP receiver.
type Collector struct {
	grpcAddr, httpAddr string
	countOnly          bool
	count              atomic.Int64

	mu      sync.Mutex
	records []Record
	changed chan struct{} // closed and replaced on every receipt
}

// Start starts a receiver on free loopback ports; it stops when the test
// ends. It fails the test if the receiver cannot start.
func Start(t testing.TB) *Collector {
	t.Helper()
	return start(t, false)
}

// StartCounting starts a receiver that only counts the records (Count),
// for benchmarks: flattening records for Records costs more than the
// exporters being measured.
func StartCounting(t testing.TB) *Collector {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, countOnly bool) *Collector {
	t.Helper()
	c := &Collector{
		countOnly: countOnly,
		grpcAddr:  fmt.Sprintf("127.0.0.1:%d", freeport.Port(t)),
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", freeport.Port(t)),
		changed:   make(chan struct{}),
	}
	f := otlpreceiver.NewFactory()
	cfg, ok := f.CreateDefaultConfig().(*otlpreceiver.Config)
	if !ok {
		t.Fatalf("collectortest: otlpreceiver config is %T", f.CreateDefaultConfig())
	}
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = c.grpcAddr
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = c.httpAddr
	sink, err := consumer.NewLogs(c.consume)
	if err != nil {
		t.Fatalf("collectortest: logs consumer: %v", err)
	}
	var set receiver.Settings = receivertest.NewNopSettings(f.Type())
	r, err := f.CreateLogs(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatalf("collectortest: create OTLP receiver: %v", err)
	}
	if err := r.Start(context.Background(), host{}); err != nil {
		t.Fatalf("collectortest: start OTLP receiver: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Errorf("collectortest: shut down OTLP receiver: %v", err)
		}
	})
	return c
}

// GRPCAddr is the OTLP/gRPC endpoint, HOST:PORT.
func (c *Collector) GRPCAddr() string { return c.grpcAddr }

// HTTPURL is the OTLP/HTTP logs URL.
func (c *Collector) HTTPURL() string { return "http://" + c.httpAddr + "/v1/logs" }

// Records returns what was received so far, in order.
func (c *Collector) Records() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Record(nil), c.records...)
}

// WaitFor returns the records once at least n have arrived, or fails the
// test after timeout. OTLP exporters return only after the receiver has
// consumed the request, so a test that exported synchronously can wait
// with n already reached; this is for exports that run in the background.
func (c *Collector) WaitFor(t testing.TB, n int, timeout time.Duration) []Record {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.records), c.changed
		c.mu.Unlock()
		if got >= n {
			return c.Records()
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("collectortest: %d of %d records arrived within %v", got, n, timeout)
			return nil
		}
	}
}

// Count is how many records arrived, in either mode.
func (c *Collector) Count() int64 { return c.count.Load() }

func (c *Collector) consume(_ context.Context, ld plog.Logs) error {
	c.count.Add(int64(ld.LogRecordCount()))
	if c.countOnly {
		return nil
	}
	var got []Record
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes().AsRaw()
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				got = append(got, Record{
					Resource:          res,
					Scope:             sl.Scope().Name(),
					EventName:         lr.EventName(),
					Timestamp:         lr.Timestamp().AsTime(),
					ObservedTimestamp: lr.ObservedTimestamp().AsTime(),
					Severity:          lr.SeverityText(),
					SeverityNumber:    int32(lr.SeverityNumber()),
					Body:              bodyString(lr.Body()),
					Attributes:        lr.Attributes().AsRaw(),
				})
			}
		}
	}
	c.mu.Lock()
	c.records = append(c.records, got...)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func bodyString(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return v.AsString()
}

// host is the receiver's host: no extensions.
type host struct{}

func (host) GetExtensions() map[component.ID]component.Component { return nil }
