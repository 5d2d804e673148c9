package introspect_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/introspect"
)

// The token and secret are distinctive so that a leak into an error or a
// log line is found by a substring search.
const (
	testToken  = "OPAQUE-TOKEN-7f3a9c-never-log-me"
	testSecret = "s3cr:t/+ %é-never-log-me"
	clientID   = "portcullis gw" // a space, to exercise form-encoding in client_secret_basic
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// seen is what the fake provider received.
type seen struct {
	method, path, contentType, accept, authorization string
	form                                             url.Values
}

// provider is an httptest introspection endpoint whose answer the test sets.
type provider struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []seen
	handler func(w http.ResponseWriter, r *http.Request, s seen)
}

func newProvider(t *testing.T) *provider {
	t.Helper()
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		s := seen{
			method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
			accept: r.Header.Get("Accept"), authorization: r.Header.Get("Authorization"), form: form,
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, s)
		h := p.handler
		p.mu.Unlock()
		h(w, r, s)
	}))
	p.answer(http.StatusOK, activeBody(epoch.Add(time.Hour)))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) answer(status int, body string) {
	p.handle(func(w http.ResponseWriter, _ *http.Request, _ seen) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func (p *provider) handle(h func(w http.ResponseWriter, r *http.Request, s seen)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handler = h
}

func (p *provider) requests() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seen(nil), p.reqs...)
}

func (p *provider) idp(method string) *catalog.CompiledIdentityProvider {
	return &catalog.CompiledIdentityProvider{
		Name:   "test-idp",
		Issuer: p.srv.URL,
		Introspection: &catalog.Introspection{
			Endpoint:     p.srv.URL + "/token/introspection",
			ClientID:     clientID,
			ClientSecret: catalog.SecretRef{Env: "PORTCULLIS_TEST_SECRET"},
			AuthMethod:   method,
		},
	}
}

func activeBody(exp time.Time) string {
	return fmt.Sprintf(`{"active":true,"client_id":"app-1","scope":"pets:read pets:write","sub":"alice","exp":%d,"token_type":"Bearer"}`, exp.Unix())
}

func fixedSecret(catalog.SecretRef) (string, error) { return testSecret, nil }

func newClient(t *testing.T, idp *catalog.CompiledIdentityProvider, opts introspect.Options) *introspect.Client {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = (&clock{t: epoch}).Now
	}
	if opts.SecretLookup == nil {
		opts.SecretLookup = fixedSecret
	}
	c, err := introspect.New(idp, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// logBuffer collects a client's log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func assertNoLeak(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{testToken, testSecret, url.QueryEscape(testSecret)} {
		if strings.Contains(s, secret) {
			t.Fatalf("%s leaks a secret: %s", where, s)
		}
	}
}

func TestIntrospectSendsAnRFC7662Request(t *testing.T) {
	tests := []struct {
		name   string
		method string
		check  func(t *testing.T, s seen)
	}{{
		name:   "client_secret_basic by default, form-encoded before base64",
		method: "",
		check: func(t *testing.T, s seen) {
			raw, ok := strings.CutPrefix(s.authorization, "Basic ")
			if !ok {
				t.Fatalf("Authorization %q, want Basic", s.authorization)
			}
			dec, err := base64.StdEncoding.DecodeString(raw)
			if err != nil {
				t.Fatal(err)
			}
			id, sec, _ := strings.Cut(string(dec), ":")
			if id != url.QueryEscape(clientID) || sec != url.QueryEscape(testSecret) {
				t.Fatalf("credentials %q:%q, want the form-encoded id and secret", id, sec)
			}
			if s.form.Has("client_secret") || s.form.Has("client_id") {
				t.Fatalf("credentials in the form too: %v", s.form)
			}
		},
	}, {
		name:   "client_secret_post",
		method: "client_secret_post",
		check: func(t *testing.T, s seen) {
			if s.authorization != "" {
				t.Fatalf("Authorization %q, want none", s.authorization)
			}
			if s.form.Get("client_id") != clientID || s.form.Get("client_secret") != testSecret {
				t.Fatalf("form credentials %q:%q", s.form.Get("client_id"), s.form.Get("client_secret"))
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			c := newClient(t, p.idp(tt.method), introspect.Options{})
			tok, err := c.Introspect(context.Background(), testToken)
			if err != nil {
				t.Fatalf("Introspect: %v", err)
			}
			if tok.ClientID != "app-1" || tok.Subject != "alice" || !tok.HasScopes([]string{"pets:read", "pets:write"}) || tok.Issuer != p.srv.URL {
				t.Fatalf("token %+v", tok)
			}
			reqs := p.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			s := reqs[0]
			if s.method != http.MethodPost || s.path != "/token/introspection" || s.contentType != "application/x-www-form-urlencoded" || s.accept != "application/json" {
				t.Fatalf("request %s %s, Content-Type %q, Accept %q", s.method, s.path, s.contentType, s.accept)
			}
			if s.form.Get("token") != testToken || s.form.Get("token_type_hint") != "access_token" {
				t.Fatalf("form %v, want token and token_type_hint=access_token", s.form)
			}
			tt.check(t, s)
		})
	}
}

func TestIntrospectJudgesTheAnswer(t *testing.T) {
	big := `{"active":true,"pad":"` + strings.Repeat("x", 2048) + `"}`
	tests := []struct {
		name       string
		status     int
		body       string
		redirect   bool
		wantErr    error // nil: a token
		wantResult string
	}{
		{name: "active", status: 200, body: activeBody(epoch.Add(time.Hour)), wantResult: "active"},
		{name: "inactive is a refusal", status: 200, body: `{"active":false}`, wantErr: identity.ErrInvalid, wantResult: "inactive"},
		{name: "expired by our clock is a refusal", status: 200, body: activeBody(epoch), wantErr: identity.ErrInvalid, wantResult: "refused"},
		{name: "a refresh token is a refusal", status: 200, body: `{"active":true,"token_type":"refresh_token"}`, wantErr: identity.ErrInvalid, wantResult: "refused"},
		{name: "a server error is unavailable", status: 500, body: `{"error":"server_error"}`, wantErr: identity.ErrUnavailable, wantResult: "status"},
		{name: "an active body under a 503 is still unavailable", status: 503, body: activeBody(epoch.Add(time.Hour)), wantErr: identity.ErrUnavailable, wantResult: "status"},
		{name: "a redirect is not followed", redirect: true, wantErr: identity.ErrUnavailable, wantResult: "status"},
		{name: "401 on our credentials is unavailable", status: 401, body: `{"error":"invalid_client"}`, wantErr: identity.ErrUnavailable, wantResult: "client_auth"},
		{name: "400 invalid_client is unavailable", status: 400, body: `{"error":"invalid_client"}`, wantErr: identity.ErrUnavailable, wantResult: "client_auth"},
		{name: "400 invalid_request is unavailable", status: 400, body: `{"error":"invalid_request"}`, wantErr: identity.ErrUnavailable, wantResult: "status"},
		{name: "garbage is unavailable", status: 200, body: `<html>proxy error</html>`, wantErr: identity.ErrUnavailable, wantResult: "malformed"},
		{name: "an oversized body is unavailable", status: 200, body: big, wantErr: identity.ErrUnavailable, wantResult: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			if tt.redirect {
				p.handle(func(w http.ResponseWriter, r *http.Request, s seen) {
					if r.URL.Path == "/elsewhere" {
						_, _ = io.WriteString(w, activeBody(epoch.Add(time.Hour)))
						return
					}
					http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
				})
			} else {
				p.answer(tt.status, tt.body)
			}
			reg := prometheus.NewPedanticRegistry()
			var logs logBuffer
			c := newClient(t, p.idp(""), introspect.Options{Registerer: reg, Logger: logs.logger(), MaxResponseBytes: 1024})
			tok, err := c.Introspect(context.Background(), testToken)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Introspect: %v", err)
			case tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || tok != nil):
				t.Fatalf("Introspect = (%+v, %v), want an error wrapping %v", tok, err, tt.wantErr)
			}
			if err != nil {
				assertNoLeak(t, "error", err.Error())
				if !strings.Contains(err.Error(), "test-idp") {
					t.Errorf("error %q does not name the provider", err)
				}
			}
			assertNoLeak(t, "log", logs.String())
			got := metricValues(t, reg)
			if n := got[`portcullis_introspect_calls_total{provider="test-idp",result="`+tt.wantResult+`"}`]; n != 1 {
				t.Errorf("calls{result=%q} = %v, want 1; all: %v", tt.wantResult, n, got)
			}
			if n := got[`portcullis_introspect_duration_seconds_count{provider="test-idp"}`]; n != 1 {
				t.Errorf("duration count = %v, want 1", n)
			}
			if tt.redirect && len(p.requests()) != 1 {
				t.Errorf("%d requests, want the redirect not followed", len(p.requests()))
			}
		})
	}
}

func TestIntrospectTimesOut(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		deadline time.Duration // the caller's; 0 for none
	}{
		{name: "the client's own timeout", timeout: 50 * time.Millisecond},
		{name: "the caller's deadline when it ends first", timeout: time.Minute, deadline: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			release := make(chan struct{})
			defer close(release)
			p.handle(func(w http.ResponseWriter, r *http.Request, _ seen) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			reg := prometheus.NewPedanticRegistry()
			c := newClient(t, p.idp(""), introspect.Options{Timeout: tt.timeout, Registerer: reg})
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			start := time.Now()
			_, err := c.Introspect(ctx, testToken)
			if !errors.Is(err, identity.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Introspect = %v, want ErrUnavailable wrapping DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("took %v", took)
			}
			assertNoLeak(t, "error", err.Error())
			if n := metricValues(t, reg)[`portcullis_introspect_calls_total{provider="test-idp",result="timeout"}`]; n != 1 {
				t.Errorf("calls{result=timeout} = %v, want 1", n)
			}
		})
	}
}

func TestIntrospectWithTheProviderDownIsUnavailable(t *testing.T) {
	p := newProvider(t)
	idp := p.idp("")
	p.srv.Close()
	reg := prometheus.NewPedanticRegistry()
	c := newClient(t, idp, introspect.Options{Registerer: reg})
	_, err := c.Introspect(context.Background(), testToken)
	if !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Introspect = %v, want ErrUnavailable", err)
	}
	assertNoLeak(t, "error", err.Error())
	if n := metricValues(t, reg)[`portcullis_introspect_calls_total{provider="test-idp",result="unreachable"}`]; n != 1 {
		t.Errorf("calls{result=unreachable} = %v, want 1", n)
	}
}

func TestEmptyAndOversizedTokensAreRefusedWithoutACall(t *testing.T) {
	tests := []struct {
		name  string
		token string
	}{
		{name: "empty", token: ""},
		{name: "oversized", token: strings.Repeat("a", introspect.MaxTokenBytes+1)},
	}
	p := newProvider(t)
	c := newClient(t, p.idp(""), introspect.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Introspect(context.Background(), tt.token); !errors.Is(err, identity.ErrInvalid) {
				t.Fatalf("Introspect = %v, want ErrInvalid", err)
			}
		})
	}
	if n := len(p.requests()); n != 0 {
		t.Fatalf("%d requests reached the provider, want 0", n)
	}
}

func TestRefusedClientCredentialsAreLoggedOnceAndTheSecretReread(t *testing.T) {
	p := newProvider(t)
	clk := &clock{t: epoch}
	var mu sync.Mutex
	current, reads := "old-secret", 0
	lookup := func(catalog.SecretRef) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		reads++
		return current, nil
	}
	var logs logBuffer
	c := newClient(t, p.idp(""), introspect.Options{Clock: clk.Now, SecretLookup: lookup, Logger: logs.logger()})
	readsNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return reads
	}

	// The provider now wants new-secret, which is not mounted yet.
	p.handle(func(w http.ResponseWriter, _ *http.Request, s seen) {
		dec, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.authorization, "Basic "))
		if !strings.HasSuffix(string(dec), ":new-secret") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		_, _ = io.WriteString(w, activeBody(epoch.Add(time.Hour)))
	})
	for i := range 3 {
		if _, err := c.Introspect(context.Background(), testToken); !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("call %d = %v, want ErrUnavailable", i, err)
		}
	}
	if n := strings.Count(logs.String(), "refused Portcullis's client credentials"); n != 1 {
		t.Fatalf("refusal logged %d times, want once:\n%s", n, logs.String())
	}
	if n := readsNow(); n != 1 {
		t.Fatalf("secret read %d times within a second of the first read, want 1", n)
	}

	// The rotated secret is mounted; a second later the next call reads it
	// without waiting for the refresh period.
	mu.Lock()
	current = "new-secret"
	mu.Unlock()
	clk.Set(epoch.Add(time.Second))
	if _, err := c.Introspect(context.Background(), testToken); err != nil {
		t.Fatalf("after the secret was rotated: %v", err)
	}
	if n := readsNow(); n != 2 {
		t.Fatalf("secret read %d times, want 2", n)
	}
	if !strings.Contains(logs.String(), "accepts Portcullis's client credentials again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
	out := logs.String()
	assertNoLeak(t, "log", out)
	for _, s := range []string{"old-secret", "new-secret"} {
		if strings.Contains(out, s) {
			t.Fatalf("log holds the secret %q:\n%s", s, out)
		}
	}
}

func TestTheSecretFileIsRereadEveryRefreshPeriod(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one\n")
	p := newProvider(t)
	idp := p.idp("client_secret_post")
	idp.Introspection.ClientSecret = catalog.SecretRef{File: file}
	clk := &clock{t: epoch}
	c, err := introspect.New(idp, introspect.Options{Clock: clk.Now, SecretRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at   time.Duration
		file string // written before the call, when set
		want string
	}{
		{at: 0, want: "one"},
		{at: 30 * time.Second, file: "two\n", want: "one"},
		{at: time.Minute, want: "two"},
		{at: 90 * time.Second, file: "", want: "two"},
	}
	for i, s := range steps {
		if s.file != "" {
			write(s.file)
		}
		clk.Set(epoch.Add(s.at))
		if _, err := c.Introspect(context.Background(), testToken); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		reqs := p.requests()
		if got := reqs[len(reqs)-1].form.Get("client_secret"); got != s.want {
			t.Fatalf("step %d at +%v: secret %q sent, want %q", i, s.at, got, s.want)
		}
	}

	// A secret that becomes unreadable keeps the last good one in use.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	clk.Set(epoch.Add(5 * time.Minute))
	if _, err := c.Introspect(context.Background(), testToken); err != nil {
		t.Fatalf("with the file gone: %v", err)
	}
	reqs := p.requests()
	if got := reqs[len(reqs)-1].form.Get("client_secret"); got != "two" {
		t.Fatalf("secret %q sent with the file gone, want the last good one", got)
	}
}

func TestAnUnreadableSecretIsUnavailableUntilItAppears(t *testing.T) {
	p := newProvider(t)
	clk := &clock{t: epoch}
	var mu sync.Mutex
	present := false
	lookup := func(ref catalog.SecretRef) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if !present {
			return "", fmt.Errorf("read secret %s: not set", ref)
		}
		return testSecret, nil
	}
	reg := prometheus.NewPedanticRegistry()
	var logs logBuffer
	c := newClient(t, p.idp(""), introspect.Options{Clock: clk.Now, SecretLookup: lookup, Registerer: reg, Logger: logs.logger()})
	for range 2 {
		if _, err := c.Introspect(context.Background(), testToken); !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("Introspect = %v, want ErrUnavailable", err)
		}
	}
	if n := len(p.requests()); n != 0 {
		t.Fatalf("%d requests sent without a secret", n)
	}
	if n := strings.Count(logs.String(), "cannot read the client secret"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	mu.Lock()
	present = true
	mu.Unlock()
	clk.Set(epoch.Add(time.Second))
	if _, err := c.Introspect(context.Background(), testToken); err != nil {
		t.Fatalf("once the secret appears: %v", err)
	}
	if n := metricValues(t, reg)[`portcullis_introspect_calls_total{provider="test-idp",result="secret"}`]; n != 2 {
		t.Errorf("calls{result=secret} = %v, want 2", n)
	}
	assertNoLeak(t, "log", logs.String())
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("PORTCULLIS_TEST_SET", "from-env")
	t.Setenv("PORTCULLIS_TEST_EMPTY", "")
	tests := []struct {
		name    string
		ref     catalog.SecretRef
		want    string
		wantErr string
	}{
		{name: "a file, trailing newline trimmed", ref: catalog.SecretRef{File: file("nl", "abc\n")}, want: "abc"},
		{name: "a file with inner spaces kept", ref: catalog.SecretRef{File: file("sp", "a b\r\n")}, want: "a b"},
		{name: "an empty file", ref: catalog.SecretRef{File: file("empty", " \n")}, wantErr: "empty"},
		{name: "a missing file", ref: catalog.SecretRef{File: filepath.Join(dir, "nope")}, wantErr: "no such file"},
		{name: "an oversized file", ref: catalog.SecretRef{File: file("big", strings.Repeat("x", 64<<10+1))}, wantErr: "larger than"},
		{name: "an environment variable", ref: catalog.SecretRef{Env: "PORTCULLIS_TEST_SET"}, want: "from-env"},
		{name: "an unset variable", ref: catalog.SecretRef{Env: "PORTCULLIS_TEST_UNSET"}, wantErr: "not set"},
		{name: "an empty variable", ref: catalog.SecretRef{Env: "PORTCULLIS_TEST_EMPTY"}, wantErr: "empty"},
		{name: "both", ref: catalog.SecretRef{File: "x", Env: "Y"}, wantErr: "both"},
		{name: "neither", ref: catalog.SecretRef{}, wantErr: "names no file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := introspect.ReadSecret(tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadSecret = (%q, %v), want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ReadSecret = (%q, %v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestNewRefusesAnUnusableProvider(t *testing.T) {
	good := func() *catalog.CompiledIdentityProvider {
		return &catalog.CompiledIdentityProvider{Name: "idp", Issuer: "https://idp.test", Introspection: &catalog.Introspection{
			Endpoint: "https://idp.test/introspect", ClientID: "c", ClientSecret: catalog.SecretRef{Env: "S"},
		}}
	}
	tests := []struct {
		name    string
		idp     func() *catalog.CompiledIdentityProvider
		opts    introspect.Options
		wantErr string
	}{
		{name: "nil provider", idp: func() *catalog.CompiledIdentityProvider { return nil }, wantErr: "nil identity provider"},
		{name: "no introspection section", idp: func() *catalog.CompiledIdentityProvider {
			p := good()
			p.Introspection = nil
			return p
		}, wantErr: "no introspection section"},
		{name: "a relative endpoint", idp: func() *catalog.CompiledIdentityProvider {
			p := good()
			p.Introspection.Endpoint = "/introspect"
			return p
		}, wantErr: "not an http or https URL"},
		{name: "no client id", idp: func() *catalog.CompiledIdentityProvider {
			p := good()
			p.Introspection.ClientID = ""
			return p
		}, wantErr: "no client id"},
		{name: "an unknown auth method", idp: func() *catalog.CompiledIdentityProvider {
			p := good()
			p.Introspection.AuthMethod = "private_key_jwt"
			return p
		}, wantErr: "unknown client authentication method"},
		{name: "a negative timeout", idp: good, opts: introspect.Options{Timeout: -1}, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.SecretLookup = fixedSecret
			_, err := introspect.New(tt.idp(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestARebuiltClientContinuesItsMetrics(t *testing.T) {
	p := newProvider(t)
	reg := prometheus.NewPedanticRegistry()
	for i := range 2 {
		c := newClient(t, p.idp(""), introspect.Options{Registerer: reg})
		if _, err := c.Introspect(context.Background(), testToken); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if n := metricValues(t, reg)[`portcullis_introspect_calls_total{provider="test-idp",result="active"}`]; n != 2 {
		t.Errorf("calls{result=active} = %v, want 2 across both clients", n)
	}
}

// metricValues flattens reg's counters and histogram counts to
// "name{label=value,...}".
func metricValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			suffix := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[mf.GetName()+suffix] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+suffix] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
