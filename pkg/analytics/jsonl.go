package analytics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// JSONLines writes one JSON object per event per line (AppendJSON's
// format): the sink for a log shipper that tails a file or the container's
// stdout. A batch is written and flushed as a whole.
type JSONLines struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closer io.Closer // nil when the writer is not ours to close
	buf    []byte
	name   string
}

var _ Sink = (*JSONLines)(nil)

// NewJSONLines writes to w. The writer is not closed by Shutdown.
func NewJSONLines(w io.Writer) *JSONLines {
	return &JSONLines{w: bufio.NewWriterSize(w, 64<<10), name: "jsonl"}
}

// OpenJSONLines appends to the file at path, creating it (mode 0640) if
// needed. Shutdown closes it.
func OpenJSONLines(path string) (*JSONLines, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open analytics file: %w", err)
	}
	s := NewJSONLines(f)
	s.closer = f
	return s, nil
}

// Name is "jsonl".
func (s *JSONLines) Name() string { return s.name }

// Export writes the batch and flushes it.
func (s *JSONLines) Export(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errors.New("export to jsonl: sink is shut down")
	}
	for i := range events {
		s.buf = AppendJSON(s.buf[:0], &events[i])
		s.buf = append(s.buf, '\n')
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("export to jsonl: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("export to jsonl: flush: %w", err)
	}
	return nil
}

// Shutdown flushes, and closes the file if the sink opened it.
func (s *JSONLines) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	err := s.w.Flush()
	if s.closer != nil {
		err = errors.Join(err, s.closer.Close())
	}
	s.w = nil
	if err != nil {
		return fmt.Errorf("shut down jsonl sink: %w", err)
	}
	return nil
}
