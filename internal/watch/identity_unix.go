//go:build unix

package watch

import (
	"io/fs"
	"strconv"
	"syscall"
)

// identity names the file behind fi (device and inode), so that a file
// replaced by rename counts as changed even when its size and mtime match.
func identity(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(uint64(st.Ino), 10)
}
