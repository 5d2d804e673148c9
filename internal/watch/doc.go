// Package watch tells its caller when a file, or the files of a directory,
// may have changed, so that configuration, the catalog and rule sets can be
// reloaded without a restart.
//
// It is off the request path: both binaries run one watcher per reloadable
// source, and the callback re-reads, validates and atomically swaps the value
// the request path reads. Watching is done on the parent directories with
// fsnotify, because the two common ways files change in production replace
// the file rather than write it: a mounted Kubernetes ConfigMap swaps its
// "..data" symlink to a new timestamped directory, and editors write a new
// file and rename it over the old one. A per-path fingerprint (resolved
// symlink target, inode, size, mtime) decides whether an event in a parent
// directory concerns a watched path; the same fingerprint drives an optional
// polling fallback for filesystems where inotify misses changes (NFS, some
// FUSE mounts).
package watch
