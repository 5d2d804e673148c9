package extauthz_test

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/pkg/extauthz"
)

// FuzzRequestFromCheck feeds arbitrary wire bytes as a CheckRequest: the
// conversion and the whole Check must never panic, a converted request
// always has a method, an origin-form path and lower-case header names,
// and every check is answered with a response (a malformed one with a
// refusal), never a gRPC error, since the decider here always decides.
func FuzzRequestFromCheck(f *testing.F) {
	raw := check("GET", "/petstore/v1/pets")
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "X-Api-Key", RawValue: []byte(keyOK)}, {Key: "x-api-key", Value: "dup"},
	}}
	for _, seed := range []*authv3.CheckRequest{
		check("GET", "/petstore/v1/pets", "x-api-key: "+keyOK),
		check("GET", "/petstore/v1/pets?api_key="+keyOK),
		check("POST", "/petstore/v1/pets", "authorization: Bearer a.b.c"),
		check("GET", "/petstore/v1/../admin"),
		check("", ""),
		raw,
		{},
	} {
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s, err := extauthz.New(newAuthorizer(f), extauthz.Options{HTTPPrefix: "/authz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var cr authv3.CheckRequest
		if proto.Unmarshal(b, &cr) != nil {
			return
		}
		req, err := extauthz.RequestFromCheck(&cr)
		if err == nil {
			if req.Method == "" || !strings.HasPrefix(req.Path, "/") {
				t.Fatalf("converted request without method or origin-form path: %+v", req)
			}
			for k := range req.Headers {
				if strings.IndexFunc(k, func(r rune) bool { return 'A' <= r && r <= 'Z' }) >= 0 {
					t.Fatalf("header name %q is not lower case", k)
				}
			}
		}
		resp, err := s.Check(context.Background(), &cr)
		if err != nil || resp == nil {
			t.Fatalf("Check = %v, %v; want a response", resp, err)
		}
	})
}
