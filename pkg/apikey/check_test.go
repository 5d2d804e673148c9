package apikey

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	v4 := netip.MustParseAddr("203.0.113.7")
	tests := []struct {
		name    string
		key     catalog.CompiledAPIKey
		client  netip.Addr
		referer string
		want    error
	}{
		{"unrestricted key", catalog.CompiledAPIKey{}, netip.Addr{}, "", nil},
		{"before expiry", catalog.CompiledAPIKey{Expires: now.Add(time.Second)}, v4, "", nil},
		{"at expiry", catalog.CompiledAPIKey{Expires: now}, v4, "", ErrExpired},
		{"after expiry", catalog.CompiledAPIKey{Expires: now.Add(-time.Hour)}, v4, "", ErrExpired},
		{"expiry checked before address", catalog.CompiledAPIKey{Expires: now, AllowedIPs: prefixes("10.0.0.0/8")}, v4, "", ErrExpired},
		{"address inside a CIDR", catalog.CompiledAPIKey{AllowedIPs: prefixes("10.0.0.0/8", "203.0.113.0/24")}, v4, "", nil},
		{"address outside every CIDR", catalog.CompiledAPIKey{AllowedIPs: prefixes("10.0.0.0/8")}, v4, "", ErrAddressNotAllowed},
		{"single host", catalog.CompiledAPIKey{AllowedIPs: prefixes("203.0.113.7/32")}, v4, "", nil},
		{"IPv4-mapped client against an IPv4 CIDR", catalog.CompiledAPIKey{AllowedIPs: prefixes("203.0.113.0/24")}, netip.MustParseAddr("::ffff:203.0.113.7"), "", nil},
		{"zoned IPv6 client", catalog.CompiledAPIKey{AllowedIPs: prefixes("fe80::/10")}, netip.MustParseAddr("fe80::1%eth0"), "", nil},
		{"IPv6 client against an IPv4 CIDR", catalog.CompiledAPIKey{AllowedIPs: prefixes("0.0.0.0/0")}, netip.MustParseAddr("2001:db8::1"), "", ErrAddressNotAllowed},
		{"unknown client with CIDRs", catalog.CompiledAPIKey{AllowedIPs: prefixes("0.0.0.0/0")}, netip.Addr{}, "", ErrAddressUnknown},
		{"exact referrer", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://app.example.com/"}}, v4, "https://app.example.com/", nil},
		{"exact referrer differs", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://app.example.com/"}}, v4, "https://app.example.com/x", ErrReferrerNotAllowed},
		{"prefix referrer", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://app.example.com/*"}}, v4, "https://app.example.com/page?q=1", nil},
		{"prefix referrer, origin only", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://app.example.com/*"}}, v4, "https://app.example.com/", nil},
		{"prefix referrer, other host", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://app.example.com/*"}}, v4, "https://app.example.com.evil.test/", ErrReferrerNotAllowed},
		{"second pattern matches", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://a.test/*", "https://b.test/*"}}, v4, "https://b.test/x", nil},
		{"star alone matches any referrer", catalog.CompiledAPIKey{AllowedReferrers: []string{"*"}}, v4, "whatever", nil},
		{"star alone still needs a referrer", catalog.CompiledAPIKey{AllowedReferrers: []string{"*"}}, v4, "", ErrNoReferrer},
		{"no referrer", catalog.CompiledAPIKey{AllowedReferrers: []string{"https://app.example.com/*"}}, v4, "", ErrNoReferrer},
		{"address checked before referrer", catalog.CompiledAPIKey{AllowedIPs: prefixes("10.0.0.0/8"), AllowedReferrers: []string{"x"}}, v4, "", ErrAddressNotAllowed},
		{"every restriction passes", catalog.CompiledAPIKey{Expires: now.Add(time.Hour), AllowedIPs: prefixes("203.0.113.0/24"), AllowedReferrers: []string{"https://app.example.com/*"}}, v4, "https://app.example.com/a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(&tt.key, now, tt.client, tt.referer)
			if (tt.want == nil) != (err == nil) || !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckErrorClasses(t *testing.T) {
	if !errors.Is(ErrExpired, identity.ErrInvalid) || errors.Is(ErrExpired, ErrRestricted) {
		t.Error("an expired key must be an invalid credential, not a restricted one")
	}
	for _, err := range []error{ErrAddressNotAllowed, ErrAddressUnknown, ErrNoReferrer, ErrReferrerNotAllowed} {
		if !errors.Is(err, ErrRestricted) || errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%v: want ErrRestricted only", err)
		}
	}
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		name    string
		source  string
		xff     string
		hops    int
		want    string
		wantErr string
	}{
		{"source only", "203.0.113.7", "", 0, "203.0.113.7", ""},
		{"source with port", "203.0.113.7:51234", "", 0, "203.0.113.7", ""},
		{"IPv6 source with port", "[2001:db8::1]:443", "", 0, "2001:db8::1", ""},
		{"IPv6 source", "2001:db8::1", "", 0, "2001:db8::1", ""},
		{"mapped source is unmapped", "::ffff:203.0.113.7", "", 0, "203.0.113.7", ""},
		{"zone dropped", "fe80::1%eth0", "", 0, "fe80::1", ""},
		{"xff ignored without trusted hops", "10.0.0.5", "1.2.3.4", 0, "10.0.0.5", ""},
		{"bad xff ignored without trusted hops", "10.0.0.5", "garbage", 0, "10.0.0.5", ""},
		// Envoy docs, use_remote_address true, one trusted proxy: the
		// proxy appended the client, Envoy appended the proxy.
		{"one trusted hop", "10.0.0.5", "198.51.100.9, 10.0.0.5", 1, "198.51.100.9", ""},
		{"one trusted hop, client spoofs", "10.0.0.5", "1.1.1.1, 198.51.100.9, 10.0.0.5", 1, "198.51.100.9", ""},
		// use_remote_address false: nothing appended by Envoy; the peer
		// wrote the rightmost entry.
		{"one trusted hop, Envoy appends nothing", "10.0.0.6", "198.51.100.9, 10.0.0.5", 1, "198.51.100.9", ""},
		{"two trusted hops", "10.0.0.6", "1.1.1.1,198.51.100.9,10.0.0.4,10.0.0.6", 2, "198.51.100.9", ""},
		{"fewer entries than hops falls back to source", "10.0.0.5", "10.0.0.5", 1, "10.0.0.5", ""},
		{"empty xff falls back to source", "10.0.0.5", "", 2, "10.0.0.5", ""},
		{"blank xff falls back to source", "10.0.0.5", "  ", 1, "10.0.0.5", ""},
		{"entry with port", "10.0.0.5", "198.51.100.9:7000, 10.0.0.5", 1, "198.51.100.9", ""},
		{"IPv6 entry with port", "10.0.0.5", "[2001:db8::9]:7000,10.0.0.5", 1, "2001:db8::9", ""},
		{"tabs and spaces trimmed", "10.0.0.5", "\t198.51.100.9 \t,10.0.0.5", 1, "198.51.100.9", ""},
		{"garbage left of the chosen entry is never read", "10.0.0.5", "<script>, 198.51.100.9, 10.0.0.5", 1, "198.51.100.9", ""},
		{"chosen entry is garbage", "10.0.0.5", "unknown, 10.0.0.5", 1, "", "x-forwarded-for entry is not an IP"},
		{"chosen entry is empty", "10.0.0.5", ",10.0.0.5", 1, "", "x-forwarded-for entry is not an IP"},
		{"bad source", "unix:/run/envoy.sock", "", 0, "", "source address is not an IP"},
		{"empty source", "", "", 0, "", "source address is not an IP"},
		{"negative hops", "10.0.0.5", "", -1, "", "negative trusted hop count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ClientAddr(tt.source, tt.xff, tt.hops)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("ClientAddr = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	k := &catalog.CompiledAPIKey{
		Expires:          time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		AllowedIPs:       prefixes("10.0.0.0/8", "203.0.113.0/24"),
		AllowedReferrers: []string{"https://a.test/*", "https://app.example.com/*"},
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		client, err := ClientAddr("10.0.0.5", "198.51.100.9, 203.0.113.8, 10.0.0.5", 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := Check(k, now, client, "https://app.example.com/x"); err != nil {
			b.Fatal(err)
		}
	}
}
