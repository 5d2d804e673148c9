package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portcullis-dev/portcullis/internal/watch"
)

// logBuffer is a JSON slog handler's output, safe to read while written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the log records whose msg is msg.
func (l *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type sourceFixture struct {
	src  *Source
	reg  *prometheus.Registry
	logs *logBuffer
	dir  string
	file string
}

func newSourceFixture(t *testing.T) *sourceFixture {
	t.Helper()
	f := &sourceFixture{reg: prometheus.NewRegistry(), logs: &logBuffer{}, dir: t.TempDir()}
	f.file = filepath.Join(f.dir, "catalog.yaml")
	src, err := NewSource(SourceOptions{
		Path:       f.dir,
		Logger:     slog.New(slog.NewJSONHandler(f.logs, nil)),
		Registerer: f.reg,
		Now:        func() time.Time { return time.Unix(1700000000, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.src = src
	return f
}

func (f *sourceFixture) write(t *testing.T, content string) {
	t.Helper()
	// Write and rename, as an editor or the kubelet does, so that a
	// watcher never sees a half-written file.
	tmp := filepath.Join(f.dir, ".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		t.Fatal(err)
	}
}

// metric returns a metric's value, by name and optional label value.
func (f *sourceFixture) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			if label != "" && !hasLabel(m, label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func hasLabel(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}

// goldRequests is the first limit of policy gold, 0 when there is none. It
// runs in subscribers, on goroutines where t.Fatal may not be called.
func goldRequests(s *Snapshot) uint64 {
	if s == nil {
		return 0
	}
	p, ok := s.Policy("gold")
	if !ok {
		return 0
	}
	return p.Limits[0].Requests
}

func TestSourceKeepsTheLastGoodCatalogWhenAReloadFails(t *testing.T) {
	f := newSourceFixture(t)
	ctx := context.Background()
	var seen []uint64
	f.src.OnUpdate(func(s *Snapshot) { seen = append(seen, goldRequests(s)) })

	f.write(t, policyDoc("gold", 10))
	if err := f.src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	first := f.src.Snapshot()

	f.write(t, policyDoc("gold", 20)+"---\napiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: silver}\nspec:\n  scope: subscription\n  limits: [{requests: 5, per: 1 minute}]\n")
	err := f.src.Load(ctx)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("broken reload returned %v, want one problem", err)
	}
	if f.src.Snapshot() != first {
		t.Fatal("a failed reload replaced the snapshot in use")
	}
	logged := f.logs.records(t, "catalog problem")
	if len(logged) != 1 {
		t.Fatalf("%d problems logged, want 1:\n%s", len(logged), f.logs)
	}
	if r := logged[0]; r["file"] != f.file || r["line"] != float64(11) || r["field"] != "spec.limits[0].per" ||
		r["name"] != "silver" || !strings.Contains(r["reason"].(string), `unknown unit " minute"`) {
		t.Errorf("logged problem %v", r)
	}
	if got := f.metric(t, "portcullis_catalog_last_load_successful", ""); got != 0 {
		t.Errorf("last_load_successful = %v after a failure", got)
	}
	if got := f.metric(t, "portcullis_catalog_problems", ""); got != 1 {
		t.Errorf("problems = %v, want 1", got)
	}

	f.write(t, policyDoc("gold", 30))
	if err := f.src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := goldRequests(f.src.Snapshot()); got != 30 {
		t.Errorf("gold allows %d after the fix, want 30", got)
	}
	if want := []uint64{10, 30}; !equalUints(seen, want) {
		t.Errorf("subscriber saw %v, want %v", seen, want)
	}
	for label, want := range map[string]float64{"success": 2, "failure": 1} {
		if got := f.metric(t, "portcullis_catalog_loads_total", label); got != want {
			t.Errorf("loads_total{result=%q} = %v, want %v", label, got, want)
		}
	}
	if got := f.metric(t, "portcullis_catalog_objects", KindPolicy); got != 1 {
		t.Errorf("objects{kind=Policy} = %v, want 1", got)
	}
	if got := f.metric(t, "portcullis_catalog_last_success_timestamp_seconds", ""); got != 1700000000 {
		t.Errorf("last_success_timestamp_seconds = %v", got)
	}
}

func equalUints(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSourceHasNoSnapshotUntilALoadSucceeds(t *testing.T) {
	f := newSourceFixture(t)
	f.write(t, "apiVersion: portcullis.dev/v1alpha1\nkind: Policy\nmetadata: {name: gold}\nspec: {scope: gold}\n")
	called := false
	f.src.OnUpdate(func(*Snapshot) { called = true })
	if err := f.src.Load(context.Background()); err == nil {
		t.Fatal("a broken catalog loaded")
	}
	if f.src.Snapshot() != nil || called {
		t.Error("a snapshot was published from a broken catalog")
	}
	if r := f.logs.records(t, "catalog load failed"); len(r) != 1 || !strings.HasPrefix(r[0]["keeping"].(string), "none") {
		t.Errorf("failure log %v", r)
	}
}

func TestSourceNeverLogsAnInlineSecret(t *testing.T) {
	f := newSourceFixture(t)
	f.write(t, `apiVersion: portcullis.dev/v1alpha1
kind: IdentityProvider
metadata: {name: corp}
spec:
  issuer: https://idp.example.com
  introspection: {endpoint: https://idp.example.com/i, clientId: c, clientSecret: hunter2-s3cret}
`)
	err := f.src.Load(context.Background())
	if err == nil {
		t.Fatal("an inline secret was accepted")
	}
	if strings.Contains(f.logs.String(), "hunter2") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the secret leaked:\n%s\n%v", f.logs, err)
	}
}

func TestOnUpdateCallsANewSubscriberWithTheCurrentSnapshot(t *testing.T) {
	f := newSourceFixture(t)
	f.write(t, policyDoc("gold", 10))
	if err := f.src.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got *Snapshot
	f.src.OnUpdate(func(s *Snapshot) { got = s })
	if got != f.src.Snapshot() {
		t.Error("a late subscriber was not given the snapshot in use")
	}
}

func TestNewSourceRefusesARegistererThatHasItsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewSource(SourceOptions{Path: ".", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSource(SourceOptions{Path: ".", Registerer: reg}); err == nil {
		t.Error("a second Source registered the same metrics")
	}
}

// triggerWatcher reports a change whenever a test sends on changes.
type triggerWatcher struct{ changes chan struct{} }

func (w triggerWatcher) Run(ctx context.Context, onChange func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changes:
			onChange()
		}
	}
}

func TestSourceRunReloadsOnEachChange(t *testing.T) {
	f := newSourceFixture(t)
	f.write(t, policyDoc("gold", 10))
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	updates := make(chan uint64, 4)
	f.src.OnUpdate(func(s *Snapshot) { updates <- goldRequests(s) })
	<-updates // the current snapshot

	w := triggerWatcher{changes: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- f.src.Run(ctx, w) }()

	f.write(t, policyDoc("gold", 0)) // broken: no update
	w.changes <- struct{}{}
	f.write(t, policyDoc("gold", 40))
	w.changes <- struct{}{}
	select {
	case got := <-updates:
		if got != 40 {
			t.Errorf("update with gold %d, want 40 (the broken catalog must not be published)", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update after a change")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
}

// TestSourceFollowsAConfigMapSwapWithTheRealWatcher wires internal/watch as
// the binaries do: watcher first, then Load, then Run.
func TestSourceFollowsAConfigMapSwapWithTheRealWatcher(t *testing.T) {
	f := newSourceFixture(t)
	data := func(stamp, content string) {
		t.Helper()
		dir := filepath.Join(f.dir, stamp)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, dir, "catalog.yaml", content)
		tmp := filepath.Join(f.dir, "..data_tmp")
		if err := os.Symlink(stamp, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(f.dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	data("..2024_01_01_00_00_00.000000001", policyDoc("gold", 10))
	if err := os.Symlink(filepath.Join("..data", "catalog.yaml"), f.file); err != nil {
		t.Fatal(err)
	}

	w, err := watch.New([]string{f.dir}, watch.Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	updates := make(chan uint64, 8)
	f.src.OnUpdate(func(s *Snapshot) { updates <- goldRequests(s) })
	<-updates
	done := make(chan error, 1)
	go func() { done <- f.src.Run(ctx, w) }()

	data("..2024_01_01_00_01_00.000000002", policyDoc("gold", 50))
	deadline := time.After(20 * time.Second)
	for got := uint64(0); got != 50; {
		select {
		case got = <-updates:
		case <-deadline:
			t.Fatalf("the swap was not loaded:\n%s", f.logs)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}
