package rls

import (
	"math"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// applied is one limit that took part in a decision, as the headers and
// statuses report it.
type applied struct {
	policy  string // the quota policy identifier in the RateLimit fields
	limit   quota.Limit
	result  quota.Result
	enforce bool
}

// rateLimitHeaders renders the IETF RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers-09): RateLimit-Policy lists every
// policy that applied with its quota (q) and window in seconds (w);
// RateLimit gives each one's remaining quota (r) and seconds until reset
// (t). Both are Structured Field Lists of Strings with parameters. A limit
// answered from the local over-limit cache reports no remaining figure it
// does not know, so it appears in RateLimit-Policy only.
//
// Retry-After (RFC 9110, delay-seconds) is added when the request is denied:
// the longest wait among the enforced limits that tripped, since the request
// needs all of them to have room.
func rateLimitHeaders(now time.Time, as []applied, denied bool) []*corev3.HeaderValue {
	if len(as) == 0 {
		return nil
	}
	pol := make([]byte, 0, 40*len(as))
	cur := make([]byte, 0, 40*len(as))
	var retry time.Duration
	for _, a := range as {
		if len(pol) > 0 {
			pol = append(pol, ", "...)
		}
		pol = appendSFString(pol, a.policy)
		pol = append(pol, ";q="...)
		pol = strconv.AppendUint(pol, a.limit.Requests, 10)
		pol = append(pol, ";w="...)
		pol = strconv.AppendInt(pol, ceilSeconds(a.limit.Window(now)), 10)
		if !a.result.Unknown {
			if len(cur) > 0 {
				cur = append(cur, ", "...)
			}
			cur = appendSFString(cur, a.policy)
			cur = append(cur, ";r="...)
			cur = strconv.AppendUint(cur, a.result.Remaining, 10)
			cur = append(cur, ";t="...)
			t := a.result.ResetAfter
			if a.result.Over && a.result.RetryAfter > 0 {
				t = a.result.RetryAfter
			}
			cur = strconv.AppendInt(cur, ceilSeconds(t), 10)
		}
		if denied && a.enforce && a.result.Over && a.result.RetryAfter > retry {
			retry = a.result.RetryAfter
		}
	}
	hs := make([]corev3.HeaderValue, 3)
	out := make([]*corev3.HeaderValue, 0, 3)
	hs[0] = corev3.HeaderValue{Key: "ratelimit-policy", Value: string(pol)}
	out = append(out, &hs[0])
	if len(cur) > 0 {
		hs[1] = corev3.HeaderValue{Key: "ratelimit", Value: string(cur)}
		out = append(out, &hs[1])
	}
	if denied && retry > 0 {
		hs[2] = corev3.HeaderValue{Key: "retry-after", Value: strconv.FormatInt(ceilSeconds(retry), 10)}
		out = append(out, &hs[2])
	}
	return out
}

// appendSFString appends s as a Structured Field String (RFC 8941
// §3.3.3): only printable ASCII is allowed, with '"' and '\' escaped;
// anything else is replaced so a rule name can never break the header.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '_')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// unitOf maps a limit to Envoy's RateLimit unit when its period is exactly
// one unit; otherwise UNKNOWN, and requests_per_unit is still the limit's
// request count (Envoy then omits the window from x-ratelimit-limit).
func unitOf(l quota.Limit) rlsv3.RateLimitResponse_RateLimit_Unit {
	if l.Monthly {
		return rlsv3.RateLimitResponse_RateLimit_MONTH
	}
	switch l.Period {
	case time.Second:
		return rlsv3.RateLimitResponse_RateLimit_SECOND
	case time.Minute:
		return rlsv3.RateLimitResponse_RateLimit_MINUTE
	case time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_HOUR
	case 24 * time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_DAY
	case 7 * 24 * time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_WEEK
	case 365 * 24 * time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_YEAR
	}
	return rlsv3.RateLimitResponse_RateLimit_UNKNOWN
}
