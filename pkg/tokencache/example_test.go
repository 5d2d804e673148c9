package tokencache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/catalog"
	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/tokencache"
)

// A verifier that is slow or remote (an introspection client) asked once per
// token per cache life.
func Example() {
	calls := 0
	verify := tokencache.VerifierFunc(func(_ context.Context, raw string) (*identity.Token, error) {
		calls++
		if raw != "good-token" {
			return nil, fmt.Errorf("introspect: %w: token is not active", identity.ErrInvalid)
		}
		return &identity.Token{ClientID: "app-1", Expiry: time.Now().Add(time.Hour)}, nil
	})
	cache, err := tokencache.New(verify, catalog.TokenCachePolicy{MaxTTL: time.Minute}, tokencache.Options{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 3 {
		tok, _ := cache.Verify(ctx, "good-token")
		_, err := cache.Verify(ctx, "bad-token")
		fmt.Println(tok.ClientID, errors.Is(err, identity.ErrInvalid))
	}
	fmt.Println("verifier calls:", calls)
	// Output:
	// app-1 true
	// app-1 true
	// app-1 true
	// verifier calls: 2
}
