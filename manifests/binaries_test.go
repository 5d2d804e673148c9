package manifests

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/portcullis-dev/portcullis/pkg/rules"
)

// binaries builds cmd/authz and cmd/ratelimit once per test run, into a
// directory TestMain removes: the Deployments are checked against, and
// started as, the real programs rather than a description of them.
var binaries = sync.OnceValues(func() (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build the binaries: %w", err)
	}
	dir, err := os.MkdirTemp("", "portcullis-manifests-")
	if err != nil {
		return "", err
	}
	builtDir.Store(&dir)
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/authz", "./cmd/ratelimit")
	cmd := exec.Command(gobin, args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return dir, nil
})

// builtDir is where binaries built, for TestMain to remove.
var builtDir atomic.Pointer[string]

func TestMain(m *testing.M) {
	code := m.Run()
	if d := builtDir.Load(); d != nil {
		_ = os.RemoveAll(*d)
	}
	os.Exit(code)
}

func buildBinaries(t *testing.T) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// flagSet is a binary's flags and their defaults, read from its -h.
type flagSet map[string]string

var (
	flagLine    = regexp.MustCompile(`^  -([a-z][a-z0-9-]*)`)
	defaultPart = regexp.MustCompile(`\(default "?([^")]*)"?\)`)
)

func readFlags(t *testing.T, bin string) flagSet {
	t.Helper()
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -h: %v\n%s", bin, err, out)
	}
	fs := flagSet{}
	var last string
	for _, line := range strings.Split(string(out), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			last = m[1]
			fs[last] = ""
		}
		if m := defaultPart.FindStringSubmatch(line); m != nil && last != "" {
			fs[last] = m[1]
		}
	}
	if len(fs) == 0 {
		t.Fatalf("%s -h listed no flags:\n%s", bin, out)
	}
	return fs
}

// container is the one container of a rendered Deployment, with its
// flags parsed.
type container struct {
	dep   *appsv1.Deployment
	c     corev1.Container
	bin   string            // command basename
	flags map[string]string // -name=value
}

func containerOf(t *testing.T, dep *appsv1.Deployment) container {
	t.Helper()
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) != 1 || len(cs[0].Command) != 1 {
		t.Fatalf("Deployment %s: want one container with a one-word command", dep.Name)
	}
	out := container{dep: dep, c: cs[0], bin: path.Base(cs[0].Command[0]), flags: map[string]string{}}
	for _, a := range cs[0].Args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if !ok || !strings.HasPrefix(a, "-") {
			t.Fatalf("Deployment %s: argument %q is not -name=value", dep.Name, a)
		}
		out.flags[name] = value
	}
	return out
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %s", c.Name, name)
	return 0
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

// deployments are the rendered base's Deployments by binary.
func deployments(t *testing.T, ds []decoded) map[string]container {
	t.Helper()
	out := map[string]container{}
	for _, d := range ds {
		if dep, ok := d.obj.(*appsv1.Deployment); ok && strings.HasPrefix(dep.Name, "portcullis-") {
			c := containerOf(t, dep)
			out[c.bin] = c
		}
	}
	if len(out) != 2 || out["authz"].dep == nil || out["ratelimit"].dep == nil {
		t.Fatalf("want the authz and ratelimit Deployments, have %v", out)
	}
	return out
}

func TestDeploymentsAgreeWithTheBinaries(t *testing.T) {
	bins := buildBinaries(t)
	base := render(t, "base")
	for bin, c := range deployments(t, base) {
		t.Run(bin, func(t *testing.T) {
			flags := readFlags(t, filepath.Join(bins, bin))
			for name := range c.flags {
				if _, ok := flags[name]; !ok {
					t.Errorf("argument -%s is no flag of %s (it has %v)", name, bin, flags)
				}
			}
			// The listen ports: the arguments, the flags' defaults, the
			// named container ports and the Service agree.
			svc := find[*corev1.Service](t, base, "Service", c.dep.Name)
			for _, p := range []struct{ flag, port, svcPrefix string }{{"grpc-addr", "grpc", "grpc-"}, {"http-addr", "http", "http-"}} {
				want := fmt.Sprint(containerPort(t, c.c, p.port))
				if got := portOf(t, c.flags[p.flag]); got != want {
					t.Errorf("-%s port %s, container port %s is %s", p.flag, got, p.port, want)
				}
				if got := portOf(t, flags[p.flag]); got != want {
					t.Errorf("-%s defaults to port %s in %s, the manifests use %s", p.flag, got, bin, want)
				}
				var found bool
				for _, sp := range svc.Spec.Ports {
					if strings.HasPrefix(sp.Name, p.svcPrefix) {
						found = true
						if sp.TargetPort.String() != p.port || fmt.Sprint(sp.Port) != want {
							t.Errorf("Service %s port %s: %d -> %s, want %s -> %s", svc.Name, sp.Name, sp.Port, sp.TargetPort.String(), want, p.port)
						}
					}
				}
				if !found {
					t.Errorf("Service %s has no %s* port", svc.Name, p.svcPrefix)
				}
			}
			if got := svc.Spec.Selector; fmt.Sprint(got) != fmt.Sprint(c.dep.Spec.Selector.MatchLabels) {
				t.Errorf("Service selector %v differs from the Deployment's %v", got, c.dep.Spec.Selector.MatchLabels)
			}

			// Probes on the admin port: /healthz for liveness and
			// start-up, /readyz for readiness.
			for _, p := range []struct {
				what  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.c.LivenessProbe, "/healthz"}, {"startup", c.c.StartupProbe, "/healthz"}, {"readiness", c.c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe: want GET %s on port http, have %+v", p.what, p.path, p.probe)
				}
			}

			// Shutdown: the pod outlives the drain delay and the grace.
			cfgFile := strings.Replace(c.flags["config"], "/etc/portcullis/config/", "base/config/", 1)
			srv := readAppConfig(t, cfgFile).Server
			grace := time.Duration(*c.dep.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
			if grace <= srv.DrainDelay+srv.ShutdownGrace {
				t.Errorf("terminationGracePeriodSeconds %v must exceed drainDelay %v + shutdownGrace %v", grace, srv.DrainDelay, srv.ShutdownGrace)
			}

			// Hardening and availability.
			pod := c.dep.Spec.Template.Spec
			sc := c.c.SecurityContext
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
				sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("the pod must run as non-root, read-only, without privilege escalation")
			}
			if c.dep.Spec.Replicas == nil || *c.dep.Spec.Replicas < 2 {
				t.Error("want at least 2 replicas")
			}
			pdb := find[*policyv1.PodDisruptionBudget](t, base, "PodDisruptionBudget", c.dep.Name)
			if fmt.Sprint(pdb.Spec.Selector.MatchLabels) != fmt.Sprint(c.dep.Spec.Selector.MatchLabels) {
				t.Errorf("PodDisruptionBudget selects %v, the pods are %v", pdb.Spec.Selector.MatchLabels, c.dep.Spec.Selector.MatchLabels)
			}
		})
	}
}

// mountConfigMaps writes the ConfigMaps a Deployment mounts into root, at
// their mount paths, as the kubelet would, and returns a function mapping
// an in-pod path to its place under root.
func mountConfigMaps(t *testing.T, ds []decoded, dep *appsv1.Deployment, root string) func(string) string {
	t.Helper()
	cms := map[string]*corev1.ConfigMap{}
	for _, d := range ds {
		if cm, ok := d.obj.(*corev1.ConfigMap); ok {
			cms[cm.Name] = cm
		}
	}
	volumes := map[string]string{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil {
			t.Fatalf("volume %s is not a ConfigMap", v.Name)
		}
		volumes[v.Name] = v.ConfigMap.Name
	}
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		cm := cms[volumes[m.Name]]
		if cm == nil {
			t.Fatalf("mount %s: ConfigMap %q is not among the rendered resources", m.MountPath, volumes[m.Name])
		}
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath, which the kubelet never updates: reloads would not happen", m.MountPath)
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return func(p string) string { return filepath.Join(root, p) }
}

// process is a started binary.
type process struct {
	cmd        *exec.Cmd
	grpc, http string
	exited     chan error
}

// start runs a Deployment's container as a local process: its command
// and arguments, with mounted paths moved under a temporary root and the
// listeners on loopback ports the kernel picks. It returns once the
// binary logs that it serves.
func start(t *testing.T, bins string, ds []decoded, c container) *process {
	t.Helper()
	at := mountConfigMaps(t, ds, c.dep, t.TempDir())
	var args []string
	for _, a := range c.c.Args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		switch {
		case name == "grpc-addr" || name == "http-addr":
			value = "127.0.0.1:0"
		case strings.HasPrefix(value, "/"):
			value = at(value)
		}
		args = append(args, "-"+name+"="+value)
	}
	cmd := exec.Command(filepath.Join(bins, c.bin), args...)
	// A clean environment, so the test's own cannot reconfigure the
	// binary; the drain delay is the one thing shortened, by the
	// environment layer the Deployment would use.
	cmd.Env = []string{"PORTCULLIS_DRAIN_DELAY=0s"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	serving := make(chan map[string]any, 1)
	var logs strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == c.bin+" serving" {
				serving <- rec
			}
		}
	}()
	go func() { <-logDone; p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil {
				t.Errorf("%s exited with %v on SIGTERM", c.bin, err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop within 20s of SIGTERM", c.bin)
		}
	})
	select {
	case rec := <-serving:
		p.grpc, _ = rec["grpc"].(string)
		p.http, _ = rec["http"].(string)
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("%s %s exited before serving: %v\n%s", c.bin, strings.Join(args, " "), err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not log %q within 30s", c.bin, c.bin+" serving")
	}
	return p
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// The shipped config files, catalog and arguments are valid for the real
// binaries: they load them strictly (an unknown key in a config file or a
// catalog stops start-up) and report ready on the probes' paths.
func TestBinariesStartWithTheRenderedConfiguration(t *testing.T) {
	bins := buildBinaries(t)
	for _, dir := range []string{"base", "example"} {
		t.Run(dir, func(t *testing.T) {
			ds := render(t, dir)
			for bin, c := range deployments(t, ds) {
				t.Run(bin, func(t *testing.T) {
					p := start(t, bins, ds, c)
					for _, probe := range []string{"/healthz", "/readyz"} {
						if got := httpStatus(t, "http://"+p.http+probe); got != http.StatusOK {
							t.Errorf("GET %s: %d, want 200", probe, got)
						}
					}
				})
			}
		})
	}
}

// demoKey is the API key the demo catalog holds by hash, as its comment
// and the README give it.
const demoKey = "pcl_test_Vqcuf9KKQ4cdy0OTVfj5s9VzPA6OHdjyuSMek3WNKvx0owkI5"

// The README's walk-through without a cluster: the example overlay's
// authz and ratelimit run as processes, this test plays Envoy (a Check as
// the gateway sends it, the shipped rate_limits applied to the returned
// metadata by Descriptors, ShouldRateLimit on the result), and the demo
// plan's sixth request is refused as the README says.
func TestDemoThrottlesTheSixthRequest(t *testing.T) {
	sum := sha256.Sum256([]byte(demoKey))
	data, err := os.ReadFile("example/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), demoKey) || !strings.Contains(string(data), hex.EncodeToString(sum[:])) {
		t.Fatal("example/catalog.yaml must publish the demo key and hold its SHA-256")
	}
	bins := buildBinaries(t)
	ds := render(t, "example")
	deps := deployments(t, ds)
	az := authv3.NewAuthorizationClient(dial(t, start(t, bins, ds, deps["authz"]).grpc))
	rl := rlsv3.NewRateLimitServiceClient(dial(t, start(t, bins, ds, deps["ratelimit"]).grpc))
	limits, err := RateLimits(FS(), GatewayEnvoyFilter)
	if err != nil {
		t.Fatal(err)
	}

	call := func(i int, path string) rlsv3.RateLimitResponse_Code {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		id := fmt.Sprintf("demo-%d", i)
		resp, err := az.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "192.0.2.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
			}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: id, Method: "GET", Path: path, Host: "httpbin.example.com", Scheme: "http",
				Headers: map[string]string{":authority": "httpbin.example.com", ":method": "GET", ":path": path,
					"x-api-key": demoKey, "x-request-id": id},
			}},
		}})
		if err != nil {
			t.Fatalf("Check %s: %v", path, err)
		}
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("Check %s: %v", path, resp.GetStatus())
		}
		md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{ExtAuthzNamespace: resp.GetDynamicMetadata()}}
		descs, err := Descriptors(limits, md)
		if err != nil {
			t.Fatal(err)
		}
		if len(descs) == 0 {
			t.Fatalf("Check %s returned metadata %v that builds no descriptor", path, resp.GetDynamicMetadata())
		}
		rr, err := rl.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: rules.PortcullisDomain, Descriptors: descs, HitsAddend: 1})
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
		return rr.GetOverallCode()
	}

	// Two requests to /status/{code}: the resource policy allows 2.
	for i, want := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		if got := call(i, "/status/200"); got != want {
			t.Fatalf("request %d to /status/200: %s, want %s", i+1, got, want)
		}
	}
	// The plan allows 5 in all; the refused request charged nothing.
	for i, want := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		if got := call(10+i, "/headers"); got != want {
			t.Fatalf("request %d to /headers after 2 to /status: %s, want %s", i+1, got, want)
		}
	}
}
