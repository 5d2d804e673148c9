package analytics

import (
	"go.opentelemetry.io/otel/attribute"
)

// OpenTelemetry attribute keys of an event's log record. The first group
// are OpenTelemetry's HTTP semantic conventions (stable since semconv
// 1.23); the rest have no convention and live under portcullis.*. The
// package documentation has the whole table beside the JSON names.
const (
	AttrHTTPRequestMethod      = "http.request.method"
	AttrHTTPRoute              = "http.route"
	AttrHTTPResponseStatusCode = "http.response.status_code"
	AttrHTTPRequestSize        = "http.request.size"
	AttrHTTPResponseSize       = "http.response.size"
	AttrClientAddress          = "client.address"
	AttrUserAgentOriginal      = "user_agent.original"
	AttrServerAddress          = "server.address"
	AttrUserID                 = "user.id"
	AttrErrorType              = "error.type"

	AttrSource                  = "portcullis.event.source"
	AttrCorrelationID           = "portcullis.correlation_id"
	AttrAPIName                 = "portcullis.api.name"
	AttrAPIVersion              = "portcullis.api.version"
	AttrAPIContext              = "portcullis.api.context"
	AttrAPIResourceTemplate     = "portcullis.api.resource_template"
	AttrApplicationID           = "portcullis.application.id"
	AttrApplicationName         = "portcullis.application.name"
	AttrApplicationOwner        = "portcullis.application.owner"
	AttrKeyType                 = "portcullis.key_type"
	AttrTargetStatusCode        = "portcullis.target.status_code"
	AttrResponseLatency         = "portcullis.latency.response_ms"
	AttrBackendLatency          = "portcullis.latency.backend_ms"
	AttrRequestMediationLatency = "portcullis.latency.request_mediation_ms"
	AttrAuthzLatency            = "portcullis.latency.authz_ms"
	AttrProxyNode               = "portcullis.proxy.node"
	AttrErrorCategory           = "portcullis.error.category"
	AttrErrorSubtype            = "portcullis.error.subtype"
	AttrThrottledPolicy         = "portcullis.throttle.policy"
	AttrThrottledLimit          = "portcullis.throttle.limit"
)

// AppendAttributes appends e's fields as OpenTelemetry attributes, leaving
// out the empty ones as AppendJSON does.
func AppendAttributes(kvs []attribute.KeyValue, e *Event) []attribute.KeyValue {
	str := func(k, v string) {
		if v != "" {
			kvs = append(kvs, attribute.String(k, v))
		}
	}
	num := func(k string, v int64) {
		if v != 0 {
			kvs = append(kvs, attribute.Int64(k, v))
		}
	}
	str(AttrSource, e.Source.String())
	str(AttrCorrelationID, e.CorrelationID)
	str(AttrAPIName, e.APIName)
	str(AttrAPIVersion, e.APIVersion)
	str(AttrAPIContext, e.APIContext)
	str(AttrHTTPRequestMethod, e.APIMethod)
	str(AttrAPIResourceTemplate, e.APIResourceTemplate)
	str(AttrHTTPRoute, Route(e))
	str(AttrApplicationID, e.ApplicationID)
	str(AttrApplicationName, e.ApplicationName)
	str(AttrApplicationOwner, e.ApplicationOwner)
	str(AttrKeyType, e.KeyType)
	str(AttrUserID, e.UserName)
	num(AttrHTTPResponseStatusCode, int64(e.ProxyResponseCode))
	num(AttrTargetStatusCode, int64(e.TargetResponseCode))
	for _, l := range [...]struct {
		k string
		v float64
	}{
		{AttrResponseLatency, millis(e.ResponseLatency)},
		{AttrBackendLatency, millis(e.BackendLatency)},
		{AttrRequestMediationLatency, millis(e.RequestMediationLatency)},
		{AttrAuthzLatency, millis(e.AuthzLatency)},
	} {
		if l.v > 0 {
			kvs = append(kvs, attribute.Float64(l.k, l.v))
		}
	}
	num(AttrHTTPRequestSize, clampInt64(e.RequestBytes))
	num(AttrHTTPResponseSize, clampInt64(e.ResponseBytes))
	if e.UserIP.IsValid() {
		kvs = append(kvs, attribute.String(AttrClientAddress, e.UserIP.String()))
	}
	str(AttrUserAgentOriginal, e.UserAgent)
	str(AttrServerAddress, e.ServerAddress)
	str(AttrProxyNode, e.ProxyNode)
	if e.ErrorType != ErrorNone {
		str(AttrErrorCategory, e.ErrorType.String())
		code := e.ErrorCode
		if code == "" {
			code = e.ErrorType.String()
		}
		str(AttrErrorType, code)
	}
	if e.ErrorSubtype != ThrottleNone {
		str(AttrErrorSubtype, e.ErrorSubtype.String())
	}
	str(AttrThrottledPolicy, e.ThrottledPolicy)
	str(AttrThrottledLimit, e.ThrottledLimit)
	return kvs
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
