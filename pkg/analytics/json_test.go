package analytics_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/pkg/analytics"
)

func TestAppendJSONWritesWSO2FieldNames(t *testing.T) {
	tests := []struct {
		name  string
		event analytics.Event
		want  map[string]any
	}{
		{
			name:  "every field set",
			event: fullEvent(),
			want: map[string]any{
				"source":                  "accesslog",
				"timestamp":               "2026-03-14T15:09:26.535897Z",
				"correlationId":           "7b1c2e2a-5a4e-4b1e-9d6f-0c2f3b8e1a11",
				"apiName":                 "petstore",
				"apiVersion":              "v1",
				"apiContext":              "/petstore/v1",
				"apiMethod":               "GET",
				"apiResourceTemplate":     "/pets/{id}",
				"applicationId":           "acme-mobile",
				"applicationName":         "Acme Mobile",
				"applicationOwner":        "alice@acme.example",
				"keyType":                 "PRODUCTION",
				"userName":                "user-42",
				"proxyResponseCode":       429.0,
				"responseLatency":         12.345,
				"requestMediationLatency": 2.5,
				"authzLatency":            0.3,
				"requestBytes":            812.0,
				"responseBytes":           231.0,
				"userIp":                  "203.0.113.7",
				"userAgent":               "curl/8.5.0",
				"serverAddress":           "api.acme.example",
				"proxyNode":               "router~10.0.0.5~gw-1.istio-system~istio-system.svc.cluster.local",
				"errorType":               "THROTTLED",
				"errorSubtype":            "SUBSCRIPTION",
				"errorCode":               "throttled_subscription",
				"throttledPolicy":         "gold",
				"throttledLimit":          "1m0s",
			},
		},
		{
			name:  "empty fields are left out",
			event: analytics.Event{Source: analytics.SourceDecision, ProxyResponseCode: 200},
			want:  map[string]any{"source": "decision", "proxyResponseCode": 200.0},
		},
		{
			name: "strings are escaped",
			event: analytics.Event{
				Source:    analytics.SourceAccessLog,
				UserAgent: "quote\" back\\ nl\n tab\t ctl\x01 bad\xff ls\u2028 ok é",
			},
			want: map[string]any{
				"source":    "accesslog",
				"userAgent": "quote\" back\\ nl\n tab\t ctl\x01 bad\ufffd ls\u2028 ok é",
			},
		},
		{
			name:  "latency is rounded to the microsecond",
			event: analytics.Event{Source: analytics.SourceAccessLog, ResponseLatency: 1500*time.Microsecond + 999*time.Nanosecond},
			want:  map[string]any{"source": "accesslog", "responseLatency": 1.5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := analytics.AppendJSON(nil, &tt.event)
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("AppendJSON wrote invalid JSON: %v\n%s", err, out)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			viaMarshal, err := json.Marshal(tt.event)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if string(viaMarshal) != string(out) {
				t.Errorf("json.Marshal and AppendJSON disagree:\n%s\n%s", viaMarshal, out)
			}
		})
	}
}

func TestAppendJSONAllocatesNothingIntoAGrownBuffer(t *testing.T) {
	e := fullEvent()
	buf := analytics.AppendJSON(nil, &e)
	allocs := testing.AllocsPerRun(100, func() { buf = analytics.AppendJSON(buf[:0], &e) })
	if allocs != 0 {
		t.Errorf("AppendJSON allocated %v times per event", allocs)
	}
}

// FuzzAppendJSON: whatever the strings hold, the output is one valid JSON
// object whose string fields decode to what encoding/json would have
// written for them.
func FuzzAppendJSON(f *testing.F) {
	f.Add("curl/8.5.0", "api.acme.example", "abc-123")
	f.Add("quote\" back\\ nl\n", "\xff\xfe", "\u2028\u2029")
	f.Add("", "\x00\x1f\x7f", "é\U0001F600")
	f.Fuzz(func(t *testing.T, ua, host, id string) {
		e := analytics.Event{Source: analytics.SourceAccessLog, UserAgent: ua, ServerAddress: host, CorrelationID: id}
		out := analytics.AppendJSON(nil, &e)
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("invalid JSON for %q %q %q: %v\n%s", ua, host, id, err, out)
		}
		for field, in := range map[string]string{"userAgent": ua, "serverAddress": host, "correlationId": id} {
			if in == "" {
				if _, ok := got[field]; ok {
					t.Errorf("%s: empty value written", field)
				}
				continue
			}
			ref, _ := json.Marshal(in)
			var want string
			if err := json.Unmarshal(ref, &want); err != nil {
				t.Fatalf("encoding/json round trip of %q: %v", in, err)
			}
			if got[field] != want {
				t.Errorf("%s = %q, encoding/json gives %q", field, got[field], want)
			}
		}
	})
}
