package catalog_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/watch"
	"github.com/portcullis-dev/portcullis/pkg/catalog"
)

// A request's lookups: the credential, then the subscription, then the
// plan's limits, each a single map read on the snapshot in use.
func ExampleLoadPath() {
	snap, err := catalog.LoadPath(context.Background(), "testdata/catalog.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	app, keyType, _ := snap.ApplicationByClientID("mobile-client")
	api, _ := snap.APIAt("api.example.com", "/petstore/v1")
	sub, _ := snap.Subscription(app.Name, api.Name)
	limits, _ := sub.Policy.LimitsFor(catalog.DefaultGroup)
	fmt.Println(app.Name, keyType, api.ID, sub.State.Allows(keyType))
	fmt.Println(sub.Counter, sub.Policy.Name, limits)

	_, _, found := snap.ApplicationByKeyHash(sha256.Sum256([]byte("a guessed key")))
	fmt.Println("guessed key found:", found)
	// Output:
	// mobile-app PRODUCTION petstore:v1 true
	// mobile-app:petstore:v1 gold [5000/1m0s sliding-window 50/1s fixed-window]
	// guessed key found: false
}

// How a binary wires the catalog: the watcher first, so that no change
// between the first load and watching is missed; then Load; then Run.
func ExampleSource() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := "testdata/catalog.yaml"

	src, err := catalog.NewSource(catalog.SourceOptions{
		Path:       path,
		Logger:     slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := watch.New([]string{path}, watch.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := src.Load(ctx); err != nil {
		fmt.Println("no catalog:", err)
		return
	}
	src.OnUpdate(func(s *catalog.Snapshot) {
		fmt.Println("policies in use:", len(s.Policies()))
	})
	cancel() // a binary would run until SIGTERM
	if err := src.Run(ctx, w); err != nil {
		fmt.Println(err)
	}
	// Output:
	// policies in use: 5
}
