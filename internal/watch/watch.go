package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// DefaultDebounce is long enough to fold a ConfigMap swap or an editor's
	// write-rename-chmod sequence into one reload, short enough that an
	// operator does not notice it.
	DefaultDebounce = 100 * time.Millisecond

	// FallbackPollInterval is used when fsnotify cannot be set up at all
	// (inotify instance or watch limits reached) and Options.PollInterval is
	// not set: reloads still happen, only later.
	FallbackPollInterval = 5 * time.Second

	// maxBurstFactor bounds how long a continuous stream of changes can
	// postpone the callback: at most maxBurstFactor debounce periods after
	// the first change of a burst.
	maxBurstFactor = 10
)

// Options tune a Watcher. The zero value watches with fsnotify only and
// debounces with DefaultDebounce.
type Options struct {
	// Debounce is how long the watched paths must stay quiet before the
	// callback runs; a burst of changes gives one callback. Zero means
	// DefaultDebounce.
	Debounce time.Duration

	// PollInterval, when positive, also compares the fingerprint of every
	// watched path at this interval, for filesystems where inotify misses
	// changes. Zero disables polling unless fsnotify is unavailable.
	PollInterval time.Duration

	// PollOnly skips fsnotify entirely, for filesystems known not to
	// deliver inotify events. PollInterval (or FallbackPollInterval) applies.
	PollOnly bool

	// Logger receives watch failures, which never stop the watcher. Nil
	// discards them.
	Logger *slog.Logger
}

// Watcher reports changes to a fixed set of paths. A path may be a file or a
// directory (whose direct entries are watched, not its subdirectories), and
// need not exist yet as long as its parent directory does.
type Watcher struct {
	paths    []string // absolute and clean, as given
	opts     Options
	log      *slog.Logger
	fsw      *fsnotify.Watcher // nil when polling only
	dirs     map[string]string // watched directory target -> identity when added
	baseline map[string]string // path -> fingerprint at the last callback
}

// New sets up watches on paths (and their parent directories) before it
// returns, so a caller that loads its files after New and then calls Run
// cannot miss a change made in between. The caller must call Run or Close.
func New(paths []string, opts Options) (*Watcher, error) {
	if len(paths) == 0 {
		return nil, errors.New("watch: no paths to watch")
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		opts:     opts,
		log:      log,
		dirs:     make(map[string]string),
		baseline: make(map[string]string),
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("watch: resolve %q: %w", p, err)
		}
		parent := filepath.Dir(abs)
		if fi, err := os.Stat(parent); err != nil {
			return nil, fmt.Errorf("watch: parent directory of %q: %w", p, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("watch: parent of %q is not a directory", p)
		}
		w.paths = append(w.paths, abs)
	}

	if !opts.PollOnly {
		if err := w.startNotify(); err != nil {
			log.Warn("fsnotify unavailable, falling back to polling",
				slog.Any("paths", w.paths), slog.Any("error", err))
			if w.fsw != nil {
				_ = w.fsw.Close()
				w.fsw = nil
			}
		}
	}
	if w.fsw == nil && w.opts.PollInterval <= 0 {
		w.opts.PollInterval = FallbackPollInterval
	}
	w.snapshot()
	return w, nil
}

// startNotify watches every parent directory and every target that is a
// directory now.
func (w *Watcher) startNotify() error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("create fsnotify watcher: %w", err)
	}
	w.fsw = fsw
	seen := make(map[string]bool)
	for _, p := range w.paths {
		parent := filepath.Dir(p)
		if seen[parent] {
			continue
		}
		seen[parent] = true
		if err := fsw.Add(parent); err != nil {
			return fmt.Errorf("watch directory %q: %w", parent, err)
		}
	}
	w.ensureDirWatches()
	return nil
}

// ensureDirWatches (re)adds the watch on each target that is a directory
// when the directory behind the path is new: created after New, recreated,
// or a symlink now pointing elsewhere. An inotify watch follows the inode,
// not the name, so without this a replaced directory would go silent.
func (w *Watcher) ensureDirWatches() {
	if w.fsw == nil {
		return
	}
	watching := make(map[string]bool)
	for _, p := range w.fsw.WatchList() {
		watching[p] = true
	}
	for _, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			delete(w.dirs, p)
			continue
		}
		// Inode numbers are reused, so a recreated directory can look like
		// the old one; fsnotify dropping the watch is the sure sign.
		id := identity(fi) + "|" + resolved(p)
		if prev, ok := w.dirs[p]; ok && prev == id && watching[p] {
			continue
		}
		_ = w.fsw.Remove(p) // the old watch may already be gone with its inode
		if err := w.fsw.Add(p); err != nil {
			w.log.Warn("cannot watch directory; relying on its parent and polling",
				slog.String("path", p), slog.Any("error", err))
			delete(w.dirs, p)
			continue
		}
		w.dirs[p] = id
	}
}

// Close releases the watcher's resources. Run calls it on return; call it
// directly only when Run is never called.
func (w *Watcher) Close() error {
	if w.fsw == nil {
		return nil
	}
	err := w.fsw.Close()
	if err != nil {
		return fmt.Errorf("watch: close: %w", err)
	}
	return nil
}

// Run calls onChange, on Run's goroutine, once per burst of changes to the
// watched paths, until ctx is done; it then closes the watcher and returns
// nil. A change made while onChange runs leads to another call. onChange
// must re-read the paths itself: it is told that something may have
// changed, not what, and spurious calls are possible.
func (w *Watcher) Run(ctx context.Context, onChange func()) error {
	defer func() { _ = w.Close() }()

	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	var poll <-chan time.Time
	if w.opts.PollInterval > 0 {
		t := time.NewTicker(w.opts.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	d := newDebouncer(w.opts.Debounce, maxBurstFactor*w.opts.Debounce)
	defer d.stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if w.concerns(ev) {
				d.mark(time.Now())
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.log.Warn("file watch error", slog.Any("paths", w.paths), slog.Any("error", err))
			// Overflow means events were lost: assume a change.
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				d.mark(time.Now())
			}
		case <-poll:
			if w.changed() {
				d.mark(time.Now())
			}
		case <-d.C():
			d.fired()
			w.ensureDirWatches()
			w.snapshot()
			onChange()
		}
	}
}

// concerns reports whether ev may have changed a watched path. Events that
// name a watched path, or an entry of a watched directory, do; any other
// event in a parent directory does only if it changed a fingerprint, which
// is how a ConfigMap's "..data" swap is told apart from unrelated files.
func (w *Watcher) concerns(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if !ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) {
		w.ensureDirWatches()
	}
	for _, p := range w.paths {
		if name == p {
			return true
		}
		if _, isDir := w.dirs[p]; isDir && filepath.Dir(name) == p {
			return true
		}
	}
	return w.changed()
}

// snapshot records the fingerprints the next comparison is made against.
func (w *Watcher) snapshot() {
	for _, p := range w.paths {
		w.baseline[p] = fingerprint(p)
	}
}

// changed reports whether any watched path's fingerprint differs from the
// last snapshot.
func (w *Watcher) changed() bool {
	for _, p := range w.paths {
		if fingerprint(p) != w.baseline[p] {
			return true
		}
	}
	return false
}

// fingerprint describes path, and for a directory each of its entries,
// following symlinks: what it resolves to, its identity, mode, size and
// modification time. Two equal fingerprints mean nothing a reload would see
// has changed, up to the filesystem's mtime granularity.
func fingerprint(path string) string {
	var b strings.Builder
	fi := describe(&b, path)
	if fi != nil && fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			fmt.Fprintf(&b, "readdir error: %v\n", err)
		}
		for _, e := range entries {
			describe(&b, filepath.Join(path, e.Name()))
		}
	}
	return b.String()
}

func describe(b *strings.Builder, path string) os.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		fmt.Fprintf(b, "%s missing\n", path)
		return nil
	}
	fmt.Fprintf(b, "%s -> %s %s %d %d %s\n", path, resolved(path), fi.Mode(), fi.Size(),
		fi.ModTime().UnixNano(), identity(fi))
	return fi
}

// resolved is path with every symlink evaluated, or "" when that fails.
func resolved(path string) string {
	r, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ""
	}
	return r
}

// Watch watches paths with the given debounce and calls onChange after each
// burst of changes until ctx is done. It is New followed by Run for callers
// that do not need New's guarantee about changes made before Run starts.
func Watch(ctx context.Context, paths []string, debounce time.Duration, onChange func()) error {
	w, err := New(paths, Options{Debounce: debounce})
	if err != nil {
		return err
	}
	return w.Run(ctx, onChange)
}
