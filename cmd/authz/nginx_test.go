package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/freeport"
	"github.com/portcullis-dev/portcullis/internal/poll"
	"github.com/portcullis-dev/portcullis/pkg/apikey"
)

// nginxCatalog is an API-key-only catalog: the nginx test is about the
// HTTP mode and what reaches the upstream, not about tokens.
func nginxCatalog(t *testing.T) string {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: portcullis.dev/v1alpha1
kind: API
metadata: {name: petstore}
spec:
  version: v1
  basePath: /petstore/v1
  security: [apiKey]
  apiKey: {headers: [x-api-key], queryParams: [api_key]}
  operations:
    - {method: GET, path: /pets}
    - {method: POST, path: /pets}
---
apiVersion: portcullis.dev/v1alpha1
kind: Application
metadata: {name: shop}
spec:
  owner: alice
  apiKeys:
    - {id: shop-key, sha256: %x, keyType: PRODUCTION}
    - {id: shop-office, sha256: %x, keyType: SANDBOX, allowedCIDRs: [127.0.0.0/8]}
---
apiVersion: portcullis.dev/v1alpha1
kind: Application
metadata: {name: banned}
spec:
  apiKeys:
    - {id: banned-key, sha256: %x, keyType: PRODUCTION}
---
apiVersion: portcullis.dev/v1alpha1
kind: Subscription
metadata: {name: shop.petstore}
spec: {application: shop, api: petstore, policy: gold}
---
apiVersion: portcullis.dev/v1alpha1
kind: Subscription
metadata: {name: banned.petstore}
spec: {application: banned, api: petstore, policy: gold, state: BLOCKED}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits: [{requests: 100, per: 1m}]
`, apikey.Hash("shop-key"), apikey.Hash("shop-office"), apikey.Hash("banned-key"))
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginxConf is the auth_request configuration pkg/extauthz's doc
// describes, pointing at authz's HTTP mode and a real upstream.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {{dir}}/client_body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    server {
        listen 127.0.0.1:{{port}};
        location = /_portcullis {
            internal;
            proxy_pass              http://{{authz}}/authz;
            proxy_pass_request_body off;
            proxy_set_header        Content-Length "";
            proxy_set_header        Host $host;
            proxy_set_header        X-Original-URI $request_uri;
            proxy_set_header        X-Original-Method $request_method;
            proxy_set_header        X-Real-IP $remote_addr;
        }
        location / {
            auth_request     /_portcullis;
            auth_request_set $pc_app $upstream_http_x_portcullis_application;
            auth_request_set $pc_owner $upstream_http_x_portcullis_application_owner;
            auth_request_set $pc_user $upstream_http_x_portcullis_user;
            auth_request_set $pc_key_type $upstream_http_x_portcullis_key_type;
            auth_request_set $pc_uri $upstream_http_x_portcullis_upstream_uri;
            auth_request_set $pc_counter $upstream_http_x_portcullis_meta_subscription_counter;
            proxy_set_header X-Portcullis-Application $pc_app;
            proxy_set_header X-Portcullis-Application-Owner $pc_owner;
            proxy_set_header X-Portcullis-User $pc_user;
            proxy_set_header X-Portcullis-Key-Type $pc_key_type;
            proxy_set_header X-Counter $pc_counter;
            proxy_set_header X-Api-Key "";
            proxy_set_header Authorization "";
            proxy_pass       http://{{upstream}}$pc_uri;
        }
    }
}
`

// upstreamSeen records what the upstream received.
type upstreamSeen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (u *upstreamSeen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(context.Background()))
	u.mu.Unlock()
	_, _ = io.WriteString(w, "upstream ok")
}

func (u *upstreamSeen) last(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstreamSeen) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// startNginx runs nginx from the distribution (nginx-light in CI) with
// conf, and fails the test if it is not installed: a suite that skipped
// this would pass in a CI image that forgot it.
func startNginx(t *testing.T, conf string, port int) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatalf("nginx not found (%v): install it (Debian: apt-get install nginx-light); this test needs it", err)
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	conf = strings.ReplaceAll(conf, "{{dir}}", dir)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nnginx error.log:\n%s", out, log)
		}
	})
	poll.Until(t, 10*time.Second, "nginx to listen", func() bool {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s\n%s", out, log)
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func TestNginxAuthRequest(t *testing.T) {
	r := start(t, env(map[string]string{"PORTCULLIS_HTTP_CLIENT_ADDRESS_HEADER": "X-Real-IP"}), "-catalog", nginxCatalog(t))
	up := &upstreamSeen{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	port := freeport.Port(t)
	conf := strings.NewReplacer(
		"{{port}}", fmt.Sprint(port),
		"{{authz}}", r.app.srv.HTTPAddr(),
		"{{upstream}}", strings.TrimPrefix(upstream.URL, "http://"),
	).Replace(nginxConf)
	startNginx(t, conf, port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 10 * time.Second}

	get := func(t *testing.T, method, path string, headers map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	t.Run("an allowed request reaches the upstream with identity headers and without the key", func(t *testing.T) {
		resp := get(t, "GET", "/petstore/v1/pets?limit=3", map[string]string{
			"X-Api-Key": "shop-key", "X-Portcullis-User": "root", "X-Portcullis-Application": "admin",
		})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		got := up.last(t)
		for name, want := range map[string]string{
			"X-Portcullis-Application": "shop", "X-Portcullis-Application-Owner": "alice",
			"X-Portcullis-Key-Type": "PRODUCTION", "X-Portcullis-User": "", "X-Api-Key": "",
			"X-Counter": "shop:petstore:v1",
		} {
			if v := got.Header.Get(name); v != want {
				t.Errorf("upstream header %s = %q, want %q", name, v, want)
			}
		}
		if got.URL.RequestURI() != "/petstore/v1/pets?limit=3" {
			t.Errorf("upstream URI = %q, want the original", got.URL.RequestURI())
		}
	})
	t.Run("an API key in the query is removed before the upstream", func(t *testing.T) {
		resp := get(t, "GET", "/petstore/v1/pets?api_key=shop-key&limit=3", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		if uri := up.last(t).URL.RequestURI(); uri != "/petstore/v1/pets?limit=3" {
			t.Errorf("upstream URI = %q, want the key removed", uri)
		}
	})
	t.Run("the client address nginx saw is checked against the key's CIDRs", func(t *testing.T) {
		if resp := get(t, "GET", "/petstore/v1/pets", map[string]string{"X-Api-Key": "shop-office", "X-Real-IP": "203.0.113.9"}); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200 (nginx overwrites the client's X-Real-IP with 127.0.0.1)", resp.StatusCode)
		}
	})
	for _, tt := range []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		want    int
	}{
		{"no credential is 401", "GET", "/petstore/v1/pets", nil, http.StatusUnauthorized},
		{"an unknown key is 401", "GET", "/petstore/v1/pets", map[string]string{"X-Api-Key": "nope"}, http.StatusUnauthorized},
		{"a blocked subscription is 403", "GET", "/petstore/v1/pets", map[string]string{"X-Api-Key": "banned-key"}, http.StatusForbidden},
		{"the original method is judged", "DELETE", "/petstore/v1/pets", map[string]string{"X-Api-Key": "shop-key"}, http.StatusInternalServerError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			// nginx passes 401 and 403 through and turns any other refusal
			// (404 here) into 500.
			if resp := get(t, tt.method, tt.path, tt.headers); resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if up.count() != before {
				t.Error("a refused request reached the upstream")
			}
		})
	}
}
