// Package rls is Envoy's global rate-limit service
// (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit) on top of
// pkg/rules and pkg/quota.
//
// On the request path it is step 2 of DESIGN's diagram: Envoy's rate-limit
// filter sends the descriptors its route actions built (in domain
// "portcullis", from authz's dynamic metadata); rules resolves each to the
// counters and limits that apply; one quota.Store call checks and charges
// all of them atomically; and the answer goes back with a status per
// descriptor, the IETF RateLimit headers, and on OVER_LIMIT dynamic metadata
// naming the tier that tripped, for the access log and analytics.
package rls
