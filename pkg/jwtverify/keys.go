package jwtverify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// maxDocumentBytes bounds a discovery document or JWKS read from a
// provider; real ones are a few kilobytes.
const maxDocumentBytes = 1 << 20

// keySource is the oidc.KeySet behind a Verifier. go-oidc's RemoteKeySet
// fetches the JWKS again after every failed verification, so a flood of
// forged tokens would become a flood of requests to the identity provider.
// keySource refreshes only when a token names a kid it has not cached, at
// most once per cooldown (retry interval while it has never had keys),
// and concurrent misses share one fetch. A token whose kid is cached never
// causes a fetch.
type keySource struct {
	idp     string
	issuer  string
	jwksURI string // from the catalog; "" means from discovery
	client  *http.Client
	base    context.Context // bounds every fetch; done means shut down
	opts    *Options
	log     *slog.Logger
	metrics *metrics

	keys atomic.Pointer[keySnapshot]

	mu          sync.Mutex
	call        *fetchCall // the fetch in flight, nil when none
	lastAttempt time.Time  // when the last fetch started
	lastErr     error      // how the last fetch failed; nil if it succeeded
	resolved    string     // the JWKS URI found by discovery
}

// keySnapshot is an immutable key set as fetched at one time.
type keySnapshot struct {
	byKID   map[string][]jose.JSONWebKey
	all     []jose.JSONWebKey
	fetched time.Time
}

type fetchCall struct {
	done chan struct{}
	keys *keySnapshot
	err  error
}

var _ oidc.KeySet = (*keySource)(nil)

// parsedKey carries the verification in progress from Verifier.verify to
// VerifySignature through go-oidc, which formats the key set's errors with
// %v: the typed error is put back here instead, and the JWS parsed once is
// reused.
type parsedKey struct{}

type inFlight struct {
	jws *jose.JSONWebSignature
	err error
}

// VerifySignature implements oidc.KeySet: it finds the token's key, by kid
// when it has one, and returns the verified payload.
func (ks *keySource) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	f, _ := ctx.Value(parsedKey{}).(*inFlight)
	if f == nil {
		// Only reached if go-oidc is called without Verifier.verify.
		jws, err := jose.ParseSigned(raw, allowedByDefault)
		if err != nil {
			return nil, invalid(ReasonMalformed, "not a compact JWS")
		}
		f = &inFlight{jws: jws}
	}
	payload, err := ks.verify(ctx, f.jws)
	f.err = err
	return payload, err
}

func (ks *keySource) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	sig := jws.Signatures[0]
	kid, alg := sig.Header.KeyID, sig.Header.Algorithm
	snap := ks.keys.Load()
	if snap != nil {
		if ks.opts.MaxKeyAge > 0 && ks.opts.Now().Sub(snap.fetched) >= ks.opts.MaxKeyAge {
			// Pick up withdrawn and added keys in the background; the
			// cached ones serve meanwhile.
			ks.refresh(ctx, false)
		}
		if payload, found, err := snap.verify(jws, kid, alg); found {
			return payload, err
		}
	}
	snap, err := ks.refresh(ctx, true)
	if err != nil {
		return nil, err
	}
	payload, found, err := snap.verify(jws, kid, alg)
	if !found {
		if kid == "" {
			return nil, invalid(ReasonSignature, "no published key verifies the token, which names no kid")
		}
		return nil, invalid(ReasonUnknownKey, "no published key has the token's kid")
	}
	return payload, err
}

// verify reports found false when no cached key could have signed the
// token (its kid is unknown, or it has no kid and no key verifies it), so
// that the caller may refresh the keys.
func (s *keySnapshot) verify(jws *jose.JSONWebSignature, kid, alg string) (payload []byte, found bool, err error) {
	candidates := s.all
	if kid != "" {
		candidates = s.byKID[kid]
		if len(candidates) == 0 {
			return nil, false, nil
		}
	}
	for i := range candidates {
		k := &candidates[i]
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, true, nil
		}
	}
	if kid == "" {
		return nil, false, nil
	}
	return nil, true, invalid(ReasonSignature, "the signature does not verify with the key named by its kid")
}

// refresh returns the key set after a fetch, joining the one in flight or
// starting one unless the last started too recently; then it returns the
// cached keys, or the last failure wrapped as unavailable when it has
// none. wait false starts a fetch in the background and returns at once.
//
// With keys cached, a failed fetch keeps them: an identity provider that
// is down does not stop tokens signed with known keys. A token whose kid
// stays unknown is refused as invalid, not unavailable, even when the
// provider could not be asked: answering UNAVAILABLE would let a flood of
// forged kids through a fail-open gateway whenever the provider is down.
func (ks *keySource) refresh(ctx context.Context, wait bool) (*keySnapshot, error) {
	now := ks.opts.Now()
	ks.mu.Lock()
	call := ks.call
	if call == nil {
		snap := ks.keys.Load()
		gap := ks.opts.RefreshCooldown
		if snap == nil {
			gap = ks.opts.RetryInterval
		}
		if !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < gap {
			lastErr := ks.lastErr
			ks.mu.Unlock()
			if snap == nil {
				if lastErr == nil {
					lastErr = errors.New("no keys fetched yet")
				}
				return nil, unavailable(ks.idp, lastErr)
			}
			return snap, nil
		}
		call = &fetchCall{done: make(chan struct{})}
		ks.call = call
		ks.lastAttempt = now
		go ks.run(call)
	}
	ks.mu.Unlock()
	if !wait {
		return nil, nil
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		if snap := ks.keys.Load(); snap != nil {
			return snap, nil
		}
		return nil, unavailable(ks.idp, fmt.Errorf("wait for keys: %w", ctx.Err()))
	}
	if call.err != nil {
		if snap := ks.keys.Load(); snap != nil {
			return snap, nil
		}
		return nil, unavailable(ks.idp, call.err)
	}
	return call.keys, nil
}

// run fetches the keys on behalf of every caller waiting on call. It is
// bounded by FetchTimeout and by the context given to New, not by any
// caller's context, so a caller that gives up does not fail the others.
func (ks *keySource) run(call *fetchCall) {
	ctx, cancel := context.WithTimeout(ks.base, ks.opts.FetchTimeout)
	defer cancel()
	snap, err := ks.fetch(ctx)
	ks.mu.Lock()
	if err == nil {
		ks.keys.Store(snap)
	}
	ks.lastErr = err
	ks.call = nil
	ks.mu.Unlock()
	if err != nil {
		ks.log.Warn("jwtverify: fetch identity provider keys", "idp", ks.idp, "error", err)
	} else {
		ks.log.Debug("jwtverify: fetched identity provider keys", "idp", ks.idp, "keys", len(snap.all))
	}
	call.keys, call.err = snap, err
	close(call.done)
}

func (ks *keySource) fetch(ctx context.Context) (*keySnapshot, error) {
	uri := ks.jwksURI
	if uri == "" {
		ks.mu.Lock()
		uri = ks.resolved
		ks.mu.Unlock()
		if uri == "" {
			var err error
			if uri, err = ks.discover(ctx); err != nil {
				return nil, err
			}
			ks.mu.Lock()
			ks.resolved = uri
			ks.mu.Unlock()
		}
	}
	start := time.Now()
	snap, err := ks.fetchJWKS(ctx, uri)
	ks.metrics.fetched(fetchJWKS, time.Since(start).Seconds(), err)
	if err != nil && ks.jwksURI == "" {
		// The provider may have moved its keys: discover again next time.
		ks.mu.Lock()
		ks.resolved = ""
		ks.mu.Unlock()
	}
	return snap, err
}

// discover reads the JWKS URI from the issuer's OpenID discovery document,
// which must name the same issuer (OpenID Connect Discovery 1.0 §4.3).
func (ks *keySource) discover(ctx context.Context) (string, error) {
	start := time.Now()
	uri, err := ks.discoverOnce(ctx)
	ks.metrics.fetched(fetchDiscovery, time.Since(start).Seconds(), err)
	return uri, err
}

func (ks *keySource) discoverOnce(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(ks.issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := ks.getJSON(ctx, u, &doc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != ks.issuer {
		return "", fmt.Errorf("discovery at %s names issuer %q, want %q", u, doc.Issuer, ks.issuer)
	}
	p, err := url.Parse(doc.JWKSURI)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return "", fmt.Errorf("discovery at %s: jwks_uri %q is not an http(s) URL", u, doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

func (ks *keySource) fetchJWKS(ctx context.Context, uri string) (*keySnapshot, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := ks.getJSON(ctx, uri, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	snap := &keySnapshot{byKID: make(map[string][]jose.JSONWebKey, len(doc.Keys)), fetched: ks.opts.Now()}
	skipped := 0
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			// One key of a type or curve go-jose does not know must not
			// hide the others.
			skipped++
			continue
		}
		if !usableForSignatures(&k) {
			skipped++
			continue
		}
		pub := k.Public() // a published private key must not be kept
		snap.all = append(snap.all, pub)
		snap.byKID[pub.KeyID] = append(snap.byKID[pub.KeyID], pub)
	}
	if skipped > 0 {
		ks.log.Debug("jwtverify: skipped keys unusable for signatures", "idp", ks.idp, "skipped", skipped)
	}
	if len(snap.all) == 0 {
		return nil, fmt.Errorf("jwks at %s: no usable signature keys among %d", uri, len(doc.Keys))
	}
	return snap, nil
}

// usableForSignatures keeps asymmetric signature keys only: a symmetric
// key in a JWKS would be a shared secret published to the world.
func usableForSignatures(k *jose.JSONWebKey) bool {
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	if k.Algorithm != "" && !allowedAlgorithm(k.Algorithm) {
		return false
	}
	pub := k.Public()
	return pub.Key != nil && pub.Valid()
}

func (ks *keySource) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("GET %s: content type %q is not JSON", u, ct)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: body larger than %d bytes", u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return nil
}
