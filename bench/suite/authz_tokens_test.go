package suite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/bench/loadgen"
)

// mintLike signs n distinct copies of template, an access token the
// identity provider issued, with the provider's own key: the same header
// (alg, kid, typ) and claims, each with its own jti. authz cannot tell
// them from tokens the provider issued, and has verified none of them, so
// each costs a signature verification. The provider's token endpoint
// takes milliseconds a token; signing here spreads the RSA work over every
// core.
func mintLike(tb testing.TB, template string, key jose.JSONWebKey, n int) []string {
	tb.Helper()
	header, claims, err := decodeJWT(template)
	if err != nil {
		tb.Fatalf("decode the provider's token: %v", err)
	}
	if header.KeyID != key.KeyID || header.Algorithm != key.Algorithm {
		tb.Fatalf("the provider's token is signed by %s/%s, not its current %s key %s", header.Algorithm, header.KeyID, key.Algorithm, key.KeyID)
	}
	jti, _ := claims["jti"].(string)
	opts := new(jose.SignerOptions).WithType(jose.ContentType(header.Type))
	out := make([]string, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			// A signer per worker: go-jose does not promise one is safe
			// for concurrent use. The JSONWebKey carries the kid.
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: &key}, opts)
			if err != nil {
				mu.Lock()
				first = cmpOr(first, fmt.Errorf("new signer: %w", err))
				mu.Unlock()
				return
			}
			own := make(map[string]any, len(claims))
			for k, v := range claims {
				own[k] = v
			}
			for i := w; i < n; i += workers {
				own["jti"] = jti + "-bench-" + strconv.Itoa(i)
				payload, err := json.Marshal(own)
				if err == nil {
					var jws *jose.JSONWebSignature
					if jws, err = signer.Sign(payload); err == nil {
						out[i], err = jws.CompactSerialize()
					}
				}
				if err != nil {
					mu.Lock()
					first = cmpOr(first, fmt.Errorf("sign token %d: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
	return out
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

type jwtHeader struct {
	Algorithm string `json:"alg"`
	KeyID     string `json:"kid"`
	Type      string `json:"typ"`
}

// decodeJWT reads a compact JWS's header and claims without verifying it:
// the token is the one the test just received from its own provider.
func decodeJWT(raw string) (jwtHeader, map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return jwtHeader{}, nil, fmt.Errorf("a compact JWS has 3 parts, this has %d", len(parts))
	}
	var h jwtHeader
	var claims map[string]any
	for i, dst := range []any{&h, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return jwtHeader{}, nil, fmt.Errorf("part %d: %w", i+1, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return jwtHeader{}, nil, fmt.Errorf("part %d: %w", i+1, err)
		}
	}
	return h, claims, nil
}

// sendEachOnce makes a NewCaller that ignores the request the generator
// hands it and sends the next unsent message of pool instead, shared by
// every worker of every run: warm-up and all rounds together send each
// message exactly once. The generator restarts its message cycle at the
// first message every run, which would make every round after the first
// send tokens authz has already verified and cached. When the pool runs
// out a call fails with RESOURCE_EXHAUSTED, so a pool sized too small
// shows as errors instead of as cache hits.
func sendEachOnce(pool []proto.Message, inner loadgen.NewCaller) loadgen.NewCaller {
	next := new(atomic.Int64)
	return func(ctx context.Context, conn *grpc.ClientConn) (loadgen.Caller, error) {
		c, err := inner(ctx, conn)
		if err != nil {
			return nil, err
		}
		return &onceCaller{inner: c, pool: pool, next: next}, nil
	}
}

type onceCaller struct {
	inner loadgen.Caller
	pool  []proto.Message
	next  *atomic.Int64
}

func (o *onceCaller) Call(ctx context.Context, _ proto.Message) (proto.Message, error) {
	i := o.next.Add(1) - 1
	if i >= int64(len(o.pool)) {
		return nil, status.Errorf(codes.ResourceExhausted, "all %d fresh tokens sent", len(o.pool))
	}
	return o.inner.Call(ctx, o.pool[i])
}

func (o *onceCaller) Close() error { return o.inner.Close() }

// metricSum adds up every sample of the metric called name whose labels
// hold each of the given `k="v"` pairs, in a Prometheus text exposition.
func metricSum(exposition []byte, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// metrics fetches a server's Prometheus exposition from its HTTP port.
func metrics(tb testing.TB, httpAddr string) []byte {
	tb.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		tb.Fatalf("scrape %s: %v", httpAddr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("scrape %s: status %d, %v", httpAddr, resp.StatusCode, err)
	}
	return body
}
