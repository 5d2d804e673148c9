package quotatest

import (
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// reference is the simplest store that is right by definition: a map that
// never expires anything, and quota.Step. Expiry in a real store must be
// invisible, so a store that agrees with it expires correctly too.
type reference struct{ m map[string]int64 }

func newReference() *reference { return &reference{m: make(map[string]int64)} }

func (r *reference) apply(now time.Time, checks []quota.Check) []quota.Result {
	ops := quota.Plan(now, checks)
	allowed, judged, writes := quota.Step(ops, func(k string) int64 { return r.m[k] })
	for k, v := range writes {
		r.m[k] = v
	}
	results := make([]quota.Result, len(ops))
	for i, o := range ops {
		results[i] = o.Result(judged[i], allowed)
	}
	return results
}
