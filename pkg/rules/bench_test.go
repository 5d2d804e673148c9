package rules

import (
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
)

func entries(kv ...string) *rlv3.RateLimitDescriptor {
	d := &rlv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// BenchmarkResolve measures the hot path: one request of 1 or 4
// descriptors, against rule files (with wildcards and replaces) and against
// Policy documents as the shipped EnvoyFilter sends them.
func BenchmarkResolve(b *testing.B) {
	set, _ := fuzzSet(b)
	cases := []struct {
		name   string
		domain string
		descs  []*rlv3.RateLimitDescriptor
	}{
		{"rules/1", "api", []*rlv3.RateLimitDescriptor{
			entries("path", "/v1/pets", "method", "PUT"),
		}},
		{"rules/4", "edge", []*rlv3.RateLimitDescriptor{
			entries("remote_address", "10.1.2.3"),
			entries("partner", "acme"),
			entries("a", "1", "b", "2", "c", "3"),
			entries("generic_key", "health"),
		}},
		{"policies/1", PortcullisDomain, []*rlv3.RateLimitDescriptor{
			entries("policy_scope", "subscription", "counter", "shop-app:petstore:1.0", "policy", "gold"),
		}},
		{"policies/4", PortcullisDomain, []*rlv3.RateLimitDescriptor{
			entries("policy_scope", "subscription", "counter", "shop-app:petstore:1.0", "policy", "gold"),
			entries("policy_scope", "application", "counter", "shop-app:alice", "policy", "app-50-per-second"),
			entries("policy_scope", "api", "counter", "petstore:1.0", "policy", "petstore-api", "group", "default"),
			entries("policy_scope", "resource", "counter", "petstore:1.0:POST /pets", "policy", "petstore-writes", "group", "default"),
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for _, r := range set.Resolve(c.domain, c.descs) {
				if r.Outcome != Limited && r.Outcome != Unlimited && r.Outcome != Replaced {
					b.Fatalf("fixture descriptor resolved to %v", r.Outcome)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				set.Resolve(c.domain, c.descs)
			}
		})
	}
}
