package memstore_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/memstore"
	"github.com/portcullis-dev/portcullis/pkg/quota/quotatest"
)

func newStore(t *testing.T, opts memstore.Options) *memstore.Store {
	t.Helper()
	s, err := memstore.New(opts)
	if err != nil {
		t.Fatalf("memstore.New: %v", err)
	}
	return s
}

func TestStoreConforms(t *testing.T) {
	quotatest.Run(t, func(t *testing.T) quota.Store { return newStore(t, memstore.Options{}) })
}
