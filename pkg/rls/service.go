package rls

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/rules"
)

// Rules gives the rule set in force now. The server reads it once per
// request, so a reload swaps it between requests, never during one.
type Rules interface {
	Rules() *rules.Set
}

// Options tune the service; the zero value is usable.
type Options struct {
	// Timeout bounds one request's store step. Envoy's rate-limit filter
	// gives up after 20 ms by default, so the answer in the failure mode
	// must come before that: give a store that does I/O (Redis) about
	// 15ms. Zero adds no deadline of the service's own (the caller's still
	// applies): right for the memory store, which never blocks, and saves
	// a timer per request.
	Timeout time.Duration
	// FailureMode applies when the store fails or the deadline passes.
	FailureMode FailureMode
	// Shadow reports over-limit but never denies, for every rule.
	Shadow bool
	// NearLimitRatio: a check that leaves less than (1-ratio) of its limit
	// counts as near limit. Default 0.8, as envoyproxy/ratelimit.
	NearLimitRatio float64
	// MaxDescriptors refuses requests with more descriptors, as
	// INVALID_ARGUMENT. Default 64.
	MaxDescriptors int
	Clock          func() time.Time
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// Service implements rlsv3.RateLimitServiceServer.
type Service struct {
	rlsv3.UnimplementedRateLimitServiceServer
	rules Rules
	store quota.Store
	opts  Options
	m     *metrics
}

var _ rlsv3.RateLimitServiceServer = (*Service)(nil)

// New builds the service over a rule source and a store.
func New(rs Rules, store quota.Store, opts Options) *Service {
	if opts.NearLimitRatio <= 0 || opts.NearLimitRatio >= 1 {
		opts.NearLimitRatio = 0.8
	}
	if opts.MaxDescriptors <= 0 {
		opts.MaxDescriptors = 64
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{rules: rs, store: store, opts: opts, m: newMetrics(opts.Registerer)}
}

// MetadataNamespace is where Envoy files the rate-limit filter's dynamic
// metadata; the access-log sink reads the tripped tier from here.
const MetadataNamespace = "envoy.filters.http.ratelimit"

// ShouldRateLimit answers one request. Malformed requests get
// INVALID_ARGUMENT; descriptors that match nothing are OK with no limit, as
// envoyproxy/ratelimit answers; store failures follow the failure mode.
func (s *Service) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	domain := req.GetDomain()
	descs := req.GetDescriptors()
	switch {
	case domain == "":
		return nil, status.Error(codes.InvalidArgument, "rate limit domain must not be empty")
	case len(descs) == 0:
		return nil, status.Error(codes.InvalidArgument, "rate limit descriptor list must not be empty")
	case len(descs) > s.opts.MaxDescriptors:
		return nil, status.Errorf(codes.InvalidArgument, "%d descriptors is more than the %d allowed", len(descs), s.opts.MaxDescriptors)
	}
	for i, d := range descs {
		if d == nil {
			return nil, status.Errorf(codes.InvalidArgument, "descriptor %d is null", i)
		}
	}

	set := s.rules.Rules()
	res := set.Resolve(domain, descs)
	metricDomain := domain
	if !set.HasDomain(domain) {
		metricDomain = "_unknown"
	}

	// One check per limit of every resolved rule; owner[i] is the
	// descriptor and limit a check came from.
	type origin struct{ desc, limit int }
	checks := make([]quota.Check, 0, len(descs)*2)
	owners := make([]origin, 0, len(descs)*2)
	reqHits := uint64(req.GetHitsAddend())
	if reqHits == 0 {
		reqHits = 1 // proto3 cannot tell 0 from unset; Envoy documents 1
	}
	for i, r := range res {
		s.m.outcome(r.Outcome)
		if r.Rule == nil {
			continue
		}
		hits := reqHits
		if h := descs[i].GetHitsAddend(); h != nil {
			hits = h.GetValue()
		}
		if descs[i].GetIsNegativeHits() {
			hits = 0 // refunds are not supported: judge without charging
		}
		for j, l := range r.Rule.Limits {
			checks = append(checks, quota.Check{
				Key:     r.Rule.Key,
				Tag:     r.Rule.Tag,
				Limit:   l.Limit,
				Hits:    hits,
				Enforce: !r.Rule.Shadow && !s.opts.Shadow,
			})
			owners = append(owners, origin{i, j})
		}
	}

	statuses := make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(descs))
	for i := range statuses {
		statuses[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	if len(checks) == 0 {
		s.m.decisions.WithLabelValues("OK").Inc()
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: statuses}, nil
	}

	now := s.opts.Clock()
	sctx, cancel := ctx, context.CancelFunc(nil)
	if s.opts.Timeout > 0 {
		sctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
	}
	start := time.Now()
	results, err := s.store.Apply(sctx, now, checks)
	if cancel != nil {
		cancel()
	}
	s.m.storeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return s.failure(ctx, domain, statuses, err)
	}

	allowed := quota.Allowed(checks, results)
	// The most binding check of each descriptor becomes its status: a
	// tripped enforced limit first, else the one with least room left.
	best := make([]int, len(descs))
	for i := range best {
		best[i] = -1
	}
	as := make([]applied, 0, len(checks))
	var tripped int = -1
	for k, c := range checks {
		o := owners[k]
		r := results[k]
		rule := res[o.desc].Rule
		lim := rule.Limits[o.limit]
		as = append(as, applied{policy: policyID(rule.Name, lim.Label), limit: lim.Limit, result: r, enforce: c.Enforce})
		s.count(metricDomain, rule.Name, c, r)
		if b := best[o.desc]; b < 0 || binds(checks[k], r, checks[b], results[b]) {
			best[o.desc] = k
		}
		if !allowed && tripped < 0 && c.Enforce && r.Over {
			tripped = k
		}
	}
	for i, k := range best {
		if k < 0 {
			continue
		}
		r := results[k]
		lim := res[i].Rule.Limits[owners[k].limit]
		st := statuses[i]
		if r.Over && checks[k].Enforce {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		st.CurrentLimit = &rlsv3.RateLimitResponse_RateLimit{
			Name:            policyID(res[i].Rule.Name, lim.Label),
			RequestsPerUnit: clamp32(lim.Limit.Requests),
			Unit:            unitOf(lim.Limit),
		}
		if !r.Unknown {
			st.LimitRemaining = clamp32(r.Remaining)
			st.DurationUntilReset = durationpb.New(r.ResetAfter)
		}
	}

	resp := &rlsv3.RateLimitResponse{
		OverallCode:          rlsv3.RateLimitResponse_OK,
		Statuses:             statuses,
		ResponseHeadersToAdd: rateLimitHeaders(now, as, !allowed),
	}
	if !allowed {
		resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		o := owners[tripped]
		rule := res[o.desc].Rule
		resp.DynamicMetadata = trippedMetadata(domain, o.desc, rule, rule.Limits[o.limit])
	}
	s.m.decisions.WithLabelValues(resp.OverallCode.String()).Inc()
	return resp, nil
}

// binds reports whether check a with result ra constrains the request more
// than b with rb.
func binds(a quota.Check, ra quota.Result, b quota.Check, rb quota.Result) bool {
	ta, tb := ra.Over && a.Enforce, rb.Over && b.Enforce
	if ta != tb {
		return ta
	}
	// Compare remaining as a share of the limit: 2 left of 10 binds more
	// than 50 left of 1000.
	return float64(ra.Remaining)/float64(max(ra.Limit, 1)) < float64(rb.Remaining)/float64(max(rb.Limit, 1))
}

func (s *Service) count(domain, rule string, c quota.Check, r quota.Result) {
	m := s.m.rule(domain, rule)
	m.hits.Add(float64(c.Hits))
	switch {
	case r.Over && c.Enforce:
		m.over.Inc()
	case r.Over:
		m.shadow.Inc()
	case !r.Unknown && float64(r.Remaining) < float64(r.Limit)*(1-s.opts.NearLimitRatio):
		m.near.Inc()
	default:
		m.within.Inc()
	}
}

// failure answers in the configured mode when the store could not.
func (s *Service) failure(ctx context.Context, domain string, statuses []*rlsv3.RateLimitResponse_DescriptorStatus, err error) (*rlsv3.RateLimitResponse, error) {
	mode := s.opts.FailureMode
	s.m.storeErrors.WithLabelValues(mode.String()).Inc()
	reason := "store_unavailable"
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "store_timeout"
	}
	s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "rate-limit store failed", slog.String("domain", domain),
		slog.String("failure_mode", mode.String()), slog.String("error", err.Error()))
	switch mode {
	case FailUnavailable:
		s.m.decisions.WithLabelValues("UNAVAILABLE").Inc()
		return nil, status.Errorf(codes.Unavailable, "rate-limit store: %s", reason)
	case FailClosed:
		for _, st := range statuses {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	code := rlsv3.RateLimitResponse_OK
	if mode == FailClosed {
		code = rlsv3.RateLimitResponse_OVER_LIMIT
	}
	s.m.decisions.WithLabelValues(code.String()).Inc()
	md, _ := structpb.NewStruct(map[string]any{"failure_mode": mode.String(), "failure_reason": reason})
	return &rlsv3.RateLimitResponse{OverallCode: code, Statuses: statuses, DynamicMetadata: md}, nil
}

// trippedMetadata names what throttled the request, all values strings, so
// the access log and analytics can say which tier it was.
func trippedMetadata(domain string, desc int, rule *rules.Rule, lim rules.Limit) *structpb.Struct {
	f := map[string]*structpb.Value{
		"domain":     structpb.NewStringValue(domain),
		"descriptor": structpb.NewStringValue(strconv.Itoa(desc)),
		"rule":       structpb.NewStringValue(rule.Name),
		"limit":      structpb.NewStringValue(lim.Limit.String()),
		"limit_name": structpb.NewStringValue(lim.Label),
	}
	if rule.Scope != "" {
		f["policy_scope"] = structpb.NewStringValue(rule.Scope)
		f["policy"] = structpb.NewStringValue(rule.Policy)
	}
	if rule.Group != "" {
		f["policy_group"] = structpb.NewStringValue(rule.Group)
	}
	return &structpb.Struct{Fields: f}
}

func policyID(name, label string) string {
	if label == "" || label == "default" {
		return name
	}
	return name + "/" + label
}

func clamp32(v uint64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}
