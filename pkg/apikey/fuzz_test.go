package apikey

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

// referenceCheckFormat is CheckFormat written the slow, obvious way: the
// scanners' regular expression, then the checksum encoded and compared as
// a string.
func referenceCheckFormat(key string) error {
	if key == "" {
		return ErrEmpty
	}
	if !strings.HasPrefix(key, "pcl_live_") && !strings.HasPrefix(key, "pcl_test_") {
		return nil
	}
	if !scannerRE.MatchString(key) {
		return ErrMalformed
	}
	body, sum := key[:len(key)-6], key[len(key)-6:]
	n := crc32.ChecksumIEEE([]byte(body))
	enc := ""
	for range 6 {
		enc = string(base62[n%62]) + enc
		n /= 62
	}
	if enc != sum {
		return ErrChecksum
	}
	return nil
}

func FuzzCheckFormat(f *testing.F) {
	k, _ := Generate(seeded(1), EnvLive)
	good := k.Plaintext()
	for _, s := range []string{good, "", "pcl_", "pcl_live_", "pcl_test_" + good[9:], good[:Len-1], good + "0", "ghp_x", "pcl_prod_abc", good[:Len-6] + "zzzzzz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, want := CheckFormat(key), referenceCheckFormat(key)
		if !errors.Is(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("CheckFormat(%q) = %v, reference says %v", key, got, want)
		}
		if got == nil && IsPortcullis(key) && len(key) != Len {
			t.Fatalf("accepted a Portcullis key of length %d", len(key))
		}
	})
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.5", "198.51.100.9, 10.0.0.5", uint8(1))
	f.Add("[2001:db8::1]:443", "", uint8(0))
	f.Add("10.0.0.5", ",,", uint8(2))
	f.Add("fe80::1%eth0", "::ffff:1.2.3.4:80, x", uint8(1))
	f.Add("", "1.2.3.4", uint8(3))
	f.Fuzz(func(t *testing.T, source, xff string, hops uint8) {
		got, err := ClientAddr(source, xff, int(hops))
		if err != nil {
			return
		}
		if !got.IsValid() || got.Is4In6() || got.Zone() != "" {
			t.Fatalf("ClientAddr = %v: want a valid, unmapped, zoneless address", got)
		}
		// The answer is the source or one of the xff entries, never
		// something else.
		candidates := append([]string{source}, strings.Split(xff, ",")...)
		if hops == 0 {
			candidates = candidates[:1]
		}
		for _, c := range candidates {
			if a, ok := parseAddr(strings.Trim(c, " \t")); ok && a == got {
				return
			}
		}
		t.Fatalf("ClientAddr(%q, %q, %d) = %v, which is neither the source nor an entry", source, xff, hops, got)
	})
}

// Example of the format check refusing a mistyped key without a lookup,
// and passing a key made by another system.
func ExampleCheckFormat() {
	k, _ := Generate(seeded(2), EnvLive)
	s := k.Plaintext()
	typo := s[:20] + flip(s[20]) + s[21:]
	fmt.Println(CheckFormat(s))
	fmt.Println(errors.Is(CheckFormat(typo), ErrChecksum))
	fmt.Println(CheckFormat("legacy-3f0c1dc6b7a4c8b8"))
	// Output:
	// <nil>
	// true
	// <nil>
}

func ExampleClientAddr() {
	// One load balancer in front of an Istio gateway
	// (numTrustedProxies: 1): it appended the client, the gateway
	// appended the load balancer.
	a, _ := ClientAddr("10.0.0.5", "6.6.6.6, 198.51.100.9, 10.0.0.5", 1)
	fmt.Println(a)
	// Output: 198.51.100.9
}
