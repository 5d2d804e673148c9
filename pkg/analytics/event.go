package analytics

import (
	"net/netip"
	"time"
)

// Event is one request as analytics sees it. Every field is a catalog
// name, a number, an address, or one of a few request values that are
// never credentials (user agent, host, request id): there is no field for
// a path, a query, a header map or a body, so no sink can be handed a
// token or an API key by accident. Keep it that way: a field that could
// carry client-chosen free text needs the same argument.
//
// Field names in JSON are WSO2 API Manager's analytics names; the
// OpenTelemetry mapping is in the package documentation.
type Event struct {
	// Source is what produced the event.
	Source Source
	// Timestamp is when the request started (Envoy's start_time), or when
	// authz received the check for a decision event.
	Timestamp time.Time
	// CorrelationID is Envoy's x-request-id.
	CorrelationID string

	// APIName and APIVersion split the catalog's name:version; APIContext
	// is the API's base path.
	APIName, APIVersion, APIContext string
	// APIMethod is the matched operation's method, or the request method
	// when no operation matched.
	APIMethod string
	// APIResourceTemplate is the matched operation's path template, as
	// written in the API document (without the base path).
	APIResourceTemplate string

	// ApplicationID is the application's catalog name; ApplicationName its
	// display name (the catalog name when it has none).
	ApplicationID, ApplicationName, ApplicationOwner string
	// KeyType is PRODUCTION or SANDBOX.
	KeyType string
	// UserName is the end user, a token's subject, when the credential
	// named one.
	UserName string

	// ProxyResponseCode is the status the client got; 0 when unknown (an
	// allow decision, or a client that left before the response).
	ProxyResponseCode int
	// TargetResponseCode is the status the upstream answered; 0 when the
	// response did not come from the upstream.
	TargetResponseCode int

	// ResponseLatency is the whole request, first byte in to last byte out.
	ResponseLatency time.Duration
	// BackendLatency is the upstream exchange, first byte sent upstream to
	// last byte received from it.
	BackendLatency time.Duration
	// RequestMediationLatency is the time from the first byte received to
	// the first byte sent upstream: the authorization and rate-limit calls
	// and any request buffering. It bounds the authorization latency from
	// above when only Envoy's timings are known.
	RequestMediationLatency time.Duration
	// AuthzLatency is the time authz took to decide; known in decision
	// events only (Envoy's access log does not carry it).
	AuthzLatency time.Duration

	// RequestBytes and ResponseBytes are headers plus body.
	RequestBytes, ResponseBytes uint64

	// UserIP is the client address, as authz judged it (trusted hops).
	UserIP netip.Addr
	// UserAgent is the User-Agent header.
	UserAgent string
	// ServerAddress is the request's host, without a port.
	ServerAddress string
	// ProxyNode is the Envoy node (its --service-node, Istio's proxy id)
	// that logged the request.
	ProxyNode string

	// ErrorType is the fault category; ErrorNone for a request that
	// succeeded.
	ErrorType ErrorType
	// ErrorSubtype says which tier throttled a THROTTLED request.
	ErrorSubtype ThrottleScope
	// ErrorCode is the fault's stable code (the Code* constants and
	// authz's reason codes).
	ErrorCode string
	// ThrottledPolicy is the policy that throttled the request, and
	// ThrottledLimit which of its limits ("burst", "1m0s", "month").
	ThrottledPolicy, ThrottledLimit string
}

// APIID is the catalog's name:version, or "" when the event names no API.
func (e *Event) APIID() string {
	if e.APIName == "" {
		return ""
	}
	return e.APIName + ":" + e.APIVersion
}

// Operation is "METHOD /template", the catalog's operation name, or ""
// when no operation matched.
func (e *Event) Operation() string {
	if e.APIResourceTemplate == "" {
		return ""
	}
	return e.APIMethod + " " + e.APIResourceTemplate
}

// Source is what produced an event.
type Source uint8

const (
	// SourceAccessLog is Envoy's access log: one event per request, with
	// everything the proxy saw.
	SourceAccessLog Source = iota + 1
	// SourceDecision is authz itself, for deployments without an access
	// log: the decision only, no response or upstream.
	SourceDecision
)

var sourceNames = [...]string{"", "accesslog", "decision"}

func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// eventName is the OpenTelemetry log record's event name per source.
func (s Source) eventName() string {
	if s == SourceDecision {
		return "portcullis.authz.decision"
	}
	return "portcullis.api.request"
}

// ErrorType is a fault's category, WSO2's errorType. The set is closed.
type ErrorType uint8

const (
	ErrorNone ErrorType = iota
	// ErrorAuth: authz refused the request, or could not decide.
	ErrorAuth
	// ErrorThrottled: a rate limit refused the request.
	ErrorThrottled
	// ErrorTargetConnectivity: the upstream could not be reached or did
	// not answer in time.
	ErrorTargetConnectivity
	// ErrorOther: any other failure (a 5xx, no route, a client that left).
	ErrorOther
)

var errorTypeNames = [...]string{"", "AUTH", "THROTTLED", "TARGET_CONNECTIVITY", "OTHER"}

func (t ErrorType) String() string {
	if int(t) < len(errorTypeNames) {
		return errorTypeNames[t]
	}
	return "OTHER"
}

// ErrorTypes returns every category but ErrorNone, for pre-creating
// metric series.
func ErrorTypes() []ErrorType {
	return []ErrorType{ErrorAuth, ErrorThrottled, ErrorTargetConnectivity, ErrorOther}
}

// ThrottleScope is the tier whose limit throttled a request: the policy
// levels of DESIGN's contract, and the burst limit beside any of them.
type ThrottleScope uint8

const (
	ThrottleNone ThrottleScope = iota
	ThrottleSubscription
	ThrottleApplication
	ThrottleAPI
	ThrottleResource
	// ThrottleBurst: a policy's burst (spike) limit, whatever its level.
	ThrottleBurst
	// ThrottleUnknown: throttled by a rule outside the catalog's policies
	// (another domain's rule file), or with no metadata saying which.
	ThrottleUnknown
)

var throttleNames = [...]string{"", "SUBSCRIPTION", "APPLICATION", "API", "RESOURCE", "BURST", "UNKNOWN"}

func (s ThrottleScope) String() string {
	if int(s) < len(throttleNames) {
		return throttleNames[s]
	}
	return "UNKNOWN"
}

// Code is the stable error code of a throttled request at this scope.
func (s ThrottleScope) Code() string {
	switch s {
	case ThrottleSubscription:
		return CodeThrottledSubscription
	case ThrottleApplication:
		return CodeThrottledApplication
	case ThrottleAPI:
		return CodeThrottledAPI
	case ThrottleResource:
		return CodeThrottledResource
	case ThrottleBurst:
		return CodeThrottledBurst
	}
	return CodeThrottled
}

// Stable error codes. Refusals by authz carry authz's own reason codes
// (missing_credential, not_subscribed, ...); the codes here are the rest.
// A code never changes meaning once released: dashboards and alerts key on
// them.
const (
	// AUTH
	CodeAuthzDenied = "authz_denied" // ext_authz refused, no reason in metadata
	CodeAuthzError  = "authz_error"  // ext_authz failed (timeout, unreachable) and failed closed

	// THROTTLED
	CodeThrottledSubscription = "throttled_subscription"
	CodeThrottledApplication  = "throttled_application"
	CodeThrottledAPI          = "throttled_api"
	CodeThrottledResource     = "throttled_resource"
	CodeThrottledBurst        = "throttled_burst"
	CodeThrottled             = "throttled" // scope unknown

	// TARGET_CONNECTIVITY
	CodeUpstreamConnectionFailure     = "upstream_connection_failure"     // UF
	CodeNoHealthyUpstream             = "no_healthy_upstream"             // UH
	CodeUpstreamTimeout               = "upstream_timeout"                // UT
	CodeUpstreamRetryLimitExceeded    = "upstream_retry_limit_exceeded"   // URX
	CodeUpstreamOverflow              = "upstream_overflow"               // UO
	CodeUpstreamConnectionTermination = "upstream_connection_termination" // UC
	CodeUpstreamReset                 = "upstream_reset"                  // UR
	CodeUpstreamProtocolError         = "upstream_protocol_error"         // UPE
	CodeUpstreamMaxStreamDuration     = "upstream_max_stream_duration"    // UMSDR
	CodeDNSResolutionFailure          = "dns_resolution_failure"          // DF
	CodeNoCluster                     = "no_cluster"                      // NC

	// OTHER
	CodeRateLimitError        = "ratelimit_error"         // RLSE: the rate-limit service failed closed
	CodeNoRouteFound          = "no_route_found"          // NR: Envoy had no route
	CodeStreamIdleTimeout     = "stream_idle_timeout"     // SI
	CodeDurationTimeout       = "duration_timeout"        // DT
	CodeLocalReset            = "local_reset"             // LR
	CodeOverload              = "overload"                // OM
	CodeInvalidRequestHeaders = "invalid_request_headers" // IH
	CodeDownstreamProtocol    = "downstream_protocol_error"
	CodeFaultInjected         = "fault_injected"      // FI
	CodeClientDisconnected    = "client_disconnected" // DC, DR before any response
	CodeTarget5xx             = "target_5xx"          // the upstream answered 5xx
	CodeProxy5xx              = "proxy_5xx"           // Envoy answered 5xx, no flag says why
	CodeNoResponse            = "no_response"         // status 0, no flag says why
)
