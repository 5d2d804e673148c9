package analytics

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/apikey"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// Decider is what decision events wrap: *authz.Authorizer. Its error
// contract is authz.Decide's: a refusal is a Decision, an error means no
// decision could be reached.
type Decider interface {
	Decide(ctx context.Context, req authz.Request) (authz.Decision, error)
}

// EventSink takes events without blocking: *Emitter.
type EventSink interface {
	Emit(Event) bool
}

// DecisionOptions configure decision events.
type DecisionOptions struct {
	// TrustedHops is authz's: the client address of a refusal is derived
	// the way authz derives it (an allow carries the one authz used).
	TrustedHops int
	// Clock reads the time; nil is time.Now, and the latency is then read
	// from the monotonic clock alone (one clock read instead of two, which
	// matters on a VM without a fast clock source).
	Clock func() time.Time
}

// Decisions is a Decider that emits one event per decision: analytics for
// deployments where Envoy's access log is not wired to authz. It sees
// what authz sees, so its events have no response code of an allowed
// request, no upstream status or latency and no response size; the
// authorization latency is measured here.
//
// It sits on the request path: building the event copies a few strings
// the decision already holds and Emit never blocks.
type Decisions struct {
	next  Decider
	sink  EventSink
	hops  int
	now   func() time.Time
	since func(time.Time) time.Duration
}

// RecordDecisions wraps next so that each decision is emitted to sink.
// pkg/extauthz takes the result as its Decider.
func RecordDecisions(next Decider, sink EventSink, opts DecisionOptions) *Decisions {
	d := &Decisions{next: next, sink: sink, hops: opts.TrustedHops, now: opts.Clock, since: time.Since}
	if d.now == nil {
		d.now = time.Now
	} else {
		d.since = func(t time.Time) time.Duration { return opts.Clock().Sub(t) }
	}
	return d
}

// Decide decides with the wrapped Decider, emits the event and returns
// the decision unchanged.
func (d *Decisions) Decide(ctx context.Context, req authz.Request) (authz.Decision, error) {
	start := d.now()
	dec, err := d.next.Decide(ctx, req)
	ev := DecisionEvent(&req, dec, err, d.hops)
	ev.Timestamp = start
	ev.AuthzLatency = d.since(start)
	d.sink.Emit(ev)
	return dec, err
}

// DecisionEvent is the event of one decision: dec, or err when no
// decision was reached. Timestamp and AuthzLatency are the caller's to
// set. Nothing is read from the request but its method, host, user agent,
// request id and client address: never its path, query or credential.
func DecisionEvent(req *authz.Request, dec authz.Decision, err error, trustedHops int) Event {
	e := Event{
		Source:        SourceDecision,
		CorrelationID: req.RequestID,
		APIMethod:     req.Method,
		UserAgent:     req.Headers["user-agent"],
		ServerAddress: HostOnly(req.Host),
	}
	if e.CorrelationID == "" {
		e.CorrelationID = req.Headers["x-request-id"]
	}
	switch {
	case err != nil:
		e.ErrorType = ErrorAuth
		e.ErrorCode = authz.ReasonIdPUnavailable.String()
		e.UserIP = clientAddr(req, trustedHops)
	case dec.Allow != nil:
		a := dec.Allow
		SetOperation(&e, a.Operation)
		if app := a.Identity.Application; app != nil {
			SetApplication(&e, app)
			if a.Identity.KeyType != 0 {
				e.KeyType = a.Identity.KeyType.String()
			}
		}
		e.UserName = a.Identity.User
		e.UserIP = a.Identity.ClientAddr
		if !e.UserIP.IsValid() {
			e.UserIP = clientAddr(req, trustedHops)
		}
	case dec.Deny != nil:
		dn := dec.Deny
		SetOperation(&e, dn.Operation)
		if dn.Application != nil {
			SetApplication(&e, dn.Application)
		}
		code := dn.Reason.String()
		e.ErrorType = AuthzErrorType(code)
		e.ErrorCode = code
		e.ProxyResponseCode = dn.Reason.Info().Status
		e.UserIP = clientAddr(req, trustedHops)
	}
	return e
}

// AuthzErrorType is the category of an authz refusal code: OTHER for a
// request that named no API (no_route) or could not be routed
// (bad_path, malformed_request), so that scanners probing paths do not
// read as authentication failures; AUTH for every other refusal.
func AuthzErrorType(code string) ErrorType {
	switch code {
	case authz.ReasonNoRoute.String(), authz.ReasonBadPath.String(), authz.ReasonMalformedRequest.String():
		return ErrorOther
	}
	return ErrorAuth
}

// SetOperation fills e's API and operation fields from a catalog
// operation; nil leaves them.
func SetOperation(e *Event, op *catalog.CompiledOperation) {
	if op == nil {
		return
	}
	e.APIName = op.API.Name
	e.APIVersion = op.API.Version
	e.APIContext = op.API.BasePath
	e.APIMethod = op.Method
	e.APIResourceTemplate = op.Template
}

// SetApplication fills e's application fields from a catalog
// application: the id is its name, the name its display name (or its name
// when it has none).
func SetApplication(e *Event, app *catalog.CompiledApplication) {
	e.ApplicationID = app.Name
	e.ApplicationName = app.DisplayName
	if e.ApplicationName == "" {
		e.ApplicationName = app.Name
	}
	e.ApplicationOwner = app.Owner
}

func clientAddr(req *authz.Request, hops int) (a netip.Addr) {
	a, _ = apikey.ClientAddr(req.SourceAddr, req.Headers["x-forwarded-for"], hops)
	return a
}

// HostOnly strips a port from an authority ("api.example.com:8443",
// "[::1]:80"), for server.address. It allocates nothing, which
// net.SplitHostPort does for an authority without a port.
func HostOnly(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.IndexByte(host, ':'); i >= 0 && i == strings.LastIndexByte(host, ':') {
		return host[:i]
	}
	return host // no port, or a bare IPv6 address
}
