package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// deadline bounds every wait for a callback; nothing here should take more
// than a fraction of it.
const deadline = 10 * time.Second

// start runs a watcher on paths and returns a channel that receives once per
// callback.
func start(t *testing.T, paths []string, opts Options) <-chan struct{} {
	t.Helper()
	if opts.Debounce == 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	w, err := New(paths, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan struct{}, 64)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { calls <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return calls
}

func waitCall(t *testing.T, calls <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-calls:
	case <-time.After(deadline):
		t.Fatalf("no change reported within %v after %s", deadline, what)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// configMap lays out dir the way the kubelet's atomic writer does: data in a
// timestamped directory, "..data" pointing at it, and each key a symlink
// through "..data".
type configMap struct {
	t   *testing.T
	dir string
	gen int
}

func newConfigMap(t *testing.T, dir string, files map[string]string) *configMap {
	c := &configMap{t: t, dir: dir}
	c.update(files)
	for name := range files {
		mustDo(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
	}
	return c
}

// update publishes a new generation: write it, swap "..data" atomically by
// renaming a fresh symlink over it, then delete the old generation.
func (c *configMap) update(files map[string]string) {
	t := c.t
	c.gen++
	ts := filepath.Join(c.dir, "..2026_01_01_00_00_0"+string(rune('0'+c.gen)))
	mustDo(t, os.Mkdir(ts, 0o755))
	for name, content := range files {
		writeFile(t, filepath.Join(ts, name), content)
	}
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	tmp := filepath.Join(c.dir, "..data_tmp")
	mustDo(t, os.Symlink(filepath.Base(ts), tmp))
	mustDo(t, os.Rename(tmp, filepath.Join(c.dir, "..data")))
	if old != "" {
		mustDo(t, os.RemoveAll(filepath.Join(c.dir, old)))
	}
}

func TestWatchReportsChanges(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares the tree and returns the path to watch and the
		// change to make once the watcher runs.
		setup func(t *testing.T, dir string) (watched string, change func())
	}{
		{
			name: "a file written in place",
			setup: func(t *testing.T, dir string) (string, func()) {
				p := filepath.Join(dir, "config.yaml")
				writeFile(t, p, "a: 1\n")
				return p, func() { writeFile(t, p, "a: 2\n") }
			},
		},
		{
			name: "a file replaced by rename, as editors save",
			setup: func(t *testing.T, dir string) (string, func()) {
				p := filepath.Join(dir, "config.yaml")
				writeFile(t, p, "a: 1\n")
				return p, func() {
					tmp := filepath.Join(dir, ".config.yaml.swp")
					writeFile(t, tmp, "a: 2\n")
					mustDo(t, os.Rename(tmp, p))
				}
			},
		},
		{
			name: "a file that does not exist yet is created",
			setup: func(t *testing.T, dir string) (string, func()) {
				p := filepath.Join(dir, "config.yaml")
				return p, func() { writeFile(t, p, "a: 1\n") }
			},
		},
		{
			name: "a file deleted",
			setup: func(t *testing.T, dir string) (string, func()) {
				p := filepath.Join(dir, "config.yaml")
				writeFile(t, p, "a: 1\n")
				return p, func() { mustDo(t, os.Remove(p)) }
			},
		},
		{
			name: "a file key of a ConfigMap whose ..data symlink is swapped",
			setup: func(t *testing.T, dir string) (string, func()) {
				cm := newConfigMap(t, dir, map[string]string{"config.yaml": "a: 1\n"})
				return filepath.Join(dir, "config.yaml"), func() {
					cm.update(map[string]string{"config.yaml": "a: 2\n"})
				}
			},
		},
		{
			name: "a ConfigMap mount watched as a directory",
			setup: func(t *testing.T, dir string) (string, func()) {
				cm := newConfigMap(t, dir, map[string]string{"apis.yaml": "a: 1\n"})
				return dir, func() { cm.update(map[string]string{"apis.yaml": "a: 2\n"}) }
			},
		},
		{
			name: "a file added to a watched directory",
			setup: func(t *testing.T, dir string) (string, func()) {
				writeFile(t, filepath.Join(dir, "a.yaml"), "a: 1\n")
				return dir, func() { writeFile(t, filepath.Join(dir, "b.yaml"), "b: 1\n") }
			},
		},
		{
			name: "a file in a watched directory written in place",
			setup: func(t *testing.T, dir string) (string, func()) {
				p := filepath.Join(dir, "a.yaml")
				writeFile(t, p, "a: 1\n")
				return dir, func() { writeFile(t, p, "a: 22\n") }
			},
		},
	}
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"fsnotify", Options{}},
		{"polling only", Options{PollOnly: true, PollInterval: 10 * time.Millisecond}},
	} {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				watched, change := tt.setup(t, dir)
				calls := start(t, []string{watched}, mode.opts)
				change()
				waitCall(t, calls, "the change")
			})
		}
	}
}

func TestWatchKeepsWorkingAfterSwaps(t *testing.T) {
	t.Run("repeated ConfigMap updates of a file key", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "config.yaml")
		cm := newConfigMap(t, dir, map[string]string{"config.yaml": "v0"})
		w, err := New([]string{p}, Options{Debounce: 10 * time.Millisecond})
		mustDo(t, err)
		seen := make(chan string, 64)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- w.Run(ctx, func() {
				b, _ := os.ReadFile(p)
				seen <- string(b)
			})
		}()
		defer func() { cancel(); <-done }()
		for _, v := range []string{"v1", "v2", "v3"} {
			cm.update(map[string]string{"config.yaml": v})
			timeout := time.After(deadline)
			for got := ""; got != v; {
				select {
				case got = <-seen:
				case <-timeout:
					t.Fatalf("no callback saw %q within %v", v, deadline)
				}
			}
		}
	})

	// The next two drive the watcher by hand, without Run, so the test can
	// tell that the new directory itself is watched (an event from inside
	// it arrives) rather than observing a late callback for the swap.
	t.Run("a watched directory removed and recreated", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(root, "catalog")
		mustDo(t, os.Mkdir(dir, 0o755))
		writeFile(t, filepath.Join(dir, "a.yaml"), "a: 1\n")
		w, err := New([]string{dir}, Options{})
		mustDo(t, err)
		defer w.Close()

		mustDo(t, os.RemoveAll(dir))
		mustDo(t, os.Mkdir(dir, 0o755))
		awaitEvent(t, w, dir)
		writeFile(t, filepath.Join(dir, "b.yaml"), "b: 1\n")
		awaitEvent(t, w, filepath.Join(dir, "b.yaml"))
	})
	t.Run("a watched symlink to a directory repointed", func(t *testing.T) {
		root := t.TempDir()
		for _, d := range []string{"v1", "v2"} {
			mustDo(t, os.Mkdir(filepath.Join(root, d), 0o755))
			writeFile(t, filepath.Join(root, d, "a.yaml"), "from: "+d+"\n")
		}
		link := filepath.Join(root, "current")
		mustDo(t, os.Symlink("v1", link))
		w, err := New([]string{link}, Options{})
		mustDo(t, err)
		defer w.Close()

		tmp := filepath.Join(root, "current.tmp")
		mustDo(t, os.Symlink("v2", tmp))
		mustDo(t, os.Rename(tmp, link))
		awaitEvent(t, w, link)
		writeFile(t, filepath.Join(root, "v2", "b.yaml"), "b: 1\n")
		awaitEvent(t, w, filepath.Join(link, "b.yaml"))
	})
}

// awaitEvent feeds w's fsnotify events through w.concerns, as Run does,
// until one named name arrives that concerns w.
func awaitEvent(t *testing.T, w *Watcher, name string) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case ev := <-w.fsw.Events:
			if w.concerns(ev) && filepath.Clean(ev.Name) == name {
				return
			}
		case err := <-w.fsw.Errors:
			t.Fatalf("fsnotify: %v", err)
		case <-timeout:
			t.Fatalf("no event for %s within %v", name, deadline)
		}
	}
}

func TestWatchIgnoresUnrelatedFilesBesideAWatchedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	writeFile(t, p, "a: 1\n")
	w, err := New([]string{p}, Options{})
	mustDo(t, err)
	defer w.Close()

	other := filepath.Join(dir, "other.yaml")
	writeFile(t, other, "b: 1\n")
	if w.concerns(fsnotify.Event{Name: other, Op: fsnotify.Create}) {
		t.Error("creating an unrelated file in the same directory concerns the watcher")
	}
	writeFile(t, p, "a: 2\n")
	if !w.concerns(fsnotify.Event{Name: p, Op: fsnotify.Write}) {
		t.Error("a write to the watched file does not concern the watcher")
	}
}

func TestNewRejectsPathsThatCannotBeWatched(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, "x")
	tests := []struct {
		name  string
		paths []string
	}{
		{"no paths", nil},
		{"missing parent directory", []string{filepath.Join(dir, "missing", "config.yaml")}},
		{"parent is a file", []string{filepath.Join(file, "config.yaml")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.paths, Options{})
			if err == nil {
				w.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestRunReturnsWhenContextIsCancelled(t *testing.T) {
	w, err := New([]string{t.TempDir()}, Options{})
	mustDo(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() {}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
	}
}
