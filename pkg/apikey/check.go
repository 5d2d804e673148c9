package apikey

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// ErrRestricted wraps every refusal by a key's own restrictions (client
// address, referrer): the key is genuine but may not be used from here.
// Authz tells it from identity.ErrInvalid to answer 403 rather than 401.
var ErrRestricted = errors.New("API key restricted")

// Check errors, one per reason, each safe to log.
var (
	// ErrExpired is a key past its expiry; like an expired token it is no
	// longer a credential, so it wraps identity.ErrInvalid.
	ErrExpired = fmt.Errorf("API key expired: %w", identity.ErrInvalid)
	// ErrAddressNotAllowed is a client address outside the key's CIDRs.
	ErrAddressNotAllowed = fmt.Errorf("client address not allowed for this API key: %w", ErrRestricted)
	// ErrAddressUnknown is a key with CIDRs and no client address to check
	// them against.
	ErrAddressUnknown = fmt.Errorf("client address unknown and the API key allows only some addresses: %w", ErrRestricted)
	// ErrNoReferrer is a key with referrer patterns and a request without
	// a Referer header.
	ErrNoReferrer = fmt.Errorf("API key requires a Referer header: %w", ErrRestricted)
	// ErrReferrerNotAllowed is a Referer matching none of the key's
	// patterns.
	ErrReferrerNotAllowed = fmt.Errorf("referrer not allowed for this API key: %w", ErrRestricted)
)

// Check applies a key's restrictions to one request: expiry against now,
// allowed CIDRs against client (see ClientAddr), allowed referrers against
// the Referer header ("" when absent). The first failing check decides, in
// that order; its error is one of the Err values above.
//
// Referrer patterns are compared with the Referer byte for byte; a pattern
// ending in "*" matches any Referer that begins with the rest of it. Write
// host patterns with a path ("https://app.example.com/*"), since
// "https://app.example.com*" also matches https://app.example.com.evil.test.
// A Referer is sent by browsers and forged at will by anything else: the
// check keeps a key pasted into another site's page from working there, not
// a determined caller out.
func Check(k *catalog.CompiledAPIKey, now time.Time, client netip.Addr, referer string) error {
	if !k.Expires.IsZero() && !now.Before(k.Expires) {
		return ErrExpired
	}
	if len(k.AllowedIPs) > 0 {
		if !client.IsValid() {
			return ErrAddressUnknown
		}
		client = client.Unmap().WithZone("")
		allowed := false
		for _, p := range k.AllowedIPs {
			if p.Contains(client) {
				allowed = true
				break
			}
		}
		if !allowed {
			return ErrAddressNotAllowed
		}
	}
	if len(k.AllowedReferrers) > 0 {
		if referer == "" {
			return ErrNoReferrer
		}
		if !referrerAllowed(k.AllowedReferrers, referer) {
			return ErrReferrerNotAllowed
		}
	}
	return nil
}

func referrerAllowed(patterns []string, referer string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(referer, prefix) {
				return true
			}
		} else if referer == p {
			return true
		}
	}
	return false
}

// ClientAddr errors. They are faults of the request's addressing, not of
// a credential: authz treats the client address as unknown, which fails
// only keys restricted to some addresses (ErrAddressUnknown).
var (
	ErrBadSourceAddress = errors.New("source address is not an IP address")
	ErrBadForwardedFor  = errors.New("x-forwarded-for entry is not an IP address")
)

// ClientAddr picks the address a key's CIDRs are checked against.
//
// sourceAddr is ext_authz's attributes.source.address: the address of the
// connection Envoy received the request on (an IP, with or without a port),
// which is the client itself when nothing sits in front of Envoy.
//
// trustedHops is Envoy's xff_num_trusted_hops (Istio's numTrustedProxies):
// how many proxies in front of Envoy append the address they received a
// request from to x-forwarded-for. With 0, the default, x-forwarded-for is
// never read and sourceAddr is the answer: any client can write the header.
// With N > 0 the answer is the (N+1)th entry from the right of xff, the
// header as authz receives it. That is the address Envoy itself trusts,
// whichever way it is configured:
//
//   - use_remote_address: true (Istio's gateways): Envoy appends its peer's
//     address before ext_authz runs, and trusts the Nth entry from the
//     right of the header it received, which is the (N+1)th of the header
//     authz sees.
//   - use_remote_address: false (the default): Envoy appends nothing and
//     trusts the (N+1)th entry from the right.
//
// (Envoy's skip_xff_append with use_remote_address breaks this count.) When
// xff holds fewer than N+1 entries the request did not come through all the
// trusted proxies, and, as in Envoy, sourceAddr is the answer. Entries may
// carry a port (as some load balancers write them); entries left of the
// chosen one are never parsed, since only a client could have written them.
func ClientAddr(sourceAddr, xff string, trustedHops int) (netip.Addr, error) {
	if trustedHops < 0 {
		return netip.Addr{}, fmt.Errorf("client address: negative trusted hop count %d", trustedHops)
	}
	if trustedHops > 0 {
		entry, ok := fromRight(xff, trustedHops+1)
		if ok {
			a, good := parseAddr(entry)
			if !good {
				return netip.Addr{}, fmt.Errorf("client address: %w", ErrBadForwardedFor)
			}
			return a, nil
		}
	}
	a, good := parseAddr(sourceAddr)
	if !good {
		return netip.Addr{}, fmt.Errorf("client address: %w", ErrBadSourceAddress)
	}
	return a, nil
}

// fromRight returns the nth comma-separated entry of list counted from the
// right (1 is the last), trimmed of spaces and tabs.
func fromRight(list string, n int) (string, bool) {
	if strings.TrimSpace(list) == "" {
		return "", false
	}
	end := len(list)
	for i := 1; ; i++ {
		start := strings.LastIndexByte(list[:end], ',') + 1
		if i == n {
			return strings.Trim(list[start:end], " \t"), true
		}
		if start == 0 {
			return "", false
		}
		end = start - 1
	}
}

// parseAddr reads an IP address, with or without a port, and returns it
// unmapped (an IPv4 client on a dual-stack listener arrives as
// ::ffff:a.b.c.d) and without a zone, as the catalog's prefixes are.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}
