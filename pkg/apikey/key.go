package apikey

import (
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Prefix starts every key Portcullis generates.
const Prefix = "pcl_"

// Environments a key is labelled for. The label helps people and scanners;
// authz trusts only the catalog's keyType.
const (
	EnvLive = "live"
	EnvTest = "test"
)

const (
	randomLen   = 43 // 43 base62 digits hold 256.03 bits
	checksumLen = 6  // 62^6 > 2^32, so any CRC-32 fits
	// Len is the length of every Portcullis key: "pcl_" + env + "_" +
	// random + checksum (the two environments have the same length).
	Len = len(Prefix) + len(EnvLive) + 1 + randomLen + checksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Format errors. Each wraps identity.ErrInvalid, because a malformed key is
// a refusal of the credential, not a failure to decide; each message is
// safe to log (it never holds the key).
var (
	// ErrMalformed is a key that carries a Portcullis prefix but has the
	// wrong length or a character outside base62.
	ErrMalformed = fmt.Errorf("malformed API key (Portcullis format): %w", identity.ErrInvalid)
	// ErrChecksum is a Portcullis key whose checksum does not match: a
	// typo, a truncated copy or a made-up key.
	ErrChecksum = fmt.Errorf("API key checksum mismatch (Portcullis format): %w", identity.ErrInvalid)
	// ErrEmpty is an empty key.
	ErrEmpty = fmt.Errorf("empty API key: %w", identity.ErrInvalid)
)

// Key is a newly generated API key. It formats as a redacted value under
// every fmt verb and in slog, so that it cannot be logged by accident;
// Plaintext is the one way to read it.
type Key struct {
	s string
}

// Generate makes a new key labelled env (EnvLive or EnvTest), drawing its
// randomness from r, which must be a cryptographically secure source
// (crypto/rand.Reader) outside tests.
func Generate(r io.Reader, env string) (Key, error) {
	if env != EnvLive && env != EnvTest {
		return Key{}, fmt.Errorf("generate API key: unknown environment %q (want %s or %s)", env, EnvLive, EnvTest)
	}
	b := make([]byte, 0, Len)
	b = append(b, Prefix...)
	b = append(b, env...)
	b = append(b, '_')
	// Rejection sampling: bytes 248..255 would make some digits likelier
	// than others (256 is not a multiple of 62), so they are drawn again.
	var buf [64]byte
	for len(b) < len(Prefix)+len(env)+1+randomLen {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return Key{}, fmt.Errorf("generate API key: read randomness: %w", err)
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			b = append(b, base62[c%62])
			if len(b) == len(Prefix)+len(env)+1+randomLen {
				break
			}
		}
	}
	b = appendChecksum(b, crc32.ChecksumIEEE(b))
	return Key{s: string(b)}, nil
}

func appendChecksum(b []byte, sum uint32) []byte {
	var d [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		d[i] = base62[sum%62]
		sum /= 62
	}
	return append(b, d[:]...)
}

// Plaintext is the key itself, to show its owner once.
func (k Key) Plaintext() string { return k.s }

// Hash is the key's SHA-256, as the catalog's apiKeys[].sha256 holds it.
func (k Key) Hash() [32]byte { return Hash(k.s) }

// Env is the environment the key is labelled for.
func (k Key) Env() string {
	rest, _ := strings.CutPrefix(k.s, Prefix)
	env, _, _ := strings.Cut(rest, "_")
	return env
}

// String redacts the key, keeping the prefix that says what it is.
func (k Key) String() string {
	if k.s == "" {
		return "apikey(empty)"
	}
	return Prefix + k.Env() + "_[REDACTED]"
}

// GoString redacts the key under %#v.
func (k Key) GoString() string { return "apikey.Key(" + k.String() + ")" }

// Format redacts the key under every verb, including %x and %q, which
// would otherwise print a Stringer's fields.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// LogValue redacts the key in slog.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText redacts the key in encoding/json and friends.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Hash is the SHA-256 of the whole key string, the catalog's lookup key for
// any key, Portcullis's or migrated.
func Hash(key string) [32]byte {
	return sha256.Sum256([]byte(key))
}

// CheckFormat refuses a key that claims Portcullis's format (it begins
// "pcl_live_" or "pcl_test_") but is not well formed: wrong length,
// a character outside base62, or a checksum that does not match. A key
// without that prefix was made elsewhere and passes: its lookup decides.
// Every error wraps identity.ErrInvalid and is one of ErrEmpty,
// ErrMalformed and ErrChecksum.
func CheckFormat(key string) error {
	if key == "" {
		return ErrEmpty
	}
	if !isPortcullis(key) {
		return nil
	}
	if len(key) != Len {
		return ErrMalformed
	}
	body := key[Len-randomLen-checksumLen:]
	for i := 0; i < len(body); i++ {
		if digit(body[i]) < 0 {
			return ErrMalformed
		}
	}
	var want uint64
	for i := Len - checksumLen; i < Len; i++ {
		want = want*62 + uint64(digit(key[i]))
	}
	if want != uint64(crc32.ChecksumIEEE([]byte(key[:Len-checksumLen]))) {
		return ErrChecksum
	}
	return nil
}

// IsPortcullis reports whether key claims Portcullis's format, and so is
// held to it by CheckFormat.
func IsPortcullis(key string) bool { return isPortcullis(key) }

func isPortcullis(key string) bool {
	return strings.HasPrefix(key, Prefix+EnvLive+"_") || strings.HasPrefix(key, Prefix+EnvTest+"_")
}

// digit is c's value in base62, or -1.
func digit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}
