package suite

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
)

func TestMetricSumAddsTheSamplesWhoseLabelsMatch(t *testing.T) {
	const exposition = `# HELP portcullis_jwt_verifications_total JWT verifications.
# TYPE portcullis_jwt_verifications_total counter
portcullis_jwt_verifications_total{idp="a",reason="",result="ok"} 10
portcullis_jwt_verifications_total{idp="b",reason="",result="ok"} 5
portcullis_jwt_verifications_total{idp="a",reason="expired",result="invalid"} 2
portcullis_jwt_verifications_total_other 100
portcullis_introspect_calls_total{provider="a",result="active"} 3e+00
process_cpu_seconds_total 1.5
`
	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"every sample of the metric", "portcullis_jwt_verifications_total", nil, 17},
		{"samples with one label", "portcullis_jwt_verifications_total", []string{`result="ok"`}, 15},
		{"samples with two labels", "portcullis_jwt_verifications_total", []string{`result="ok"`, `idp="b"`}, 5},
		{"a metric without labels", "process_cpu_seconds_total", nil, 1.5},
		{"a value in exponent form", "portcullis_introspect_calls_total", nil, 3},
		{"a metric that is absent", "portcullis_absent_total", nil, 0},
		{"a label no sample has", "portcullis_jwt_verifications_total", []string{`result="unavailable"`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricSum([]byte(exposition), tt.metric, tt.labels...); got != tt.want {
				t.Errorf("metricSum(%s, %v) = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}

func TestMintLikeSignsDistinctCopiesThatVerify(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key := jose.JSONWebKey{Key: priv, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: &key}, new(jose.SignerOptions).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "https://idp.test", "aud": "api", "client_id": "c", "scope": "pets:read", "jti": "abc", "exp": 2000000000.0}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	template, _ := jws.CompactSerialize()

	const n = 5
	minted := mintLike(t, template, key, n)
	seen := map[string]bool{}
	for i, tok := range minted {
		parsed, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		h := parsed.Signatures[0].Header
		if h.KeyID != "rsa-1" || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
			t.Errorf("token %d: header kid %q typ %v, want the template's rsa-1 and at+jwt", i, h.KeyID, h.ExtraHeaders[jose.HeaderType])
		}
		body, err := parsed.Verify(&priv.PublicKey)
		if err != nil {
			t.Fatalf("token %d does not verify: %v", i, err)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		jti, _ := got["jti"].(string)
		if seen[jti] || jti == "abc" {
			t.Errorf("token %d: jti %q is not new", i, jti)
		}
		seen[jti] = true
		for k, v := range claims {
			if k != "jti" && got[k] != v {
				t.Errorf("token %d: claim %s = %v, want the template's %v", i, k, got[k], v)
			}
		}
	}
}

// recordingCaller answers with the request it was given.
type recordingCaller struct{}

func (recordingCaller) Call(_ context.Context, req proto.Message) (proto.Message, error) {
	return req, nil
}

func (recordingCaller) Close() error { return nil }

func TestSendEachOnceSendsEveryMessageOnceAcrossCallers(t *testing.T) {
	pool := []proto.Message{wrapperspb.String("a"), wrapperspb.String("b"), wrapperspb.String("c")}
	newCaller := sendEachOnce(pool, func(context.Context, *grpc.ClientConn) (loadgen.Caller, error) {
		return recordingCaller{}, nil
	})
	ctx := context.Background()
	first, _ := newCaller(ctx, nil)
	second, _ := newCaller(ctx, nil) // a later run's caller continues the pool
	var sent []string
	for _, c := range []loadgen.Caller{first, second, first} {
		resp, err := c.Call(ctx, wrapperspb.String("ignored"))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, resp.(*wrapperspb.StringValue).GetValue())
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
	if _, err := second.Call(ctx, nil); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a call past the pool = %v, want RESOURCE_EXHAUSTED", err)
	}
}

func TestProcessCPUGrowsWithWork(t *testing.T) {
	pid := os.Getpid()
	before, err := processCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := statCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 || stat < 0 {
		t.Fatalf("CPU time %v (stat %v), want positive: this process has run", before, stat)
	}
	// Spin until the reading moves; the bound on the loop keeps a broken
	// reader from hanging the test.
	var x uint64
	for range 1 << 30 {
		x++
		if x%(1<<20) == 0 {
			after, err := processCPU(pid)
			if err != nil {
				t.Fatal(err)
			}
			if after > before {
				return
			}
		}
	}
	t.Fatalf("CPU time stayed at %v through a billion increments", before)
}
