package rules

import "sync/atomic"

// Current holds the rule set in force. Reloads Store a new compiled Set;
// requests read it once with Rules and use that value throughout, so a
// reload never changes the rules under a request. The zero value holds an
// empty set that knows no domain.
type Current struct{ p atomic.Pointer[Set] }

// Rules returns the set in force; never nil to callers (a nil *Set is a
// valid empty set).
func (c *Current) Rules() *Set { return c.p.Load() }

// Store puts s in force.
func (c *Current) Store(s *Set) { c.p.Store(s) }
