package manifests

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Descriptors builds the descriptors Envoy's rate-limit filter sends for
// one request, from route rate_limits and the request's dynamic metadata,
// so that a test without an Envoy binary plays Envoy's part faithfully.
// Only the actions Portcullis ships are implemented; any other action is
// an error rather than a guess.
//
// The semantics are Envoy's (api/envoy/config/route/v3/route_components.proto,
// RateLimit.Action, and source/common/router/router_ratelimit.cc):
//
//   - Each RateLimit yields at most one descriptor, its entries in action
//     order. If any action fails, the whole descriptor is dropped and the
//     other RateLimits are unaffected.
//   - generic_key appends (descriptor_key, descriptor_value), the key
//     defaulting to "generic_key". It never fails.
//   - metadata with source DYNAMIC reads metadata_key.key's namespace of
//     the dynamic metadata and walks path through nested structs. Only a
//     non-empty string matches ("A match will only happen if the value in
//     the metadata is of type string"); a missing value, an empty string
//     or a value of another type counts as empty. An empty value takes
//     default_value when one is set; otherwise the action fails, unless
//     skip_if_absent is true, in which case it appends nothing and
//     succeeds (Envoy reads the value as a string, which is empty for any
//     other type, and falls back in that order).
//
// rate_limits' stage, disable_key, limit and hits_addend do not change
// which descriptors are built and are ignored; Envoy calls the service
// only when at least one descriptor remains, so an empty result means no
// call.
func Descriptors(limits []*routev3.RateLimit, dynamic *corev3.Metadata) ([]*rlv3.RateLimitDescriptor, error) {
	var out []*rlv3.RateLimitDescriptor
	for i, rl := range limits {
		desc := &rlv3.RateLimitDescriptor{}
		ok := true
		for j, a := range rl.GetActions() {
			entry, matched, err := populate(a, dynamic)
			if err != nil {
				return nil, fmt.Errorf("rate_limits[%d].actions[%d]: %w", i, j, err)
			}
			if !matched {
				ok = false
				break
			}
			if entry != nil {
				desc.Entries = append(desc.Entries, entry)
			}
		}
		if ok && len(desc.Entries) > 0 {
			out = append(out, desc)
		}
	}
	return out, nil
}

// populate is one action: the entry it appends (nil for none) and whether
// the descriptor survives it.
func populate(a *routev3.RateLimit_Action, dynamic *corev3.Metadata) (*rlv3.RateLimitDescriptor_Entry, bool, error) {
	switch {
	case a.GetGenericKey() != nil:
		g := a.GetGenericKey()
		key := g.GetDescriptorKey()
		if key == "" {
			key = "generic_key"
		}
		return &rlv3.RateLimitDescriptor_Entry{Key: key, Value: g.GetDescriptorValue()}, true, nil
	case a.GetMetadata() != nil:
		m := a.GetMetadata()
		if m.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
			return nil, false, fmt.Errorf("metadata source %s is not simulated", m.GetSource())
		}
		v := lookup(dynamic, m.GetMetadataKey()).GetStringValue()
		switch {
		case v != "":
			return &rlv3.RateLimitDescriptor_Entry{Key: m.GetDescriptorKey(), Value: v}, true, nil
		case m.GetDefaultValue() != "":
			return &rlv3.RateLimitDescriptor_Entry{Key: m.GetDescriptorKey(), Value: m.GetDefaultValue()}, true, nil
		default:
			return nil, m.GetSkipIfAbsent(), nil
		}
	default:
		return nil, false, fmt.Errorf("action %v is not simulated", a)
	}
}

// lookup is Envoy's Config::Metadata::metadataValue: the value at key's
// path in key's namespace, or an empty Value when any step is missing or
// not a struct.
func lookup(md *corev3.Metadata, key *metadatav3.MetadataKey) *structpb.Value {
	s := md.GetFilterMetadata()[key.GetKey()]
	if s == nil || len(key.GetPath()) == 0 {
		return &structpb.Value{}
	}
	path := key.GetPath()
	for i, seg := range path {
		v, ok := s.GetFields()[seg.GetKey()]
		if !ok {
			return &structpb.Value{}
		}
		if i == len(path)-1 {
			return v
		}
		if s = v.GetStructValue(); s == nil {
			return &structpb.Value{}
		}
	}
	return &structpb.Value{}
}
