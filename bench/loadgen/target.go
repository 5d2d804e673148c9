package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Defaults for a Target's zero fields.
const (
	// DefaultConns is a few connections rather than one because a single
	// HTTP/2 connection serialises its frames through one writer and one
	// reader goroutine, which on a two-core machine caps throughput below
	// what the server can do.
	DefaultConns = 4
	// DefaultConcurrency keeps enough calls in flight to batch frames on
	// every connection without queueing most of them in the client.
	DefaultConcurrency = 16
	// DefaultDialTimeout bounds how long Dial waits for every connection to
	// be ready when the context has no earlier deadline.
	DefaultDialTimeout = 10 * time.Second
)

// Caller sends requests for one worker. The generator creates one per
// worker with a NewCaller, calls Call only from that worker, one call at a
// time, and calls Close once when the worker is done. That ownership is
// what lets a Caller reuse a response message or keep a stream open across
// calls without locks or per-call allocations.
//
// Call returns the response, or nil when the method has none per request
// (a client stream). The response may be reused by the next Call, so a
// Classifier must not keep it. An error should be a gRPC status error;
// the generator counts errors by status.Code.
type Caller interface {
	Call(ctx context.Context, req proto.Message) (proto.Message, error)
	Close() error
}

// NewCaller makes a worker's Caller on conn. ctx lives as long as the
// worker, so a stream opened with it stays open for the whole run.
type NewCaller func(ctx context.Context, conn *grpc.ClientConn) (Caller, error)

// Call is a whole unary call written as one function, for methods that
// need more than conn.Invoke (metadata, call options, a hand-built stub).
type Call func(ctx context.Context, conn *grpc.ClientConn, req proto.Message) (proto.Message, error)

// Classifier names the outcome of a successful call, such as "OK" or
// "OVER_LIMIT"; a Result counts calls per name. It runs on the hot path,
// so it should return constant strings and not allocate; resp may be nil
// for a client stream, and must not be kept.
type Classifier func(resp proto.Message) string

// Unary calls a unary method by its full name ("/package.Service/Method")
// with conn.Invoke, decoding every response into one message per worker
// made by newResponse: the same work a generated stub does, without its
// allocation of a fresh response per call.
func Unary(method string, newResponse func() proto.Message) NewCaller {
	return func(_ context.Context, conn *grpc.ClientConn) (Caller, error) {
		return &unaryCaller{conn: conn, method: method, resp: newResponse()}, nil
	}
}

type unaryCaller struct {
	conn   *grpc.ClientConn
	method string
	resp   proto.Message
}

func (u *unaryCaller) Call(ctx context.Context, req proto.Message) (proto.Message, error) {
	if err := u.conn.Invoke(ctx, u.method, req, u.resp); err != nil {
		return nil, err
	}
	return u.resp, nil
}

func (u *unaryCaller) Close() error { return nil }

// Func adapts a Call to a NewCaller.
func Func(call Call) NewCaller {
	return func(_ context.Context, conn *grpc.ClientConn) (Caller, error) {
		return funcCaller{conn: conn, call: call}, nil
	}
}

type funcCaller struct {
	conn *grpc.ClientConn
	call Call
}

func (f funcCaller) Call(ctx context.Context, req proto.Message) (proto.Message, error) {
	return f.call(ctx, f.conn, req)
}

func (f funcCaller) Close() error { return nil }

// ClientStream sends every request as one message on a client-streaming
// method (Envoy's StreamAccessLogs): each worker opens one stream, as an
// Envoy worker thread does, and a call is one SendMsg, whose latency is
// how long flow control made the sender wait for the server to drain.
// Close half-closes the stream and reads the single response into a
// message from newResponse. A per-call Target.Timeout does not apply:
// SendMsg takes no context, and the stream lives as long as the run.
func ClientStream(method string, newResponse func() proto.Message) NewCaller {
	return func(ctx context.Context, conn *grpc.ClientConn) (Caller, error) {
		desc := &grpc.StreamDesc{ClientStreams: true}
		stream, err := conn.NewStream(ctx, desc, method)
		if err != nil {
			return nil, fmt.Errorf("open stream %s: %w", method, err)
		}
		return &streamCaller{stream: stream, method: method, resp: newResponse()}, nil
	}
}

type streamCaller struct {
	stream grpc.ClientStream
	method string
	resp   proto.Message
	closed bool
}

func (s *streamCaller) Call(_ context.Context, req proto.Message) (proto.Message, error) {
	err := s.stream.SendMsg(req)
	if errors.Is(err, io.EOF) {
		// The server ended the stream; its status is what RecvMsg returns.
		s.closed = true
		if err = s.stream.RecvMsg(s.resp); err == nil {
			err = io.ErrUnexpectedEOF
		}
	}
	return nil, err
}

func (s *streamCaller) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.stream.CloseSend(); err != nil {
		return fmt.Errorf("close stream %s: %w", s.method, err)
	}
	if err := s.stream.RecvMsg(s.resp); err != nil {
		return fmt.Errorf("close stream %s: %w", s.method, err)
	}
	return nil
}

// Target is one server under test and the load to send it.
type Target struct {
	// Name labels the target in reports.
	Name string
	// Addr is the server's address, as grpc.NewClient takes it.
	Addr string
	// DialOptions are applied after insecure transport credentials, so
	// they may replace them (TLS) or add a context dialer (bufconn).
	DialOptions []grpc.DialOption
	// Conns is the number of client connections, each its own HTTP/2
	// connection; workers are spread over them round robin. 0 means
	// DefaultConns.
	Conns int
	// Concurrency is the number of workers, each with one call in flight.
	// 0 means DefaultConcurrency.
	Concurrency int
	// Messages are the requests, sent in order and cycled.
	Messages []proto.Message
	// Requests is how many calls one run makes (one round, in Interleave).
	Requests int
	// Warmup is how many calls are made before measuring, once per Dial,
	// to open streams, fill server caches and grow buffers.
	Warmup int
	// NewCaller makes each worker's Caller: Unary, ClientStream or Func.
	NewCaller NewCaller
	// Classify, when set, names the outcome of each successful call.
	Classify Classifier
	// Timeout, when positive, is each unary call's deadline. It costs a
	// context per call, so the default is none: the run's context bounds
	// the whole run instead.
	Timeout time.Duration
	// DialTimeout bounds Dial; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Validate reports a target that cannot be run, naming the field.
func (t Target) Validate() error {
	var errs []error
	if t.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	}
	if len(t.Messages) == 0 {
		errs = append(errs, errors.New("no messages"))
	}
	for i, m := range t.Messages {
		if m == nil {
			errs = append(errs, fmt.Errorf("message %d is nil", i))
		}
	}
	if t.Requests < 1 {
		errs = append(errs, fmt.Errorf("requests %d: must be at least 1", t.Requests))
	}
	if t.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup %d: must not be negative", t.Warmup))
	}
	if t.Conns < 0 {
		errs = append(errs, fmt.Errorf("conns %d: must not be negative", t.Conns))
	}
	if t.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d: must not be negative", t.Concurrency))
	}
	if t.NewCaller == nil {
		errs = append(errs, errors.New("no caller: set NewCaller"))
	}
	if t.Timeout < 0 || t.DialTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("target %q: %w", t.Name, err)
	}
	return nil
}

func (t Target) conns() int       { return defaultIfZero(t.Conns, DefaultConns) }
func (t Target) concurrency() int { return defaultIfZero(t.Concurrency, DefaultConcurrency) }

func defaultIfZero[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
