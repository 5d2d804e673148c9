package rules

import (
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// node is one level of a rule file's descriptor tree, as
// envoyproxy/ratelimit's rateLimitDescriptor: children by composite key
// ("key" or "key_value"), and the children whose composite key ends in "*"
// again, in file order, as this level's wildcards.
type node struct {
	key       string // composite key of this node
	children  map[string]*node
	wildcards []wildcardChild
	rule      *ruleDef // nil: no rate_limit at this node
	share     bool     // share_threshold: values matched by the wildcard share one counter
}

type wildcardChild struct {
	prefix string // composite key without the trailing "*"
	child  *node
}

func newNode(key string) *node { return &node{key: key, children: map[string]*node{}} }

// ruleDef is a rule file's rate_limit, compiled.
type ruleDef struct {
	name      string // metric name: rate_limit.name, else the config path
	ownName   string // rate_limit.name, what replaces lists refer to
	replaces  []string
	unlimited bool
	shadow    bool
	limits    []Limit
}

// match walks the tree as envoyproxy/ratelimit's GetLimit does, and writes
// the counter key as its cache key generator does, minus the window:
// "domain_" then "key_value_" per entry. For each entry the level is searched
// for the exact "key_value", then for the first of the level's wildcards
// that is a prefix of "key_value", then for "key" alone. The walk stops where
// the tree ends; a rule applies only if it sits at the node of the
// descriptor's last entry.
//
// It returns the rule (nil if none), the key in buf, and where the first
// entry's "key_value" ends in the key, for the hash tag.
func (t *node) match(domain string, entries []*rlv3.RateLimitDescriptor_Entry, buf []byte) (*ruleDef, []byte, int) {
	buf = append(buf, domain...)
	buf = append(buf, '_')
	tagEnd := len(buf)
	var lookup [128]byte
	var found *ruleDef
	level := t
	for i, e := range entries {
		k, v := e.GetKey(), e.GetValue()
		comp := append(lookup[:0], k...)
		comp = append(comp, '_')
		comp = append(comp, v...)
		next := level.children[string(comp)]
		viaWildcard := false
		if next == nil {
			for _, w := range level.wildcards {
				if len(comp) >= len(w.prefix) && string(comp[:len(w.prefix)]) == w.prefix {
					next, viaWildcard = w.child, true
					break
				}
			}
		}
		if next == nil {
			next = level.children[k]
		}

		buf = append(buf, k...)
		buf = append(buf, '_')
		if viaWildcard && next.share {
			buf = append(buf, sharedValue(next.key, k)...)
		} else {
			buf = append(buf, v...)
		}
		if i == 0 {
			tagEnd = len(buf)
		}
		buf = append(buf, '_')

		if next == nil {
			break
		}
		if next.rule != nil && i == len(entries)-1 {
			found = next.rule
		}
		if len(next.children) == 0 {
			break
		}
		level = next
	}
	return found, buf, tagEnd
}

// sharedValue is what a share_threshold wildcard counts under instead of the
// request's value: the wildcard's composite key with "key_" trimmed, as
// envoyproxy/ratelimit trims it (so "files_files/*" counts as "files/*").
func sharedValue(composite, key string) string {
	if len(composite) > len(key) && composite[:len(key)] == key && composite[len(key)] == '_' {
		return composite[len(key)+1:]
	}
	return composite
}

// plainKey writes the counter key of entries without matching.
func plainKey(domain string, entries []*rlv3.RateLimitDescriptor_Entry, buf []byte) ([]byte, int) {
	buf = append(buf, domain...)
	buf = append(buf, '_')
	tagEnd := len(buf)
	for i, e := range entries {
		buf = append(buf, e.GetKey()...)
		buf = append(buf, '_')
		buf = append(buf, e.GetValue()...)
		if i == 0 {
			tagEnd = len(buf)
		}
		buf = append(buf, '_')
	}
	return buf, tagEnd
}

func rlsUnit(v int32) rlsv3.RateLimitResponse_RateLimit_Unit {
	return rlsv3.RateLimitResponse_RateLimit_Unit(v)
}
