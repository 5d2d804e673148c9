package server

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// rpcMetrics counts and times every RPC by service and method, with the
// metric and label names of go-grpc-prometheus so existing dashboards and
// alerts work unchanged.
type rpcMetrics struct {
	started  *prometheus.CounterVec
	handled  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

// latencyBuckets resolve the sub-millisecond answers ext_authz and
// rate-limit checks aim for, up to the seconds an IdP round trip may take.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newRPCMetrics(reg prometheus.Registerer) (*rpcMetrics, error) {
	m := &rpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total",
			Help: "RPCs started on the server.",
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "RPCs completed on the server, by status code.",
		}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "grpc_server_handling_seconds",
			Help:                        "Time from receiving an RPC to completing it.",
			Buckets:                     latencyBuckets,
			NativeHistogramBucketFactor: 1.1,
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "grpc_server_in_flight",
			Help: "RPCs being handled now; long-lived streams count while open.",
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
	}
	for _, c := range []prometheus.Collector{m.started, m.handled, m.latency, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// splitMethod turns "/pkg.Service/Method" into its two labels.
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

func (m *rpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	began := time.Now()
	svc, meth := splitMethod(info.FullMethod)
	m.started.WithLabelValues("unary", svc, meth).Inc()
	g := m.inFlight.WithLabelValues("unary", svc, meth)
	g.Inc()
	resp, err := handler(ctx, req)
	g.Dec()
	m.handled.WithLabelValues("unary", svc, meth, status.Code(err).String()).Inc()
	m.latency.WithLabelValues("unary", svc, meth).Observe(time.Since(began).Seconds())
	return resp, err
}

func (m *rpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	began := time.Now()
	typ := streamType(info)
	svc, meth := splitMethod(info.FullMethod)
	m.started.WithLabelValues(typ, svc, meth).Inc()
	g := m.inFlight.WithLabelValues(typ, svc, meth)
	g.Inc()
	err := handler(srv, ss)
	g.Dec()
	m.handled.WithLabelValues(typ, svc, meth, status.Code(err).String()).Inc()
	m.latency.WithLabelValues(typ, svc, meth).Observe(time.Since(began).Seconds())
	return err
}

func streamType(info *grpc.StreamServerInfo) string {
	switch {
	case info.IsClientStream && info.IsServerStream:
		return "bidi_stream"
	case info.IsClientStream:
		return "client_stream"
	default:
		return "server_stream"
	}
}
