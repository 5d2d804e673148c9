package accesslog

import (
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
	"github.com/portcullis-dev/portcullis/pkg/apikey"
	"github.com/portcullis-dev/portcullis/pkg/authz"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// Metadata namespaces Envoy files the filters' dynamic metadata under.
const (
	// AuthzNamespace holds authz's keys (pkg/authz Meta*).
	AuthzNamespace = "envoy.filters.http.ext_authz"
	// RateLimitNamespace holds what pkg/rls returns on OVER_LIMIT.
	RateLimitNamespace = "envoy.filters.http.ratelimit"
)

// Keys pkg/rls puts under RateLimitNamespace when a request is throttled.
const (
	rlPolicyScope = "policy_scope"
	rlPolicy      = "policy"
	rlRule        = "rule"
	rlLimitName   = "limit_name"
)

// viaUpstream is Envoy's response_code_details when the status came from
// the upstream rather than from Envoy itself.
const viaUpstream = "via_upstream"

// convert builds the event of one access-log entry. snap enriches it
// (base path, owner, display name) and may be nil. Nothing is read from
// the entry's path, query, headers map or body: the event cannot carry a
// credential the request did.
func convert(node string, e *alsdata.HTTPAccessLogEntry, snap *catalog.Snapshot, trustedHops int) analytics.Event {
	cp := e.GetCommonProperties()
	req := e.GetRequest()
	resp := e.GetResponse()
	fm := cp.GetMetadata().GetFilterMetadata()
	az := fm[AuthzNamespace].GetFields()
	rl := fm[RateLimitNamespace].GetFields()

	ev := analytics.Event{
		Source:        analytics.SourceAccessLog,
		ProxyNode:     node,
		CorrelationID: req.GetRequestId(),
		UserAgent:     req.GetUserAgent(),
		ServerAddress: analytics.HostOnly(req.GetAuthority()),
		KeyType:       str(az, authz.MetaKeyType),
		UserName:      str(az, authz.MetaUser),
	}
	if ts := cp.GetStartTime(); ts != nil && ts.IsValid() {
		ev.Timestamp = ts.AsTime()
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = str(az, authz.MetaRequestID)
	}

	setAPI(&ev, snap, str(az, authz.MetaAPI), str(az, authz.MetaOperation))
	if ev.APIMethod == "" {
		if m := req.GetRequestMethod(); m != corev3.RequestMethod_METHOD_UNSPECIFIED {
			ev.APIMethod = m.String()
		}
	}
	if app := str(az, authz.MetaApplication); app != "" {
		ev.ApplicationID, ev.ApplicationName = app, app
		if snap != nil {
			if a, ok := snap.Application(app); ok {
				analytics.SetApplication(&ev, a)
			}
		}
	}

	status := int(resp.GetResponseCode().GetValue())
	ev.ProxyResponseCode = status
	if resp.GetResponseCodeDetails() == viaUpstream {
		ev.TargetResponseCode = status
	}

	ev.ResponseLatency = dur(cp.GetTimeToLastDownstreamTxByte())
	if ev.ResponseLatency == 0 {
		ev.ResponseLatency = dur(cp.GetDuration())
	}
	firstUpTx := dur(cp.GetTimeToFirstUpstreamTxByte())
	ev.RequestMediationLatency = firstUpTx
	if lastUpRx := dur(cp.GetTimeToLastUpstreamRxByte()); firstUpTx > 0 && lastUpRx > firstUpTx {
		ev.BackendLatency = lastUpRx - firstUpTx
	}
	ev.RequestBytes = req.GetRequestHeadersBytes() + req.GetRequestBodyBytes()
	ev.ResponseBytes = resp.GetResponseHeadersBytes() + resp.GetResponseBodyBytes()

	// The address authz judged: Envoy's downstream remote address is the
	// ext_authz source address, and x-forwarded-for as logged is the header
	// authz read.
	if ip, err := apikey.ClientAddr(socketAddr(cp.GetDownstreamRemoteAddress()), req.GetForwardedFor(), trustedHops); err == nil {
		ev.UserIP = ip
	}

	c := classify(cp.GetResponseFlags(), resp.GetResponseCodeDetails(), status, str(az, authz.MetaErrorCode), rl)
	ev.ErrorType, ev.ErrorSubtype, ev.ErrorCode = c.typ, c.scope, c.code
	if c.typ == analytics.ErrorThrottled {
		ev.ThrottledPolicy = str(rl, rlPolicy)
		if ev.ThrottledPolicy == "" {
			ev.ThrottledPolicy = str(rl, rlRule)
		}
		ev.ThrottledLimit = str(rl, rlLimitName)
	}
	return ev
}

// setAPI fills the API and operation fields from authz's api
// ("name:version") and operation ("METHOD /template") values, and the base
// path from the catalog when it has that API.
func setAPI(ev *analytics.Event, snap *catalog.Snapshot, api, operation string) {
	if api != "" {
		ev.APIName, ev.APIVersion, _ = strings.Cut(api, ":")
		if snap != nil {
			if a, ok := snap.API(ev.APIName); ok && a.Version == ev.APIVersion {
				ev.APIContext = a.BasePath
			}
		}
	}
	if method, template, ok := strings.Cut(operation, " "); ok && method != "" && strings.HasPrefix(template, "/") {
		ev.APIMethod, ev.APIResourceTemplate = method, template
	}
}

// str is a string value of the metadata, "" when absent or not a string
// (Envoy's rate-limit actions match string values only, and so does this).
func str(fields map[string]*structpb.Value, key string) string {
	return fields[key].GetStringValue()
}

func dur(d *durationpb.Duration) time.Duration {
	if d == nil || !d.IsValid() {
		return 0
	}
	if v := d.AsDuration(); v > 0 {
		return v
	}
	return 0
}

// socketAddr is an address's IP, "" for a pipe or an internal address.
func socketAddr(a *corev3.Address) string {
	return a.GetSocketAddress().GetAddress()
}
