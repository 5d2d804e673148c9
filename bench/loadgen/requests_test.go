package loadgen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func newRateLimitRequest() proto.Message { return new(rlsv3.RateLimitRequest) }

func TestParseRequests(t *testing.T) {
	one := ExampleRateLimitOne()
	tests := []struct {
		name    string
		in      string
		want    []proto.Message
		wantErr string
	}{
		{
			name: "one YAML message",
			in: `domain: portcullis
descriptors:
  - entries:
      - {key: policy_scope, value: subscription}
      - {key: counter, value: "mobile-app:petstore:v1"}
      - {key: policy, value: gold}
hitsAddend: 1`,
			want: []proto.Message{one},
		},
		{
			name: "one JSON message with proto field names",
			in: `{"domain": "portcullis", "hits_addend": 1, "descriptors": [{"entries": [
				{"key": "policy_scope", "value": "subscription"},
				{"key": "counter", "value": "mobile-app:petstore:v1"},
				{"key": "policy", "value": "gold"}]}]}`,
			want: []proto.Message{one},
		},
		{
			name: "a list of messages",
			in:   "- {domain: a}\n- {domain: b}\n",
			want: []proto.Message{&rlsv3.RateLimitRequest{Domain: "a"}, &rlsv3.RateLimitRequest{Domain: "b"}},
		},
		{
			name: "several documents, a list among them",
			in:   "domain: a\n---\n- {domain: b}\n- {domain: c}\n---\n",
			want: []proto.Message{&rlsv3.RateLimitRequest{Domain: "a"}, &rlsv3.RateLimitRequest{Domain: "b"}, &rlsv3.RateLimitRequest{Domain: "c"}},
		},
		{
			name: "anchors and aliases are expanded",
			in:   "- &m {domain: portcullis, hitsAddend: 1, descriptors: [{entries: [{key: policy_scope, value: subscription}, {key: counter, value: 'mobile-app:petstore:v1'}, {key: policy, value: gold}]}]}\n- *m\n",
			want: []proto.Message{one, one},
		},
		{
			name: "YAML integers in hex and with underscores become decimal",
			in:   "- {domain: a, hitsAddend: 0x10}\n- {domain: b, hitsAddend: 1_000}\n",
			want: []proto.Message{&rlsv3.RateLimitRequest{Domain: "a", HitsAddend: 16}, &rlsv3.RateLimitRequest{Domain: "b", HitsAddend: 1000}},
		},
		{
			name: "an enum by name and a quoted number",
			in:   `{domain: x, descriptors: [{entries: [{key: k, value: v}], limit: {requestsPerUnit: "7", unit: MINUTE}}]}`,
			want: []proto.Message{&rlsv3.RateLimitRequest{Domain: "x", Descriptors: []*rlv3.RateLimitDescriptor{{
				Entries: []*rlv3.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}},
				Limit:   &rlv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 7, Unit: typev3.RateLimitUnit_MINUTE},
			}}}},
		},
		{name: "an unknown field names the message's line", in: "domain: a\n---\n\ndomian: b\n", wantErr: "document 2: message 2 at line 4: "},
		{name: "a scalar document", in: "just text", wantErr: "a message must be a mapping"},
		{name: "a list of scalars", in: "[1, 2]", wantErr: "a message must be a mapping"},
		{name: "a wrong type", in: "domain: [a]", wantErr: "message 1 at line 1"},
		{name: "a number too large for the field", in: "hitsAddend: 99999999999", wantErr: "message 1"},
		{name: "a duplicate key", in: "domain: a\ndomain: b\n", wantErr: `line 2: duplicate key "domain"`},
		{name: "a merge key", in: "base: &b {domain: a}\nx:\n  <<: *b\n", wantErr: "a key must be a plain string"},
		{name: "a mapping key that is not a scalar", in: "? [a]\n: b\n", wantErr: "a key must be a plain string"},
		{name: "invalid YAML", in: "domain: [a\n", wantErr: "document 1"},
		{name: "an empty file", in: "", wantErr: "no messages"},
		{name: "only comments and separators", in: "# nothing\n---\n---\n", wantErr: "no messages"},
		{name: "an empty list", in: "[]", wantErr: "no messages"},
		{name: "a billion laughs", in: laughs(), wantErr: "YAML nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequests([]byte(tt.in), newRateLimitRequest)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequests() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("ParseRequests() (-want +got):\n%s", diff)
			}
		})
	}
}

// laughs nests aliases ten deep, ten wide: 10^10 nodes once expanded.
func laughs() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 10; i++ {
		ref := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.Repeat(ref+", ", 9)+ref)
	}
	return b.String()
}

// TestExampleFilesMatchTheExampleRequests keeps the request files under
// bench/requests and the data of the ghz configs under bench/ghz equal to
// the requests the Go benchmarks build, and valid for their proto types
// (protojson refuses unknown fields), so the three never drift apart.
func TestExampleFilesMatchTheExampleRequests(t *testing.T) {
	tests := []struct {
		file    string
		service Service
		want    proto.Message
	}{
		{"../requests/rls-one.yaml", RateLimitService(), ExampleRateLimitOne()},
		{"../requests/rls-four.yaml", RateLimitService(), ExampleRateLimitFour()},
		{"../requests/authz-apikey.yaml", AuthorizationService(), ExampleCheck()},
		{"../ghz/rls-1-descriptor.json", RateLimitService(), ExampleRateLimitOne()},
		{"../ghz/rls-4-descriptors.json", RateLimitService(), ExampleRateLimitFour()},
		{"../ghz/authz-check-apikey.json", AuthorizationService(), ExampleCheck()},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Ext(tt.file) == ".json" {
				data = ghzData(t, data, tt.service)
			}
			got, err := ParseRequests(data, tt.service.NewRequest)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]proto.Message{tt.want}, got, protocmp.Transform()); diff != "" {
				t.Errorf("%s differs from the Go example (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// ghzData checks a ghz config's fields against what ghz's runner.Config
// reads (ghz v0.93: call as package.Service.Method, host, and the rest)
// and returns its data.
func ghzData(t *testing.T, config []byte, svc Service) []byte {
	t.Helper()
	var cfg struct {
		Name        string          `json:"name"`
		Call        string          `json:"call"`
		Host        string          `json:"host"`
		Insecure    bool            `json:"insecure"`
		Total       uint            `json:"total"`
		SkipFirst   uint            `json:"skipFirst"`
		Concurrency uint            `json:"concurrency"`
		Connections uint            `json:"connections"`
		Timeout     string          `json:"timeout"`
		DialTimeout string          `json:"connect-timeout"`
		Data        json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(config)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("ghz config: %v", err)
	}
	// ghz names the method package.Service.Method, gRPC /package.Service/Method.
	wantCall := strings.Replace(strings.TrimPrefix(svc.Method, "/"), "/", ".", 1)
	switch {
	case cfg.Call != wantCall:
		t.Errorf("call = %q, want %q", cfg.Call, wantCall)
	case !cfg.Insecure:
		t.Error("insecure must be true: the servers and the no-op listen in plaintext by default")
	case cfg.Host == "" || cfg.Total == 0 || cfg.Concurrency == 0 || cfg.Connections == 0:
		t.Errorf("host, total, concurrency and connections must be set: %+v", cfg)
	case cfg.SkipFirst >= cfg.Total:
		t.Errorf("skipFirst %d leaves nothing of total %d", cfg.SkipFirst, cfg.Total)
	}
	return cfg.Data
}

// FuzzParseRequests checks that no input panics the parser, and that what
// it accepts survives a protojson round trip unchanged.
func FuzzParseRequests(f *testing.F) {
	for _, file := range []string{"../requests/rls-one.yaml", "../requests/rls-four.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("- {domain: a}\n- &x {domain: b, hitsAddend: 0x10}\n- *x\n---\ndomain: c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := ParseRequests(data, newRateLimitRequest)
		if err != nil {
			return
		}
		if len(msgs) == 0 {
			t.Fatal("no error and no messages")
		}
		for _, m := range msgs {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatalf("marshal accepted message: %v", err)
			}
			back, err := ParseRequests(b, newRateLimitRequest)
			if err != nil {
				t.Fatalf("re-parse %s: %v", b, err)
			}
			if !proto.Equal(m, back[0]) {
				t.Fatalf("round trip changed %v into %v", m, back[0])
			}
		}
	})
}
