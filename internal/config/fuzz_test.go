package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecode holds the decoder to its contract on any input: it never
// panics, and every error it returns is a *FileError naming the file, so a
// reload failure can always be located.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"",
		"server:\n  grpcAddr: 127.0.0.1:9001\n  tls:\n    certFile: c.pem\n    keyFile: k.pem\n",
		"log: {level: debug, format: text}\ntags: [a, b]\nworkers: 8\n",
		"server:\n  shutdownGrace: soon\n",
		"bogus: 1\n",
		"workers: 1\n---\nworkers: 2\n",
		"store:\n  url: redis://r\n  timeout: 1s\n",
		"server: [1, 2\n",
		"a: &x {b: *x}\n",
	} {
		f.Add([]byte(seed))
	}
	const name = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaults()
		err := decode(name, data, &cfg)
		if err == nil {
			return
		}
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			var fe *FileError
			if !errors.As(e, &fe) || fe.File != name || fe.Line < 0 {
				t.Fatalf("decode error %q (%T) does not locate the problem in %s", e, e, name)
			}
			if !strings.HasPrefix(e.Error(), name+":") {
				t.Fatalf("decode error %q does not start with the file name", e)
			}
		}
	})
}
