package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/credential"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/route"
)

// ErrUnavailable wraps every error of Decide: no decision could be
// reached, so the caller is neither allowed nor refused. The transports
// answer gRPC UNAVAILABLE (Envoy's failOpen then decides) or, if so
// configured, a 503. When an identity provider is the cause the error also
// wraps identity.ErrUnavailable.
var ErrUnavailable = errors.New("authorization unavailable")

// TokenVerifier checks a bearer token at one identity provider: a JWT
// verifier or an introspection client, usually behind a tokencache.Cache.
// Its error contract is pkg/identity's: errors.Is(err, identity.ErrInvalid)
// refuses the token (401); any other error means the provider could not be
// asked, and the request gets no decision.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*identity.Token, error)
}

// IdPVerifiers are one identity provider's verifiers; either may be nil
// when the provider does not verify that way.
type IdPVerifiers struct {
	JWT           TokenVerifier
	Introspection TokenVerifier
}

// Verifiers are the token verifiers by identity-provider name (the
// IdentityProvider document's metadata.name). They are built from the
// same snapshot they are installed with, so a provider added by a reload
// is never looked up before its verifier exists.
type Verifiers map[string]IdPVerifiers

// Options configure an Authorizer.
type Options struct {
	// Realm is the WWW-Authenticate realm; "portcullis" when empty.
	Realm string
	// TrustedHops is how many proxies in front of Envoy append to
	// x-forwarded-for (Envoy's xff_num_trusted_hops). 0, the default,
	// never reads x-forwarded-for: any client can write it.
	TrustedHops int
	// IdentityHeaders name the headers the upstream receives;
	// DefaultIdentityHeaders when zero.
	IdentityHeaders IdentityHeaders
	// AllowUnmanaged lets a request that matches no API through, with
	// identity headers stripped and no metadata but its id, instead of a
	// 404. For a gateway that fronts managed and unmanaged services.
	AllowUnmanaged bool
	// Now is the clock API-key expiry is checked against; nil is time.Now.
	Now func() time.Time
	// Logger receives refusals at debug level, never a credential. Nil
	// discards.
	Logger *slog.Logger
	// Registerer receives the decision metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Authorizer decides requests against the catalog in force. It is safe
// for concurrent use; Update swaps the catalog, its route table and the
// token verifiers as one value, so a request sees one consistent set from
// start to end.
type Authorizer struct {
	realm          string
	hops           int
	headers        IdentityHeaders
	allowUnmanaged bool
	now            func() time.Time
	log            *slog.Logger
	m              *metrics

	state atomic.Pointer[state]
}

// state is everything a decision reads that a reload replaces.
type state struct {
	snap      *catalog.Snapshot
	routes    *route.Table
	verifiers Verifiers
}

// New returns an Authorizer with no catalog: Decide answers ErrUnavailable
// until the first Update.
func New(opts Options) (*Authorizer, error) {
	if opts.TrustedHops < 0 {
		return nil, fmt.Errorf("new authorizer: trusted hops must not be negative, got %d", opts.TrustedHops)
	}
	if opts.IdentityHeaders == (IdentityHeaders{}) {
		opts.IdentityHeaders = DefaultIdentityHeaders()
	}
	if err := opts.IdentityHeaders.Validate(); err != nil {
		return nil, fmt.Errorf("new authorizer: identity headers: %w", err)
	}
	a := &Authorizer{
		realm:          opts.Realm,
		hops:           opts.TrustedHops,
		headers:        opts.IdentityHeaders.normalised(),
		allowUnmanaged: opts.AllowUnmanaged,
		now:            opts.Now,
		log:            opts.Logger,
	}
	if a.realm == "" {
		a.realm = DefaultRealm
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if a.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("new authorizer: %w", err)
	}
	return a, nil
}

// DefaultRealm is the WWW-Authenticate realm when Options.Realm is empty.
const DefaultRealm = "portcullis"

// Update puts a catalog snapshot, its route table and the verifiers built
// for it in force, as one value.
func (a *Authorizer) Update(snap *catalog.Snapshot, v Verifiers) error {
	if snap == nil {
		return errors.New("update authorizer: nil snapshot")
	}
	a.state.Store(&state{snap: snap, routes: route.New(snap), verifiers: v})
	return nil
}

// Ready reports whether a catalog is in force, for readiness probes.
func (a *Authorizer) Ready() bool { return a.state.Load() != nil }

// Realm is the WWW-Authenticate realm, for transports that build refusals
// of their own (a malformed check request).
func (a *Authorizer) Realm() string { return a.realm }

// Decide authorises one request. A refusal is a Decision, not an error;
// the error is for no decision at all, and always wraps ErrUnavailable.
func (a *Authorizer) Decide(ctx context.Context, req Request) (Decision, error) {
	start := time.Now()
	d, err := a.decide(ctx, &req)
	a.m.seconds.Observe(time.Since(start).Seconds())
	return d, err
}

// flow is one decision in progress.
type flow struct {
	a     *Authorizer
	st    *state
	req   *Request
	attrs attributes
	reqID string
}

func (a *Authorizer) decide(ctx context.Context, req *Request) (Decision, error) {
	st := a.state.Load()
	if st == nil {
		a.m.unavailable.Inc()
		return Decision{}, fmt.Errorf("decide: no catalog loaded yet: %w", ErrUnavailable)
	}
	f := &flow{a: a, st: st, req: req, reqID: req.RequestID}
	if f.reqID == "" {
		f.reqID = req.Headers["x-request-id"]
	}
	f.attrs.req = req
	f.attrs.hops = a.hops
	m, err := st.routes.Match(req.Host, req.Method, req.Path)
	f.attrs.query = m.Query
	switch {
	case err == nil:
	case errors.Is(err, route.ErrNoAPI) && a.allowUnmanaged:
		return f.allowUnmanaged(), nil
	case errors.Is(err, route.ErrBadPath):
		// Even where unmanaged paths are allowed: a path that could mean
		// something else upstream may be aimed at a managed API.
		return f.deny(&Deny{Reason: ReasonBadPath}), nil
	default:
		// A path under a managed API that none of its operations matches
		// is refused even where unmanaged paths are allowed: letting it
		// through would bypass the API's security.
		return f.deny(&Deny{Reason: ReasonNoRoute}), nil
	}
	op := m.Op

	cred, err := credential.Read(op, req.Headers, f.attrs.query)
	if err != nil {
		return f.deny(&Deny{Reason: credentialReason(err), Operation: op, Accepts: op.Security}), nil
	}
	if op.Security == catalog.SecurityNone {
		// Nothing is verified, but a key sent along is still removed:
		// a Portcullis key never goes upstream.
		return f.allow(op, Identity{}, nil, &cred), nil
	}

	var id Identity
	var sub *catalog.CompiledSubscription
	switch cred.Kind {
	case credential.KindAPIKey:
		d, ok := f.apiKey(op, cred.Value, &id)
		if !ok {
			return d, nil
		}
	default:
		d, ok, err := f.bearer(ctx, op, cred.Value, &id)
		if err != nil {
			a.m.unavailable.Inc()
			return Decision{}, err
		}
		if !ok {
			return d, nil
		}
	}

	sub, reason := subscriptionFor(st.snap, id.Application, op.API, id.KeyType)
	if reason != 0 {
		return f.deny(&Deny{Reason: reason, Operation: op, Accepts: op.Security, Presented: id.Credential, Application: id.Application}), nil
	}
	// API keys carry no scopes: a key stands for its application's
	// subscription, which is the whole grant. Scopes narrow what an OAuth
	// client was granted, so only tokens are held to them.
	if id.Token != nil && len(op.Scopes) > 0 && !id.Token.HasScopes(op.Scopes) {
		return f.deny(&Deny{Reason: ReasonInsufficientScope, Scopes: op.Scopes, Operation: op, Accepts: op.Security,
			Presented: id.Credential, Application: id.Application}), nil
	}
	return f.allow(op, id, sub, &cred), nil
}

// credentialReason is the refusal for a credential that could not be
// read: absent (401, no error code), another Authorization scheme (401,
// RFC 6750 treats it as absent Bearer credentials), malformed or two
// different keys (400 invalid_request).
func credentialReason(err error) Reason {
	switch {
	case errors.Is(err, credential.ErrMissing):
		return ReasonMissingCredential
	case errors.Is(err, credential.ErrUnsupportedScheme):
		return ReasonUnsupportedScheme
	}
	return ReasonInvalidRequest
}

// subscriptionFor finds app's subscription to api and checks its state
// against the credential's key type.
func subscriptionFor(snap *catalog.Snapshot, app *catalog.CompiledApplication, api *catalog.CompiledAPI, kt catalog.KeyType) (*catalog.CompiledSubscription, Reason) {
	sub, ok := snap.Subscription(app.Name, api.Name)
	if !ok {
		return nil, ReasonNotSubscribed
	}
	switch sub.State {
	case catalog.StateActive:
		return sub, 0
	case catalog.StateProdOnlyBlocked:
		if kt == catalog.KeyTypeSandbox {
			return sub, 0
		}
		return nil, ReasonProdKeyBlocked
	case catalog.StateOnHold:
		return nil, ReasonSubscriptionOnHold
	}
	return nil, ReasonSubscriptionBlocked
}

func (f *flow) deny(d *Deny) Decision {
	d.Realm = f.a.realm
	d.RequestID = f.reqID
	f.a.m.denied(d.Reason)
	if f.a.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("reason", d.Reason.String()), slog.String("request_id", f.reqID)}
		if d.Operation != nil {
			attrs = append(attrs, slog.String("api", d.Operation.API.ID), slog.String("operation", d.Operation.Name))
		}
		if d.Application != nil {
			attrs = append(attrs, slog.String("application", d.Application.Name))
		}
		f.a.log.LogAttrs(context.Background(), slog.LevelDebug, "request denied", attrs...)
	}
	return Decision{Deny: d}
}
