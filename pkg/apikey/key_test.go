package apikey

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// scannerRE is the expression documented for secret scanners.
var scannerRE = regexp.MustCompile(`^pcl_(live|test)_[0-9A-Za-z]{49}$`)

func seeded(seed byte) io.Reader {
	return mrand.NewChaCha8([32]byte{seed})
}

func TestGenerateMakesKeysInTheDocumentedFormat(t *testing.T) {
	for _, env := range []string{EnvLive, EnvTest} {
		t.Run(env, func(t *testing.T) {
			k, err := Generate(seeded(1), env)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			s := k.Plaintext()
			if len(s) != Len {
				t.Errorf("len = %d, want %d", len(s), Len)
			}
			if !scannerRE.MatchString(s) {
				t.Errorf("key %q does not match the scanner expression", s)
			}
			if !strings.HasPrefix(s, "pcl_"+env+"_") {
				t.Errorf("key %q lacks prefix pcl_%s_", s, env)
			}
			if k.Env() != env {
				t.Errorf("Env() = %q, want %q", k.Env(), env)
			}
			if err := CheckFormat(s); err != nil {
				t.Errorf("CheckFormat(generated) = %v", err)
			}
			if k.Hash() != sha256.Sum256([]byte(s)) {
				t.Error("Key.Hash is not the SHA-256 of the key string")
			}
		})
	}
}

func TestGenerateIsDeterministicForAReaderAndDiffersAcrossDraws(t *testing.T) {
	a, _ := Generate(seeded(7), EnvLive)
	b, _ := Generate(seeded(7), EnvLive)
	if a.Plaintext() != b.Plaintext() {
		t.Error("same randomness gave different keys")
	}
	seen := make(map[string]bool)
	for range 1000 {
		k, err := Generate(rand.Reader, EnvLive)
		if err != nil {
			t.Fatal(err)
		}
		if seen[k.Plaintext()] {
			t.Fatalf("duplicate key after %d draws", len(seen))
		}
		seen[k.Plaintext()] = true
	}
}

func TestGenerateRejectsBytesThatWouldBiasDigits(t *testing.T) {
	// 100 bytes of 0xff (all rejected), then zeros: every digit is '0'.
	r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{0xff}, 100)), bytes.NewReader(make([]byte, 4096)))
	k, err := Generate(r, EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	want := "pcl_test_" + strings.Repeat("0", randomLen)
	if got := k.Plaintext()[:len(want)]; got != want {
		t.Errorf("random part = %q, want %q", got, want)
	}
}

func TestGenerateDigitsAreRoughlyUniform(t *testing.T) {
	counts := make(map[byte]int)
	r := seeded(3)
	const keys = 2000
	for range keys {
		k, err := Generate(r, EnvLive)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []byte(k.Plaintext()[9 : 9+randomLen]) {
			counts[c]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct digits, want 62", len(counts))
	}
	mean := float64(keys*randomLen) / 62
	for c, n := range counts {
		if float64(n) < mean*0.85 || float64(n) > mean*1.15 {
			t.Errorf("digit %q drawn %d times, mean %.0f", c, n, mean)
		}
	}
}

func TestGenerateFailures(t *testing.T) {
	tests := []struct {
		name string
		r    io.Reader
		env  string
		want string
	}{
		{"unknown environment", seeded(1), "prod", `unknown environment "prod"`},
		{"empty environment", seeded(1), "", `unknown environment ""`},
		{"short randomness", bytes.NewReader(make([]byte, 10)), EnvLive, "read randomness: unexpected EOF"},
		{"failing reader", errReader{}, EnvLive, "read randomness: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Generate(tt.r, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if k.Plaintext() != "" {
				t.Error("a failed Generate returned a key")
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

// fixedKey builds a Portcullis key from a random part, with a correct
// checksum.
func fixedKey(env, random string) string {
	b := []byte("pcl_" + env + "_" + random)
	return string(appendChecksum(b, crc32.ChecksumIEEE(b)))
}

func TestCheckFormat(t *testing.T) {
	good := fixedKey(EnvLive, strings.Repeat("aZ9", 14)+"x")
	tests := []struct {
		name string
		key  string
		want error
	}{
		{"generated key", good, nil},
		{"test key", fixedKey(EnvTest, strings.Repeat("0", 43)), nil},
		{"migrated key of another shape", "3f0c1dc6b7a4c8b8ce0a8e1e2b0f6d1e", nil},
		{"another vendor's prefix", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", nil},
		{"pcl with an unknown environment", "pcl_prod_whatever", nil},
		{"pcl alone", "pcl_", nil},
		{"empty", "", ErrEmpty},
		{"truncated", good[:Len-1], ErrMalformed},
		{"one character more", good + "a", ErrMalformed},
		{"prefix only", "pcl_live_", ErrMalformed},
		{"hyphen in the random part", good[:20] + "-" + good[21:], ErrMalformed},
		{"non-ASCII in the checksum", good[:Len-2] + "é", ErrMalformed},
		{"wrong checksum", good[:Len-1] + flip(good[Len-1]), ErrChecksum},
		{"typo in the random part", good[:30] + flip(good[30]) + good[31:], ErrChecksum},
		{"two characters swapped", good[:20] + good[21:22] + good[20:21] + good[22:], ErrChecksum},
		{"environment relabelled", "pcl_test_" + good[9:], ErrChecksum},
		{"checksum over 32 bits", good[:Len-6] + "zzzzzz", ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFormat(tt.key)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckFormat = %v, want %v", err, tt.want)
			}
			if err != nil && !errors.Is(err, identity.ErrInvalid) {
				t.Errorf("%v does not wrap identity.ErrInvalid", err)
			}
		})
	}
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestCheckFormatCatchesEverySingleCharacterTypo(t *testing.T) {
	k, err := Generate(seeded(9), EnvLive)
	if err != nil {
		t.Fatal(err)
	}
	s := k.Plaintext()
	for i := len("pcl_live_"); i < Len; i++ {
		for j := 0; j < len(base62); j++ {
			if base62[j] == s[i] {
				continue
			}
			typo := s[:i] + base62[j:j+1] + s[i+1:]
			if err := CheckFormat(typo); !errors.Is(err, ErrChecksum) {
				t.Fatalf("typo at %d (%q for %q) not caught: %v", i, base62[j], s[i], err)
			}
		}
	}
}

func TestKeyNeverFormatsItsPlaintext(t *testing.T) {
	k, err := Generate(seeded(5), EnvLive)
	if err != nil {
		t.Fatal(err)
	}
	secret := k.Plaintext()[9:]
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("made", "key", k)
	js, err := json.Marshal(struct{ K Key }{k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":          fmt.Sprintf("%v", k),
		"%+v":         fmt.Sprintf("%+v", k),
		"%#v":         fmt.Sprintf("%#v", k),
		"%s":          fmt.Sprintf("%s", k),
		"%q":          fmt.Sprintf("%q", k),
		"%x":          fmt.Sprintf("%x", k),
		"%d":          fmt.Sprintf("%d", k),
		"ptr":         fmt.Sprintf("%v", &k),
		"in a struct": fmt.Sprintf("%+v", struct{ K Key }{k}),
		"slog":        logBuf.String(),
		"json":        string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s printed the key: %s", name, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s = %q, want a redaction marker", name, out)
		}
	}
}

func TestHashIsSHA256OfTheWholeString(t *testing.T) {
	for _, s := range []string{"", "k", "pcl_live_x", strings.Repeat("x", 5000)} {
		if Hash(s) != sha256.Sum256([]byte(s)) {
			t.Errorf("Hash(%d bytes) differs from sha256.Sum256", len(s))
		}
	}
}

func BenchmarkCheckFormat(b *testing.B) {
	k, _ := Generate(seeded(1), EnvLive)
	s := k.Plaintext()
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckFormat(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	k, _ := Generate(seeded(1), EnvLive)
	s := k.Plaintext()
	b.ReportAllocs()
	for b.Loop() {
		Hash(s)
	}
}
