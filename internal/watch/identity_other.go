//go:build !unix

package watch

import "io/fs"

// identity is unavailable here; size, mtime and the symlink target still
// tell most replacements apart.
func identity(fs.FileInfo) string { return "" }
