package accesslog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// EventSink takes events without blocking: *analytics.Emitter. Emit
// reports whether the event was kept; the sink counts its own drops.
type EventSink interface {
	Emit(analytics.Event) bool
}

// Catalog gives the catalog in force: *catalog.Source. It is read once per
// message, to add the base path, owner and display name authz's metadata
// does not carry.
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// Options are a Service's dependencies.
type Options struct {
	// Sink receives one event per HTTP entry; required.
	Sink EventSink
	// Catalog enriches events; nil leaves the base path out and uses
	// application names as display names.
	Catalog Catalog
	// TrustedHops is authz's, so that the client address of an event is
	// the one authz judged.
	TrustedHops int
	// Draining, when closed, ends every stream so that Envoy reconnects to
	// another replica (internal/server's Draining). Nil: streams end only
	// when Envoy ends them.
	Draining <-chan struct{}
	// MaxNodes caps the Envoy nodes with series of their own. Default 256.
	MaxNodes int
	// NodeIdle is how long a node with no open stream must have been
	// silent before a new node may take its series. Default 1h.
	NodeIdle time.Duration
	// Clock reads the time for the last-entry gauges; nil is time.Now.
	Clock func() time.Time
	// Logger receives stream starts and ends at debug level. Nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Service is Envoy's access-log service: each HTTP entry on a stream
// becomes one analytics event.
type Service struct {
	alsv3.UnimplementedAccessLogServiceServer

	sink     EventSink
	cat      Catalog
	hops     int
	draining <-chan struct{}
	now      func() time.Time
	log      *slog.Logger
	nodes    *nodes
	m        *metrics
}

var _ alsv3.AccessLogServiceServer = (*Service)(nil)

// New returns a Service; register it with alsv3.RegisterAccessLogServiceServer.
func New(opts Options) (*Service, error) {
	if opts.Sink == nil {
		return nil, errors.New("new access-log service: no event sink")
	}
	if opts.TrustedHops < 0 {
		return nil, fmt.Errorf("new access-log service: trusted hops must not be negative, got %d", opts.TrustedHops)
	}
	if opts.MaxNodes <= 0 {
		opts.MaxNodes = 256
	}
	if opts.NodeIdle <= 0 {
		opts.NodeIdle = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		sink: opts.Sink, cat: opts.Catalog, hops: opts.TrustedHops, draining: opts.Draining,
		now: opts.Clock, log: log, nodes: newNodes(opts.MaxNodes, opts.NodeIdle, opts.Clock),
	}
	var err error
	if s.m, err = newMetrics(opts.Registerer, s.nodes); err != nil {
		return nil, fmt.Errorf("new access-log service: %w", err)
	}
	return s, nil
}

// StreamAccessLogs receives one Envoy's stream until Envoy closes it, the
// connection breaks, or the server drains. Envoy expects no response; on
// drain the stream ends with UNAVAILABLE so Envoy opens its next one to
// another replica. Entries Envoy had sent but this replica had not read
// are lost then, as on any broken stream: Envoy does not resend.
func (s *Service) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	s.m.active.Inc()
	defer s.m.active.Dec()
	// Recv blocks and cannot watch the drain signal, so it runs on its own
	// goroutine; returning from the handler cancels the stream, which ends
	// that goroutine's Recv.
	done := make(chan error, 1)
	go func() { done <- s.receive(stream) }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			s.m.closed(closedEOF)
			// The protocol's one response, which Envoy ignores; a client
			// that waits for it learns that everything it sent was read.
			if err := stream.SendAndClose(&alsv3.StreamAccessLogsResponse{}); err != nil {
				return fmt.Errorf("access-log stream: answer the close: %w", err)
			}
			return nil
		case status.Code(err) == codes.Canceled:
			s.m.closed(closedCancelled)
		default:
			s.m.closed(closedError)
		}
		return err
	case <-s.draining:
		s.m.closed(closedDrain)
		return status.Error(codes.Unavailable, "access-log service draining: reconnect to another replica")
	}
}

// receive reads messages until the stream ends; nil when Envoy closed it.
func (s *Service) receive(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	var n *node
	defer func() {
		if n != nil {
			s.nodes.release(n)
		}
	}()
	ctx := stream.Context()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n == nil {
			id := msg.GetIdentifier().GetNode().GetId()
			n = s.nodes.acquire(id)
			s.log.LogAttrs(ctx, slog.LevelDebug, "access-log stream opened", slog.String("node", id),
				slog.String("log_name", msg.GetIdentifier().GetLogName()))
		}
		if tcp := msg.GetTcpLogs(); tcp != nil {
			s.m.skipped[skipTCP].Add(float64(len(tcp.GetLogEntry())))
			continue
		}
		entries := msg.GetHttpLogs().GetLogEntry()
		if len(entries) == 0 {
			continue
		}
		var snap *catalog.Snapshot
		if s.cat != nil {
			snap = s.cat.Snapshot()
		}
		for _, e := range entries {
			if reason, skip := skipped(e); skip {
				s.m.skipped[reason].Inc()
				continue
			}
			s.sink.Emit(convert(n.label, e, snap, s.hops))
		}
		n.received(len(entries), s.now())
	}
}

// Reasons an entry yields no event.
const (
	skipIntermediate = iota // a periodic entry of a request still running
	skipLogType             // an entry for another moment than the request's end
	skipTCP                 // a TCP proxy's entry
	skipCount
)

var skipNames = [skipCount]string{"intermediate", "log_type", "tcp"}

// skipped says whether an entry is not a finished request: Envoy's
// periodic and start-of-request entries would count a request twice.
func skipped(e *alsdata.HTTPAccessLogEntry) (int, bool) {
	cp := e.GetCommonProperties()
	// Envoy before access_log_type (1.26) marks periodic entries only
	// with the deprecated flag; newer ones set both.
	//lint:ignore SA1019 read for Envoys that predate access_log_type
	if cp.GetIntermediateLogEntry() {
		return skipIntermediate, true
	}
	switch cp.GetAccessLogType() {
	case alsdata.AccessLogType_NotSet, alsdata.AccessLogType_DownstreamEnd:
		return 0, false
	}
	return skipLogType, true
}

// Why streams end.
const (
	closedEOF       = "eof"       // Envoy closed it
	closedCancelled = "cancelled" // Envoy reset it or went away
	closedError     = "error"     // the transport failed
	closedDrain     = "drain"     // this replica is shutting down
)

type metrics struct {
	active  prometheus.Gauge
	closedV *prometheus.CounterVec
	skipped [skipCount]prometheus.Counter
}

func (m *metrics) closed(reason string) { m.closedV.WithLabelValues(reason).Inc() }

func newMetrics(reg prometheus.Registerer, n *nodes) (*metrics, error) {
	const ns, sub = "portcullis", "accesslog"
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "streams_active",
			Help: "Access-log streams open now."}),
		closedV: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "streams_closed_total",
			Help: "Access-log streams ended, by reason: eof (Envoy closed it), cancelled (Envoy reset it), error (transport failure), " +
				"drain (this replica shut down). Every end but eof can lose entries Envoy had sent."}, []string{"reason"}),
	}
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "entries_skipped_total",
		Help: "Entries that yield no event: intermediate (periodic entries of a running request), log_type (not the request's end), tcp."},
		[]string{"reason"})
	for i, name := range skipNames {
		m.skipped[i] = skipped.WithLabelValues(name)
	}
	for _, r := range []string{closedEOF, closedCancelled, closedError, closedDrain} {
		m.closedV.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range append(n.collectors(), m.active, m.closedV, skipped) {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register access-log metrics: %w", err)
			}
		}
	}
	return m, nil
}
