package rls_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/memstore"
	"github.com/portcullis-dev/portcullis/pkg/rls"
	"github.com/portcullis-dev/portcullis/pkg/rules"
)

const ruleFile = `
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: path
    value: /shadow
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: path
    value: /big
    rate_limit: {unit: minute, requests_per_unit: 100}
  - key: path
    value: /blocked
    rate_limit: {unit: minute, requests_per_unit: 0}
`

const policyDocs = `
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: gold}
spec:
  scope: subscription
  limits:
    - {requests: 5000, per: 1m, algorithm: sliding-window}
  burst: {requests: 5, per: 1s}
---
apiVersion: portcullis.dev/v1alpha1
kind: Policy
metadata: {name: counted}
spec:
  scope: application
  limits:
    - {requests: 1, per: 1m}
  stopOnQuotaReach: false
`

// fixture is a service over a memory store with a clock the test moves.
type fixture struct {
	svc *rls.Service
	now time.Time
	reg *prometheus.Registry
}

func newFixture(t testing.TB, opts rls.Options) *fixture {
	t.Helper()
	return newFixtureWith(t, ruleFile, policyDocs, opts)
}

func newFixtureWith(t testing.TB, ruleYAML, policyYAML string, opts rls.Options) *fixture {
	t.Helper()
	f, err := rules.ParseFile("edge.yaml", []byte(ruleYAML))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := catalog.Decode("policies.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.Build(docs)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile([]rules.File{f}, snap.Policies())
	if err != nil {
		t.Fatal(err)
	}
	var cur rules.Current
	cur.Store(set)
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), reg: prometheus.NewRegistry()}
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return fx.now }
	}
	opts.Registerer = fx.reg
	fx.svc = rls.New(&cur, store, opts)
	return fx
}

func desc(kv ...string) *rlcommonv3.RateLimitDescriptor {
	d := &rlcommonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func sub(counter string) *rlcommonv3.RateLimitDescriptor {
	return desc("policy_scope", "subscription", "counter", counter, "policy", "gold")
}

func (f *fixture) call(t *testing.T, domain string, ds ...*rlcommonv3.RateLimitDescriptor) *rlsv3.RateLimitResponse {
	t.Helper()
	resp, err := f.svc.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: domain, Descriptors: ds})
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp
}

func header(resp *rlsv3.RateLimitResponse, name string) string {
	for _, h := range resp.GetResponseHeadersToAdd() {
		if h.GetKey() == name {
			return h.GetValue()
		}
	}
	return ""
}

func TestMalformedRequestsAreInvalidArgument(t *testing.T) {
	f := newFixture(t, rls.Options{})
	cases := map[string]*rlsv3.RateLimitRequest{
		"empty domain":         {Descriptors: []*rlcommonv3.RateLimitDescriptor{desc("a", "b")}},
		"no descriptors":       {Domain: "edge"},
		"null descriptor":      {Domain: "edge", Descriptors: []*rlcommonv3.RateLimitDescriptor{nil}},
		"too many descriptors": {Domain: "edge", Descriptors: make([]*rlcommonv3.RateLimitDescriptor, 65)},
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.ShouldRateLimit(context.Background(), req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want INVALID_ARGUMENT", err)
			}
		})
	}
}

func TestUnknownDomainAndUnmatchedDescriptorAreOKWithNoLimit(t *testing.T) {
	f := newFixture(t, rls.Options{})
	for _, domain := range []string{"nowhere", "edge"} {
		resp := f.call(t, domain, desc("unmatched", "x"))
		if resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || resp.GetStatuses()[0].GetCurrentLimit() != nil {
			t.Errorf("%s: got %v, want OK with no limit", domain, resp)
		}
	}
	if n := countMetric(t, f.reg, "portcullis_ratelimit_descriptors_total", "outcome", "no_domain"); n != 1 {
		t.Errorf("no_domain descriptors = %v, want 1", n)
	}
}

func TestRuleFileLimitTripsAfterItsCountWithHeadersAndMetadata(t *testing.T) {
	f := newFixture(t, rls.Options{})
	for i := 0; i < 3; i++ {
		resp := f.call(t, "edge", desc("remote_address", "10.0.0.1"))
		st := resp.GetStatuses()[0]
		if resp.GetOverallCode() != rlsv3.RateLimitResponse_OK || st.GetLimitRemaining() != uint32(2-i) {
			t.Fatalf("call %d: %v", i+1, resp)
		}
	}
	resp := f.call(t, "edge", desc("remote_address", "10.0.0.1"))
	if resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("4th call: %v", resp)
	}
	st := resp.GetStatuses()[0]
	if st.GetCurrentLimit().GetRequestsPerUnit() != 3 || st.GetCurrentLimit().GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE ||
		st.GetLimitRemaining() != 0 || st.GetDurationUntilReset().AsDuration() != time.Minute {
		t.Errorf("status: %v", st)
	}
	if got, want := header(resp, "retry-after"), "60"; got != want {
		t.Errorf("Retry-After = %q, want %q", got, want)
	}
	if got, want := header(resp, "ratelimit-policy"), `"edge.remote_address";q=3;w=60`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := header(resp, "ratelimit"), `"edge.remote_address";r=0;t=60`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	md := resp.GetDynamicMetadata().AsMap()
	if md["domain"] != "edge" || md["rule"] != "edge.remote_address" || md["limit"] != "3/1m0s fixed-window" {
		t.Errorf("metadata: %v", md)
	}
	// Another address has its own counter.
	if r := f.call(t, "edge", desc("remote_address", "10.0.0.2")); r.GetOverallCode() != rlsv3.RateLimitResponse_OK {
		t.Errorf("other address: %v", r)
	}
	// The window ends and the address is admitted again.
	f.now = f.now.Add(time.Minute)
	if r := f.call(t, "edge", desc("remote_address", "10.0.0.1")); r.GetOverallCode() != rlsv3.RateLimitResponse_OK {
		t.Errorf("next window: %v", r)
	}
}

// TestZeroRequestsPerUnitDeniesEveryRequest: envoyproxy/ratelimit reads
// requests_per_unit: 0 as "deny". The store must count it, not refuse it,
// or the request would fall to the failure mode (fail-open by default).
func TestZeroRequestsPerUnitDeniesEveryRequest(t *testing.T) {
	f := newFixture(t, rls.Options{FailureMode: rls.FailOpen})
	for i := range 3 {
		resp := f.call(t, "edge", desc("path", "/blocked"))
		st := resp.GetStatuses()[0]
		if resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT || st.GetCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("call %d: %v, want OVER_LIMIT", i+1, resp)
		}
		if st.GetCurrentLimit().GetRequestsPerUnit() != 0 || st.GetLimitRemaining() != 0 {
			t.Errorf("call %d: status %v, want a limit of 0 with 0 remaining", i+1, st)
		}
		// It can never succeed, so there is no time to retry after.
		if got := header(resp, "retry-after"); got != "" {
			t.Errorf("call %d: Retry-After = %q, want none", i+1, got)
		}
		md := resp.GetDynamicMetadata().AsMap()
		if md["rule"] != "edge.path_/blocked" || md["failure_mode"] != nil {
			t.Errorf("call %d: metadata %v, want the rule that tripped and no failure mode", i+1, md)
		}
		f.now = f.now.Add(time.Minute)
	}
	if n := countMetric(t, f.reg, "portcullis_ratelimit_store_errors_total", "mode", rls.FailOpen.String()); n != 0 {
		t.Errorf("store errors = %v, want 0", n)
	}
}

func TestPolicyBurstTripsAndMetadataNamesTheTier(t *testing.T) {
	f := newFixture(t, rls.Options{})
	for i := 0; i < 5; i++ {
		if r := f.call(t, "portcullis", sub("mobile-app:petstore:v1")); r.GetOverallCode() != rlsv3.RateLimitResponse_OK {
			t.Fatalf("call %d: %v", i+1, r)
		}
	}
	resp := f.call(t, "portcullis", sub("mobile-app:petstore:v1"))
	if resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("6th call: %v", resp)
	}
	want := map[string]any{"domain": "portcullis", "descriptor": "0", "rule": "gold", "policy_scope": "subscription",
		"policy": "gold", "policy_group": "default", "limit": "5/1s fixed-window", "limit_name": "burst"}
	if diff := cmp.Diff(want, resp.GetDynamicMetadata().AsMap()); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	// Both limits of the policy are in the headers, not only the one that tripped.
	pol := header(resp, "ratelimit-policy")
	if !strings.Contains(pol, `"gold";q=5000;w=60`) || !strings.Contains(pol, `"gold/burst";q=5;w=1`) {
		t.Errorf("RateLimit-Policy = %q", pol)
	}
	if got := header(resp, "ratelimit"); !strings.Contains(got, `"gold";r=4995;`) || !strings.Contains(got, `"gold/burst";r=0;t=1`) {
		t.Errorf("RateLimit = %q", got)
	}
}

func TestDeniedRequestChargesNoDescriptor(t *testing.T) {
	f := newFixture(t, rls.Options{})
	for i := 0; i < 3; i++ {
		f.call(t, "edge", desc("remote_address", "10.0.0.9"))
	}
	// /big would have room, but remote_address is over: nothing is charged.
	for i := 0; i < 5; i++ {
		resp := f.call(t, "edge", desc("path", "/big"), desc("remote_address", "10.0.0.9"))
		if resp.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("call %d: %v", i, resp)
		}
		if resp.GetStatuses()[0].GetCode() != rlsv3.RateLimitResponse_OK || resp.GetStatuses()[1].GetCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("statuses: %v", resp.GetStatuses())
		}
	}
	resp := f.call(t, "edge", desc("path", "/big"))
	if got := resp.GetStatuses()[0].GetLimitRemaining(); got != 99 {
		t.Errorf("/big remaining = %d after 5 denied requests and 1 allowed, want 99", got)
	}
}

func TestHitsAddend(t *testing.T) {
	f := newFixture(t, rls.Options{})
	resp, err := f.svc.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{
		Domain: "edge", HitsAddend: 60, Descriptors: []*rlcommonv3.RateLimitDescriptor{desc("path", "/big")}})
	if err != nil || resp.GetStatuses()[0].GetLimitRemaining() != 40 {
		t.Fatalf("request hits 60: %v %v", resp, err)
	}
	peek := desc("path", "/big")
	peek.HitsAddend = wrapperspb.UInt64(0)
	for i := 0; i < 3; i++ {
		if r := f.call(t, "edge", peek); r.GetStatuses()[0].GetLimitRemaining() != 40 {
			t.Fatalf("peek %d charged: %v", i, r)
		}
	}
	many := desc("path", "/big")
	many.HitsAddend = wrapperspb.UInt64(41)
	if r := f.call(t, "edge", many); r.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("41 hits with 40 left: %v", r)
	}
}

func TestShadowRuleAndCountOnlyPolicyNeverDeny(t *testing.T) {
	f := newFixture(t, rls.Options{})
	counted := desc("policy_scope", "application", "counter", "app:alice", "policy", "counted")
	for i := 0; i < 3; i++ {
		for _, tc := range []struct {
			domain string
			d      *rlcommonv3.RateLimitDescriptor
		}{{"edge", desc("path", "/shadow")}, {"portcullis", counted}} {
			if r := f.call(t, tc.domain, tc.d); r.GetOverallCode() != rlsv3.RateLimitResponse_OK {
				t.Fatalf("%s call %d: %v", tc.domain, i, r)
			}
		}
	}
	if n := countMetric(t, f.reg, "portcullis_ratelimit_shadow_mode_total", "rule", "counted"); n != 2 {
		t.Errorf("shadow count for counted = %v, want 2", n)
	}
}

func TestGlobalShadowModeNeverDenies(t *testing.T) {
	f := newFixture(t, rls.Options{Shadow: true})
	for i := 0; i < 10; i++ {
		if r := f.call(t, "edge", desc("remote_address", "1.1.1.1")); r.GetOverallCode() != rlsv3.RateLimitResponse_OK {
			t.Fatalf("call %d: %v", i, r)
		}
	}
}

func TestLimitOverrideCountsAgainstItsOwnLimit(t *testing.T) {
	f := newFixture(t, rls.Options{})
	d := desc("remote_address", "7.7.7.7")
	d.Limit = &rlcommonv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1, Unit: 2 /* MINUTE */}
	f.call(t, "edge", d)
	if r := f.call(t, "edge", d); r.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT ||
		r.GetStatuses()[0].GetCurrentLimit().GetRequestsPerUnit() != 1 {
		t.Fatalf("override: %v", r)
	}
}

// failingStore stands in for a store that cannot be reached; the Redis
// fault tests kill a real redis-server.
type failingStore struct{ block bool }

func (s failingStore) Apply(ctx context.Context, _ time.Time, _ []quota.Check) ([]quota.Result, error) {
	if s.block {
		<-ctx.Done()
		return nil, fmt.Errorf("%w: %w", quota.ErrUnavailable, ctx.Err())
	}
	return nil, fmt.Errorf("%w: connection refused", quota.ErrUnavailable)
}

func TestStoreFailureFollowsTheFailureMode(t *testing.T) {
	set, err := rules.Compile([]rules.File{mustParse(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cur rules.Current
	cur.Store(set)
	req := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*rlcommonv3.RateLimitDescriptor{desc("remote_address", "1.2.3.4")}}
	for _, tc := range []struct {
		mode     rls.FailureMode
		block    bool
		wantCode rlsv3.RateLimitResponse_Code
		wantErr  codes.Code
		reason   string
	}{
		{rls.FailOpen, false, rlsv3.RateLimitResponse_OK, codes.OK, "store_unavailable"},
		{rls.FailClosed, false, rlsv3.RateLimitResponse_OVER_LIMIT, codes.OK, "store_unavailable"},
		{rls.FailUnavailable, false, 0, codes.Unavailable, ""},
		{rls.FailOpen, true, rlsv3.RateLimitResponse_OK, codes.OK, "store_timeout"},
	} {
		t.Run(fmt.Sprintf("%s/block=%v", tc.mode, tc.block), func(t *testing.T) {
			svc := rls.New(&cur, failingStore{block: tc.block}, rls.Options{FailureMode: tc.mode, Timeout: 5 * time.Millisecond})
			resp, err := svc.ShouldRateLimit(context.Background(), req)
			if status.Code(err) != tc.wantErr {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if resp.GetOverallCode() != tc.wantCode {
				t.Errorf("code %v, want %v", resp.GetOverallCode(), tc.wantCode)
			}
			md := resp.GetDynamicMetadata().AsMap()
			if md["failure_mode"] != tc.mode.String() || md["failure_reason"] != tc.reason {
				t.Errorf("metadata %v", md)
			}
		})
	}
}

func mustParse(t *testing.T) rules.File {
	t.Helper()
	f, err := rules.ParseFile("edge.yaml", []byte(ruleFile))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseFailureMode(t *testing.T) {
	for _, s := range []string{"open", "closed", "unavailable"} {
		m, err := rls.ParseFailureMode(s)
		if err != nil || m.String() != s {
			t.Errorf("%s: %v %v", s, m, err)
		}
	}
	if _, err := rls.ParseFailureMode("sometimes"); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("bad mode: %v", err)
	}
}

// countMetric reads one labelled counter's value from the registry.
func countMetric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
