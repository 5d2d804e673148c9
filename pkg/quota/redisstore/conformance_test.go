package redisstore

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/redistest"
	"github.com/portcullis-dev/portcullis/pkg/quota"
	"github.com/portcullis-dev/portcullis/pkg/quota/quotatest"
)

// The suite gives every subtest fresh keys, so one server and one store
// serve them all. The Cluster run is in TestOnCluster.

func TestConformsOnStandaloneRedis(t *testing.T) {
	s := newStore(t, redistest.Start(t).Client(t), Options{})
	quotatest.Run(t, func(*testing.T) quota.Store { return s })
}

// With the local cache, requests denied from it report the checks they did
// not read as Unknown, which the suite compares on what Unknown promises.
func TestConformsWithTheLocalCache(t *testing.T) {
	s := newStore(t, redistest.Start(t).Client(t), Options{LocalCache: true})
	quotatest.Run(t, func(*testing.T) quota.Store { return s })
}
