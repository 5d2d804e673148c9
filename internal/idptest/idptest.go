package idptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/childproc"
)

// readyTimeout bounds how long node may take to serve the discovery
// document after it is started; a loaded CI machine running tests with
// -race needs seconds.
const readyTimeout = 20 * time.Second

// The clients test/idp/server.js registers. Each may ask for the scopes
// ScopeRead and ScopeWrite; its secret is Secret(id) and the audience of
// its tokens is Audience(id).
const (
	// ClientRS256 gets JWT access tokens (typ at+jwt) signed RS256.
	ClientRS256 = "jwt-rs256"
	// ClientES256 gets JWT access tokens (typ at+jwt) signed ES256.
	ClientES256 = "jwt-es256"
	// ClientOpaque gets opaque access tokens, verifiable only by
	// introspection.
	ClientOpaque = "opaque"
	// ClientPortcullis is the gateway's own client: it introspects and
	// revokes any client's token, with client_secret_basic or
	// client_secret_post.
	ClientPortcullis = "portcullis"
)

// Scopes the provider knows.
const (
	ScopeRead  = "pets:read"
	ScopeWrite = "pets:write"
)

// Secret is the client secret of a registered client. The secrets are
// fixed test values, not secrets.
func Secret(clientID string) string { return clientID + "-secret" }

// Audience is the resource indicator, and so the aud claim, of the tokens
// issued to clientID; "" for ClientPortcullis, which has no resource.
func Audience(clientID string) string {
	switch clientID {
	case ClientRS256:
		return "https://api.portcullis.test/rs256"
	case ClientES256:
		return "https://api.portcullis.test/es256"
	case ClientOpaque:
		return "https://api.portcullis.test/opaque"
	}
	return ""
}

// Counts are the requests the provider served to anyone but the harness's
// readiness probe, since Start (they survive Stop and Restart).
type Counts struct {
	JWKS          int `json:"jwks"`
	Token         int `json:"token"`
	Introspection int `json:"introspection"`
	Revocation    int `json:"revocation"`
	Discovery     int `json:"discovery"`
}

func (c Counts) add(d Counts) Counts {
	return Counts{
		JWKS:          c.JWKS + d.JWKS,
		Token:         c.Token + d.Token,
		Introspection: c.Introspection + d.Introspection,
		Revocation:    c.Revocation + d.Revocation,
		Discovery:     c.Discovery + d.Discovery,
	}
}

// Option changes how Start runs the provider.
type Option func(*config)

type config struct {
	tokenTTL time.Duration
}

// WithTokenTTL sets the lifetime of every access token (default ten
// minutes), for tests of caches bounded by a token's exp. It is rounded
// down to whole seconds, at least one.
func WithTokenTTL(d time.Duration) Option {
	return func(c *config) { c.tokenTTL = d }
}

// Provider is one oidc-provider process owned by a test. Its port, issuer
// and keys stay the same across Stop and Restart, so verifiers built once
// keep working; issued opaque tokens do not survive a restart (storage is
// in memory).
type Provider struct {
	tb       testing.TB
	node     string
	script   string
	dir      string
	keysFile string
	port     int
	tokenTTL time.Duration
	http     *http.Client

	mu   sync.Mutex
	proc *childproc.Process // the current run; nil before the first
	base Counts             // counts served by processes that have exited
}

// Start runs test/idp/server.js under node on a free loopback port and
// returns once it serves its discovery document. It fails the test if node
// or test/idp/node_modules is missing, or if the provider does not come up.
func Start(tb testing.TB, opts ...Option) *Provider {
	tb.Helper()
	cfg := config{tokenTTL: 10 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("idptest: node not found in PATH (%v): these tests need Node.js 20 or later and the test identity provider; install Node, then run `npm ci` in test/idp", err)
	}
	idpDir := idpDir(tb)
	if _, err := os.Stat(filepath.Join(idpDir, "node_modules", "oidc-provider", "package.json")); err != nil {
		tb.Fatalf("idptest: oidc-provider is not installed in %s (%v): run `npm ci` in test/idp", idpDir, err)
	}
	dir := tb.TempDir()
	p := &Provider{
		tb:       tb,
		node:     node,
		script:   filepath.Join(idpDir, "server.js"),
		dir:      dir,
		keysFile: filepath.Join(dir, "jwks.json"),
		tokenTTL: max(cfg.tokenTTL, time.Second),
		http:     &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	var lastErr error
	// A free port found by listening on :0 can be taken by another process
	// before node binds it; try a few ports before giving up.
	for range 5 {
		p.port, err = freePort()
		if err != nil {
			tb.Fatalf("idptest: find a free port: %v", err)
		}
		if lastErr = p.launch(); lastErr == nil {
			tb.Cleanup(p.cleanup)
			return p
		}
	}
	tb.Fatalf("idptest: start the identity provider: %v", lastErr)
	return nil
}

// idpDir finds test/idp from the module root, which `go env GOMOD` names
// wherever the test binary runs.
func idpDir(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("idptest: find the module root with `go env GOMOD`: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		tb.Fatalf("idptest: `go env GOMOD` names no go.mod; run the tests inside the portcullis module")
	}
	return filepath.Join(filepath.Dir(mod), "test", "idp")
}

// Port is the provider's TCP port, the same after Restart.
func (p *Provider) Port() int { return p.port }

// Issuer is the provider's issuer identifier, the iss of its tokens:
// http://127.0.0.1:PORT.
func (p *Provider) Issuer() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

// DiscoveryURL is the provider's OpenID discovery document.
func (p *Provider) DiscoveryURL() string { return p.Issuer() + "/.well-known/openid-configuration" }

// JWKSURL is where the provider publishes its public keys.
func (p *Provider) JWKSURL() string { return p.Issuer() + "/jwks" }

// TokenURL is the token endpoint (client_credentials).
func (p *Provider) TokenURL() string { return p.Issuer() + "/token" }

// IntrospectionURL is the RFC 7662 endpoint.
func (p *Provider) IntrospectionURL() string { return p.Issuer() + "/token/introspection" }

// RevocationURL is the RFC 7009 endpoint.
func (p *Provider) RevocationURL() string { return p.Issuer() + "/token/revocation" }

// TokenTTL is the lifetime of the access tokens the provider issues.
func (p *Provider) TokenTTL() time.Duration { return p.tokenTTL.Truncate(time.Second) }

// Token asks for an access token with the client_credentials grant, as
// clientID (one of the Client constants) authenticated with
// client_secret_basic. scope is space-separated; "" asks for none.
func (p *Provider) Token(ctx context.Context, clientID, scope string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := p.post(ctx, p.TokenURL(), clientID, form, &body); err != nil {
		return "", fmt.Errorf("idptest: token for %s: %w", clientID, err)
	}
	if body.AccessToken == "" || !strings.EqualFold(body.TokenType, "Bearer") {
		return "", fmt.Errorf("idptest: token for %s: no bearer access_token in the response", clientID)
	}
	return body.AccessToken, nil
}

// Introspect asks the provider about token as ClientPortcullis
// (client_secret_basic) and returns the RFC 7662 response members.
func (p *Provider) Introspect(ctx context.Context, token string) (map[string]any, error) {
	var body map[string]any
	if err := p.post(ctx, p.IntrospectionURL(), ClientPortcullis, url.Values{"token": {token}}, &body); err != nil {
		return nil, fmt.Errorf("idptest: introspect: %w", err)
	}
	return body, nil
}

// Revoke revokes an opaque token as ClientPortcullis (RFC 7009). The
// provider refuses to revoke JWTs: they are self-contained.
func (p *Provider) Revoke(ctx context.Context, token string) error {
	if err := p.post(ctx, p.RevocationURL(), ClientPortcullis, url.Values{"token": {token}}, nil); err != nil {
		return fmt.Errorf("idptest: revoke: %w", err)
	}
	return nil
}

func (p *Provider) post(ctx context.Context, endpoint, clientID string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(Secret(clientID)))
	return p.do(req, out)
}

func (p *Provider) do(req *http.Request, out any) error {
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s response: %w", req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s response: %w", req.URL.Path, err)
	}
	return nil
}

func (p *Provider) admin(method, path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.Issuer()+path, nil)
	if err != nil {
		return err
	}
	return p.do(req, out)
}

// Counts returns how many requests the provider has served since Start.
// The provider must be running.
func (p *Provider) Counts(tb testing.TB) Counts {
	tb.Helper()
	var live Counts
	if err := p.admin(http.MethodGet, "/-/admin/stats", &live); err != nil {
		tb.Fatalf("idptest: read the provider's counters: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base.add(live)
}

// RotateKeys makes the provider sign with a new RSA and a new EC key,
// published under new kids, and keeps the old keys in its JWKS, as a real
// rotation does: tokens signed before the rotation keep verifying. It
// returns the new kids. Opaque tokens survive the rotation.
func (p *Provider) RotateKeys(tb testing.TB) []string {
	tb.Helper()
	return p.rotate(tb, true)
}

// RotateKeysDroppingOld is RotateKeys that also withdraws the old keys, as
// after a key compromise: tokens signed before it stop verifying once a
// verifier refreshes its keys.
func (p *Provider) RotateKeysDroppingOld(tb testing.TB) []string {
	tb.Helper()
	return p.rotate(tb, false)
}

func (p *Provider) rotate(tb testing.TB, keep bool) []string {
	tb.Helper()
	before := p.keyIDs(tb)
	q := "0"
	if keep {
		q = "1"
	}
	var body struct {
		Keys []string `json:"keys"`
	}
	if err := p.admin(http.MethodPost, "/-/admin/rotate?keep="+q, &body); err != nil {
		tb.Fatalf("idptest: rotate keys: %v", err)
	}
	var fresh []string
	for _, kid := range body.Keys {
		if !contains(before, kid) {
			fresh = append(fresh, kid)
		}
	}
	if len(fresh) == 0 {
		tb.Fatalf("idptest: rotate keys: no new kid among %v", body.Keys)
	}
	return fresh
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (p *Provider) keyIDs(tb testing.TB) []string {
	tb.Helper()
	set := p.PrivateKeys(tb)
	ids := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// PrivateKeys returns the provider's current key set, private keys
// included, first the keys it signs with. Tests use it to forge tokens the
// provider would never issue (alg none, HS256 keyed with the RSA public
// key, odd claims), signed with go-jose. Reading it is not counted as a
// JWKS fetch.
func (p *Provider) PrivateKeys(tb testing.TB) jose.JSONWebKeySet {
	tb.Helper()
	var set jose.JSONWebKeySet
	if err := p.admin(http.MethodGet, "/-/admin/keys", &set); err != nil {
		tb.Fatalf("idptest: read the provider's keys: %v", err)
	}
	return set
}

// Key returns the provider's current signing key for alg ("RS256" or
// "ES256"), private part included.
func (p *Provider) Key(tb testing.TB, alg string) jose.JSONWebKey {
	tb.Helper()
	for _, k := range p.PrivateKeys(tb).Keys {
		if k.Algorithm == alg {
			return k
		}
	}
	tb.Fatalf("idptest: the provider has no %s key", alg)
	return jose.JSONWebKey{}
}

// Stop ends the provider with SIGTERM, as an orderly shutdown would, and
// returns once it has exited (SIGKILL after a deadline), so the port
// refuses connections: the identity provider is down.
func (p *Provider) Stop() {
	p.tb.Helper()
	if !p.running() {
		return
	}
	p.keepCounts()
	if !p.signalAndWait(syscall.SIGTERM, readyTimeout) {
		p.signalAndWait(syscall.SIGKILL, readyTimeout)
	}
}

// Pause freezes the provider with SIGSTOP: connections are accepted by the
// kernel but nothing answers, as with a hung provider. Resume undoes it;
// cleanup resumes a paused provider before stopping it.
func (p *Provider) Pause() {
	p.tb.Helper()
	p.signal(syscall.SIGSTOP)
}

// Resume continues a paused provider.
func (p *Provider) Resume() {
	p.tb.Helper()
	p.signal(syscall.SIGCONT)
}

// Restart starts the provider again on the same port with the same keys,
// stopping it first if it is running. Opaque tokens issued before are
// forgotten; counts carry on.
func (p *Provider) Restart() {
	p.tb.Helper()
	p.Stop()
	if err := p.launch(); err != nil {
		p.tb.Fatalf("idptest: restart the identity provider on port %d: %v", p.port, err)
	}
}

// keepCounts folds the running process's counters into base before it
// exits.
func (p *Provider) keepCounts() {
	var live Counts
	if err := p.admin(http.MethodGet, "/-/admin/stats", &live); err != nil {
		p.tb.Logf("idptest: counters of the stopped provider are lost: %v", err)
		return
	}
	p.mu.Lock()
	p.base = p.base.add(live)
	p.mu.Unlock()
}

func (p *Provider) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc.Running()
}

func (p *Provider) signal(sig syscall.Signal) {
	p.tb.Helper()
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil {
		p.tb.Fatalf("idptest: signal %v: provider on port %d was never started", sig, p.port)
	}
	if err := proc.Signal(sig); err != nil {
		p.tb.Fatalf("idptest: signal %v to the provider on port %d: %v", sig, p.port, err)
	}
}

// signalAndWait reports whether the process exited within d.
func (p *Provider) signalAndWait(sig syscall.Signal, d time.Duration) bool {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	return proc.SignalAndWait(sig, d)
}

func (p *Provider) cleanup() {
	if p.running() {
		p.signalAndWait(syscall.SIGKILL, readyTimeout)
	}
}

func (p *Provider) logPath() string { return filepath.Join(p.dir, "idp.log") }

// launch starts node and waits until the discovery document is served, the
// process exits, or readyTimeout passes.
func (p *Provider) launch() error {
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the provider's log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(p.node, p.script,
		"--port", strconv.Itoa(p.port),
		"--issuer", p.Issuer(),
		"--jwks", p.keysFile,
		"--ttl", strconv.Itoa(int(p.TokenTTL()/time.Second)),
	)
	cmd.Dir = filepath.Dir(p.script)
	instance := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(os.Getpid())
	cmd.Env = append(os.Environ(), "NODE_ENV=test", "IDPTEST_INSTANCE="+instance)
	cmd.Stdout, cmd.Stderr = logf, logf
	proc, err := childproc.Start(cmd)
	if err != nil {
		return err
	}
	exited := proc.Exited()
	p.mu.Lock()
	p.proc = proc
	p.mu.Unlock()

	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = p.probe(instance); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("node exited before serving discovery on port %d; log:\n%s", p.port, p.logTail())
		case <-deadline.C:
			proc.SignalAndWait(syscall.SIGKILL, readyTimeout)
			return fmt.Errorf("the provider on port %d did not serve discovery within %s (last: %v); log:\n%s", p.port, readyTimeout, last, p.logTail())
		case <-tick.C:
		}
	}
}

// probe fetches the discovery document and checks that this process
// served it (not another that holds the port) and that it names this
// provider's issuer.
func (p *Provider) probe(instance string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.DiscoveryURL(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Idptest-Probe", "1")
	var doc struct {
		Issuer string `json:"issuer"`
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("X-Idptest-Instance"); got != instance {
		return fmt.Errorf("port %d is served by another process (instance %q)", p.port, got)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("decode discovery: %w", err)
	}
	if doc.Issuer != p.Issuer() {
		return fmt.Errorf("discovery names issuer %q, want %q", doc.Issuer, p.Issuer())
	}
	return nil
}

func (p *Provider) logTail() string {
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
