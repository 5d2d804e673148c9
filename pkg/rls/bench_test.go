package rls_test

import (
	"context"
	"fmt"
	"testing"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/portcullis-dev/portcullis/pkg/rls"
)

// benchPolicies have one policy per scope with limits a benchmark never
// reaches: the allowed path, which is the one nearly every request takes.
const benchPolicies = `
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits: [{requests: 1000000000, per: 1h, algorithm: sliding-window}]
  burst: {requests: 1000000000, per: 1s}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: app-plan}
spec:
  scope: application
  limits: [{requests: 1000000000, per: 1h, algorithm: token-bucket}]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: api-plan}
spec:
  scope: api
  limits: [{requests: 1000000000, per: 1m}]
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: res-plan}
spec:
  scope: resource
  limits: [{requests: 1000000000, per: 1m}]
`

// BenchmarkShouldRateLimit measures one allowed request through the
// service on the memory store (rules, one atomic store step, statuses and
// headers), without gRPC, for DESIGN's 1 and 4 descriptors.
func BenchmarkShouldRateLimit(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("descriptors=%d", n), func(b *testing.B) {
			f := newFixtureWith(b, ruleFile, benchPolicies, rls.Options{})
			reqs := make([]*rlsv3.RateLimitRequest, 256)
			for i := range reqs {
				app := fmt.Sprintf("app-%d", i)
				ds := []*rlcommonv3.RateLimitDescriptor{sub(app + ":petstore:v1")}
				if n == 4 {
					ds = append(ds,
						desc("policy_scope", "application", "counter", app+":user", "policy", "app-plan"),
						desc("policy_scope", "api", "counter", "petstore:v1", "policy", "api-plan", "group", "default"),
						desc("policy_scope", "resource", "counter", "petstore:v1:GET /pets", "policy", "res-plan", "group", "default"))
				}
				reqs[i] = &rlsv3.RateLimitRequest{Domain: "portcullis", Descriptors: ds}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := f.svc.ShouldRateLimit(ctx, reqs[i%len(reqs)])
				if err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
					b.Fatal(resp, err)
				}
			}
		})
	}
}
