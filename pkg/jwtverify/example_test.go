package jwtverify_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/jwtverify"
)

// A Set is built once per catalog, and asked per request with the API's
// trusted providers; errors tell a refusal (401) from an outage
// (UNAVAILABLE, so Envoy's failOpen decides).
func ExampleSet() {
	ctx := context.Background()
	idp := &catalog.CompiledIdentityProvider{
		Name:   "corp",
		Issuer: "https://idp.example.com",
		JWT: &catalog.JWTVerification{
			Audiences:  []string{"https://api.example.com"},
			Algorithms: []string{"RS256", "ES256"},
		},
	}
	set, err := jwtverify.NewSet(ctx, []*catalog.CompiledIdentityProvider{idp}, jwtverify.Options{
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	bearer := "eyJ..." // from the Authorization header
	tok, err := set.Verify(ctx, bearer, []*catalog.CompiledIdentityProvider{idp})
	switch {
	case errors.Is(err, identity.ErrInvalid):
		var ie *jwtverify.InvalidError
		if errors.As(err, &ie) {
			fmt.Println("401:", ie.Reason)
		}
	case errors.Is(err, identity.ErrUnavailable):
		fmt.Println("UNAVAILABLE")
	case err == nil:
		fmt.Println("client", tok.ClientID, "scopes", tok.Scopes)
	}
	// Output: 401: malformed
}
