package accesslog

import (
	"strings"

	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// fault is what went wrong with a request, if anything.
type fault struct {
	typ   analytics.ErrorType
	scope analytics.ThrottleScope
	code  string
}

// Envoy's response_code_details for the ext_authz and rate-limit filters'
// local replies; they back up the response flags.
const (
	detailsAuthzDenied = "ext_authz_denied"
	detailsAuthzError  = "ext_authz_error"
	detailsRateLimited = "request_rate_limited"
)

// flagFaults are the response flags that make a request a fault, in the
// order they are checked, each with its category and code. Authorization
// and throttling come first (they are the API manager's own refusals),
// then the upstream's connectivity, then the rest. A request with none of
// these flags is a fault only by its status (classify).
var flagFaults = []struct {
	set  func(*alsdata.ResponseFlags) bool
	typ  analytics.ErrorType
	code string
}{
	{(*alsdata.ResponseFlags).GetRateLimitServiceError, analytics.ErrorOther, analytics.CodeRateLimitError}, // RLSE

	{(*alsdata.ResponseFlags).GetUpstreamConnectionFailure, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamConnectionFailure},         // UF
	{(*alsdata.ResponseFlags).GetNoHealthyUpstream, analytics.ErrorTargetConnectivity, analytics.CodeNoHealthyUpstream},                         // UH
	{(*alsdata.ResponseFlags).GetUpstreamRequestTimeout, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamTimeout},                      // UT
	{(*alsdata.ResponseFlags).GetUpstreamRetryLimitExceeded, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamRetryLimitExceeded},       // URX
	{(*alsdata.ResponseFlags).GetUpstreamOverflow, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamOverflow},                           // UO
	{(*alsdata.ResponseFlags).GetUpstreamConnectionTermination, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamConnectionTermination}, // UC
	{(*alsdata.ResponseFlags).GetUpstreamRemoteReset, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamReset},                           // UR
	{(*alsdata.ResponseFlags).GetUpstreamProtocolError, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamProtocolError},                 // UPE
	{(*alsdata.ResponseFlags).GetUpstreamMaxStreamDurationReached, analytics.ErrorTargetConnectivity, analytics.CodeUpstreamMaxStreamDuration},  // UMSDR
	{(*alsdata.ResponseFlags).GetDnsResolutionFailure, analytics.ErrorTargetConnectivity, analytics.CodeDNSResolutionFailure},                   // DF
	{(*alsdata.ResponseFlags).GetNoClusterFound, analytics.ErrorTargetConnectivity, analytics.CodeNoCluster},                                    // NC

	{(*alsdata.ResponseFlags).GetNoRouteFound, analytics.ErrorOther, analytics.CodeNoRouteFound},                        // NR
	{(*alsdata.ResponseFlags).GetStreamIdleTimeout, analytics.ErrorOther, analytics.CodeStreamIdleTimeout},              // SI
	{(*alsdata.ResponseFlags).GetDurationTimeout, analytics.ErrorOther, analytics.CodeDurationTimeout},                  // DT
	{(*alsdata.ResponseFlags).GetOverloadManager, analytics.ErrorOther, analytics.CodeOverload},                         // OM
	{(*alsdata.ResponseFlags).GetInvalidEnvoyRequestHeaders, analytics.ErrorOther, analytics.CodeInvalidRequestHeaders}, // IH
	{(*alsdata.ResponseFlags).GetDownstreamProtocolError, analytics.ErrorOther, analytics.CodeDownstreamProtocol},       // DPE
	{(*alsdata.ResponseFlags).GetFaultInjected, analytics.ErrorOther, analytics.CodeFaultInjected},                      // FI
	{(*alsdata.ResponseFlags).GetLocalReset, analytics.ErrorOther, analytics.CodeLocalReset},                            // LR
}

// classify says whether and how a request failed, from Envoy's response
// flags and details, the status, authz's refusal code and the rate-limit
// metadata:
//
//   - UAEX (or ext_authz details): AUTH, with authz's refusal code
//     (analytics.AuthzErrorType: no_route and the like are OTHER);
//     authz_error when the ext_authz call itself failed, authz_denied when
//     no code came back.
//   - RL (or request_rate_limited): THROTTLED; the tier from the metadata
//     pkg/rls returned (BURST for a burst limit, else policy_scope).
//   - flagFaults, in order.
//   - DC or DR with no response: OTHER client_disconnected.
//   - 5xx: OTHER, target_5xx from the upstream, proxy_5xx from Envoy.
//   - status 0: OTHER no_response.
func classify(f *alsdata.ResponseFlags, details string, status int, authzCode string, rl map[string]*structpb.Value) fault {
	switch {
	case f.GetUnauthorizedDetails() != nil || strings.HasPrefix(details, "ext_authz"):
		switch {
		case details == detailsAuthzError:
			return fault{typ: analytics.ErrorAuth, code: analytics.CodeAuthzError}
		case authzCode != "":
			return fault{typ: analytics.AuthzErrorType(authzCode), code: authzCode}
		}
		return fault{typ: analytics.ErrorAuth, code: analytics.CodeAuthzDenied}
	case f.GetRateLimited() || details == detailsRateLimited:
		s := throttleScope(rl)
		return fault{typ: analytics.ErrorThrottled, scope: s, code: s.Code()}
	}
	for _, ff := range flagFaults {
		if ff.set(f) {
			return fault{typ: ff.typ, code: ff.code}
		}
	}
	switch {
	case status == 0 && (f.GetDownstreamConnectionTermination() || f.GetDownstreamRemoteReset()):
		return fault{typ: analytics.ErrorOther, code: analytics.CodeClientDisconnected}
	case status >= 500 && details == viaUpstream:
		return fault{typ: analytics.ErrorOther, code: analytics.CodeTarget5xx}
	case status >= 500:
		return fault{typ: analytics.ErrorOther, code: analytics.CodeProxy5xx}
	case status == 0:
		return fault{typ: analytics.ErrorOther, code: analytics.CodeNoResponse}
	}
	return fault{}
}

// throttleScope is the tier pkg/rls says tripped: BURST for a policy's
// burst limit (labelled "burst" by pkg/rules), else the policy's scope;
// UNKNOWN without metadata or for a rule outside the catalog's policies.
func throttleScope(rl map[string]*structpb.Value) analytics.ThrottleScope {
	if str(rl, rlLimitName) == "burst" && str(rl, rlPolicyScope) != "" {
		return analytics.ThrottleBurst
	}
	switch str(rl, rlPolicyScope) {
	case catalog.ScopeSubscription.String():
		return analytics.ThrottleSubscription
	case catalog.ScopeApplication.String():
		return analytics.ThrottleApplication
	case catalog.ScopeAPI.String():
		return analytics.ThrottleAPI
	case catalog.ScopeResource.String():
		return analytics.ThrottleResource
	}
	return analytics.ThrottleUnknown
}
