package accesslog

import (
	"encoding/json"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

// FuzzConvert: whatever the metadata, status and details hold, an entry
// converts without panicking into an event whose JSON is valid, and
// nothing the request carried in its path, query, headers or referer
// reaches the event.
func FuzzConvert(f *testing.F) {
	f.Add("petstore:v1", "GET /pets/{id}", "not_subscribed", "subscription", "burst", uint32(429), "request_rate_limited", "token-123")
	f.Add("", "", "", "", "", uint32(0), "", "k")
	f.Add("a:b:c", "GET", "no_route", "resource", "1m0s", uint32(503), "via_upstream", "pcl_live_x")
	f.Add(":", " /", "\xff", "api", "", uint32(200), "ext_authz_error", "\x00")
	f.Fuzz(func(t *testing.T, api, operation, code, scope, limitName string, status uint32, details, secret string) {
		for _, in := range []string{api, operation, code, scope, limitName, details} {
			if strings.Contains(in, "SECRET") {
				t.Skip("a metadata value names the marker itself")
			}
		}
		secret = "SECRET-" + secret
		authzMD := map[string]*structpb.Value{}
		for k, v := range map[string]string{"api": api, "operation": operation, "error_code": code, "application": api, "user": operation} {
			authzMD[k] = structpb.NewStringValue(v)
		}
		rlMD := map[string]*structpb.Value{
			"policy_scope": structpb.NewStringValue(scope), "limit_name": structpb.NewStringValue(limitName), "policy": structpb.NewStringValue(scope),
		}
		var unauthorized *alsdata.ResponseFlags_Unauthorized
		if status == 403 {
			unauthorized = &alsdata.ResponseFlags_Unauthorized{}
		}
		e := &alsdata.HTTPAccessLogEntry{
			CommonProperties: &alsdata.AccessLogCommon{
				ResponseFlags: &alsdata.ResponseFlags{RateLimited: status == 429, UnauthorizedDetails: unauthorized},
				Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
					AuthzNamespace: {Fields: authzMD}, RateLimitNamespace: {Fields: rlMD},
				}},
			},
			Request: &alsdata.HTTPRequestProperties{
				Path: "/p/" + secret + "?api_key=" + secret, OriginalPath: "/" + secret, Referer: "https://x/?t=" + secret,
				RequestHeaders: map[string]string{"authorization": "Bearer " + secret, "x-api-key": secret},
			},
			Response: &alsdata.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status), ResponseCodeDetails: details,
				ResponseHeaders: map[string]string{"set-cookie": secret}},
		}
		ev := convert("node", e, nil, 1)
		out := analytics.AppendJSON(nil, &ev)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		if strings.Contains(string(out), "SECRET-") {
			t.Fatalf("the request's credential reached the event: %s", out)
		}
		if ev.ErrorType == analytics.ErrorNone && (status == 0 || status >= 500 || status == 429 || status == 403) {
			t.Fatalf("status %d with details %q is no fault: %s", status, details, out)
		}
	})
}
