package introspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

const (
	// DefaultTimeout bounds one introspection call. It must be shorter
	// than the ext_authz timeout Envoy is given (Envoy's default is 200 ms,
	// Istio's envoyExtAuthzGrpc default is 10 minutes; set one explicitly)
	// so that authz, not Envoy, decides what an unanswered call means: a
	// stale cache entry, or UNAVAILABLE for failOpen. The caller's context
	// deadline (Envoy's grpc-timeout) bounds the call too, whichever ends
	// first. 500 ms is several times a healthy provider's latency; lower it
	// when Envoy's timeout is under about 600 ms.
	DefaultTimeout = 500 * time.Millisecond
	// DefaultSecretRefresh is how often the client secret is re-read.
	DefaultSecretRefresh = time.Minute
	// DefaultMaxResponseBytes bounds an introspection response: a real one
	// is well under a kilobyte.
	DefaultMaxResponseBytes = 64 << 10
	// MaxTokenBytes is the longest token sent to the provider; a longer one
	// is refused without a call, so a flood of huge headers cannot turn
	// into a flood of large requests. Opaque tokens are tens of bytes.
	MaxTokenBytes = 16 << 10
)

// drainBytes is how much of an unread body is discarded so that the
// connection can be reused.
const drainBytes = 4 << 10

// Options configure a Client. The zero value is ready to use.
type Options struct {
	// HTTPClient sends the requests. Nil means a client that does not
	// follow redirects (a redirected POST would carry our credentials
	// elsewhere) and keeps connections to the provider open.
	HTTPClient *http.Client
	// Timeout bounds each call; zero means DefaultTimeout.
	Timeout time.Duration
	// Clock is the time exp and nbf are judged at; nil means time.Now.
	Clock func() time.Time
	// ClockSkew is allowed between the provider's clock and ours when
	// judging exp and nbf; authz may pass the provider's jwt.clockSkew.
	ClockSkew time.Duration
	// Audiences, when not empty, must include one of the token's aud
	// values. Empty: aud is not checked (the catalog's introspection
	// section names no audiences).
	Audiences []string
	// Registerer receives the client's metrics, labelled provider=<the
	// IdentityProvider's name>. Nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives configuration problems (a refused client credential,
	// an unreadable secret), once per occurrence rather than per call.
	// Nil discards them.
	Logger *slog.Logger
	// SecretLookup reads the client secret the catalog references; nil
	// means ReadSecret.
	SecretLookup func(catalog.SecretRef) (string, error)
	// SecretRefresh is how often the secret is re-read; zero means
	// DefaultSecretRefresh. It is also re-read (at most once a second) when
	// the provider refuses our credentials.
	SecretRefresh time.Duration
	// MaxResponseBytes bounds a response body; zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// Client introspects tokens at one identity provider. It is safe for
// concurrent use and holds no goroutines.
type Client struct {
	provider string
	endpoint string
	clientID string
	post     bool // client_secret_post; else client_secret_basic
	http     *http.Client
	timeout  time.Duration
	now      func() time.Time
	check    check
	maxBody  int64
	secret   *secret
	log      *slog.Logger
	metrics  metrics
	// authRefused is set while the provider refuses our client
	// credentials, so that the problem is logged once, not per call.
	authRefused atomic.Bool
}

// New returns a client for idp's introspection endpoint. It fails when idp
// has no introspection section or it is unusable, or the metrics cannot be
// registered; an unreadable client secret is not an error here (it is
// logged, and calls are unavailable until it can be read), so that a
// catalog can load before its Secret is mounted.
func New(idp *catalog.CompiledIdentityProvider, opts Options) (*Client, error) {
	if idp == nil {
		return nil, errors.New("introspect: nil identity provider")
	}
	in := idp.Introspection
	if in == nil {
		return nil, fmt.Errorf("introspect %s: the identity provider has no introspection section", idp.Name)
	}
	u, err := url.Parse(in.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("introspect %s: endpoint %q is not an http or https URL", idp.Name, in.Endpoint)
	}
	if in.ClientID == "" {
		return nil, fmt.Errorf("introspect %s: no client id", idp.Name)
	}
	c := &Client{
		provider: idp.Name,
		endpoint: in.Endpoint,
		clientID: in.ClientID,
		http:     opts.HTTPClient,
		timeout:  opts.Timeout,
		now:      opts.Clock,
		check:    check{issuer: idp.Issuer, audiences: opts.Audiences, skew: opts.ClockSkew},
		maxBody:  opts.MaxResponseBytes,
		log:      opts.Logger,
	}
	switch in.AuthMethod {
	case "", "client_secret_basic":
	case "client_secret_post":
		c.post = true
	default:
		return nil, fmt.Errorf("introspect %s: unknown client authentication method %q (want client_secret_basic or client_secret_post)", idp.Name, in.AuthMethod)
	}
	if opts.Timeout < 0 || opts.ClockSkew < 0 || opts.SecretRefresh < 0 || opts.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("introspect %s: negative Timeout, ClockSkew, SecretRefresh or MaxResponseBytes", idp.Name)
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.secret = &secret{
		ref:     in.ClientSecret,
		lookup:  opts.SecretLookup,
		refresh: opts.SecretRefresh,
		log:     c.log,
		name:    idp.Name,
	}
	if c.secret.lookup == nil {
		c.secret.lookup = ReadSecret
	}
	if c.secret.refresh == 0 {
		c.secret.refresh = DefaultSecretRefresh
	}
	if c.metrics, err = newMetrics(idp.Name, opts.Registerer); err != nil {
		return nil, fmt.Errorf("introspect %s: %w", idp.Name, err)
	}
	// Read the secret now so that a missing one is logged at load time,
	// not at the first request.
	_, _ = c.secret.get(context.Background(), c.now())
	return c, nil
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Introspect asks the provider about token (RFC 7662) and judges the
// answer. The token must be active; exp and nbf are checked against the
// Clock, iss (when present) must be the provider's issuer, token_type (when
// present) must name an access token, and a sender-constrained token (cnf)
// is refused. A response without token_type is accepted, as RFC 7662
// allows: refusing refresh tokens then rests with the provider.
//
// Errors wrap identity.ErrInvalid when the token is refused, and
// identity.ErrUnavailable when no decision was reached, including when the
// provider refuses Portcullis's own client credentials (a misconfiguration
// to fix on our side, not the caller's fault).
func (c *Client) Introspect(ctx context.Context, token string) (*identity.Token, error) {
	switch {
	case token == "":
		c.metrics.results[resultRefused].Inc()
		return nil, fmt.Errorf("introspect %s: %w: empty token", c.provider, identity.ErrInvalid)
	case len(token) > MaxTokenBytes:
		c.metrics.results[resultRefused].Inc()
		return nil, fmt.Errorf("introspect %s: %w: token longer than %d bytes", c.provider, identity.ErrInvalid, MaxTokenBytes)
	}
	sec, err := c.secret.get(ctx, c.now())
	if err != nil {
		c.metrics.results[resultSecret].Inc()
		return nil, fmt.Errorf("introspect %s: %w: client secret: %w", c.provider, identity.ErrUnavailable, err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	tok, result, err := c.call(ctx, token, sec)
	c.metrics.duration.Observe(time.Since(start).Seconds())
	c.metrics.results[result].Inc()
	if err != nil {
		return nil, fmt.Errorf("introspect %s: %w", c.provider, err)
	}
	return tok, nil
}

// call sends one request and judges its answer, returning the result label.
func (c *Client) call(ctx context.Context, token, sec string) (*identity.Token, string, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if c.post {
		form.Set("client_id", c.clientID)
		form.Set("client_secret", sec)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, resultTransport, unavailable(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if !c.post {
		req.Header.Set("Authorization", basicAuth(c.clientID, sec))
	}

	resp, err := c.http.Do(req)
	if err != nil {
		if isTimeout(ctx, err) {
			return nil, resultTimeout, unavailable(fmt.Errorf("no answer within %v: %w", c.timeout, err))
		}
		return nil, resultTransport, unavailable(err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		_ = resp.Body.Close()
	}()

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	switch {
	case err != nil && isTimeout(ctx, err):
		return nil, resultTimeout, unavailable(fmt.Errorf("read response: %w", err))
	case err != nil:
		return nil, resultTransport, unavailable(fmt.Errorf("read response: %w", err))
	case int64(len(body)) > c.maxBody:
		return nil, resultMalformed, unavailable(fmt.Errorf("%w: larger than %d bytes (status %d)", errMalformed, c.maxBody, resp.StatusCode))
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if clientAuthRefused(resp.StatusCode, body) {
			c.secret.stale()
			if c.authRefused.CompareAndSwap(false, true) {
				c.log.LogAttrs(ctx, slog.LevelError, "introspect: the provider refused Portcullis's client credentials; its opaque tokens cannot be checked until the client id or secret is fixed",
					slog.String("provider", c.provider), slog.String("endpoint", c.endpoint),
					slog.String("client_id", c.clientID), slog.String("secret", c.secret.ref.String()),
					slog.Int("status", resp.StatusCode))
			}
			return nil, resultClientAuth, unavailable(fmt.Errorf("status %d: the provider refused our client credentials", resp.StatusCode))
		}
		return nil, resultStatus, unavailable(fmt.Errorf("status %d", resp.StatusCode))
	}
	if c.authRefused.CompareAndSwap(true, false) {
		c.log.LogAttrs(ctx, slog.LevelInfo, "introspect: the provider accepts Portcullis's client credentials again",
			slog.String("provider", c.provider))
	}

	chk := c.check
	chk.now = c.now()
	tok, err := parseResponse(body, chk)
	switch {
	case err == nil:
		return tok, resultActive, nil
	case errors.Is(err, errMalformed):
		return nil, resultMalformed, err
	case errors.Is(err, errInactive):
		return nil, resultInactive, err
	default:
		return nil, resultRefused, err
	}
}

// basicAuth is client_secret_basic as RFC 6749 §2.3.1 has it: the client
// id and secret are form-urlencoded before being joined and base64-encoded,
// which http.Request.SetBasicAuth does not do.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// clientAuthRefused tells a refusal of our client credentials (RFC 7662
// §2.3: 401; RFC 6749 §5.2 allows 400 invalid_client) from other errors.
func clientAuthRefused(status int, body []byte) bool {
	switch status {
	case http.StatusUnauthorized:
		return true
	case http.StatusBadRequest:
		var e struct {
			Error string `json:"error"`
		}
		return json.Unmarshal(body, &e) == nil && e.Error == "invalid_client"
	}
	return false
}

func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
