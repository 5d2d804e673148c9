package introspect

import (
	"errors"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// FuzzParseResponse feeds arbitrary bodies to the response judge. Whatever
// the provider sends, the answer is exactly one of: a token that is not
// expired, not early, of the provider's issuer; a refusal; or unavailable.
func FuzzParseResponse(f *testing.F) {
	for _, tt := range responseCases {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c := check{issuer: testIssuer, now: now, skew: time.Second}
		tok, err := parseResponse(body, c)
		if err != nil {
			inv, unav := errors.Is(err, identity.ErrInvalid), errors.Is(err, identity.ErrUnavailable)
			if inv == unav {
				t.Fatalf("error %v: ErrInvalid %v, ErrUnavailable %v; want exactly one", err, inv, unav)
			}
			if tok != nil {
				t.Fatalf("a token beside the error %v", err)
			}
			return
		}
		if tok.Issuer != testIssuer {
			t.Fatalf("issuer %q accepted", tok.Issuer)
		}
		if !tok.Expiry.IsZero() && !now.Before(tok.Expiry.Add(c.skew)) {
			t.Fatalf("expired token accepted: exp %v", tok.Expiry)
		}
		if tok.Claims["active"] != true {
			t.Fatalf("accepted with active = %v", tok.Claims["active"])
		}
		if _, ok := tok.Claims["cnf"]; ok && tok.Claims["cnf"] != nil {
			t.Fatal("sender-constrained token accepted")
		}
	})
}
