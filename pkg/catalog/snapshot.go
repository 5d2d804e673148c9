package catalog

import (
	"slices"
	"strings"
)

// Snapshot is one loaded, validated catalog. It is immutable: a reload
// builds a new one and swaps it in whole, so a request sees one consistent
// catalog from start to end by reading the pointer once. Every lookup is a
// map access; nothing on the request path scans a list.
//
// The values it returns are shared by every request and must not be
// modified.
type Snapshot struct {
	idps         map[string]*CompiledIdentityProvider
	idpsByIssuer map[string]*CompiledIdentityProvider
	apis         map[string]*CompiledAPI
	routes       map[route]*CompiledAPI // host "" serves any host
	apps         map[string]*CompiledApplication
	clients      map[string]clientEntry
	keys         map[[32]byte]*CompiledAPIKey
	subs         map[subKey]*CompiledSubscription
	policies     map[string]*CompiledPolicy

	idpList    []*CompiledIdentityProvider
	apiList    []*CompiledAPI
	appList    []*CompiledApplication
	subList    []*CompiledSubscription
	policyList []*CompiledPolicy
}

type route struct{ host, basePath string }

type clientEntry struct {
	app     *CompiledApplication
	keyType KeyType
}

type subKey struct{ app, api string }

// index builds the sorted lists; the maps are filled by Build.
func (s *Snapshot) index() {
	s.idpList = sortedValues(s.idps, func(v *CompiledIdentityProvider) string { return v.Name })
	s.apiList = sortedValues(s.apis, func(v *CompiledAPI) string { return v.Name })
	s.appList = sortedValues(s.apps, func(v *CompiledApplication) string { return v.Name })
	s.policyList = sortedValues(s.policies, func(v *CompiledPolicy) string { return v.Name })
	s.subList = sortedValues(s.subs, func(v *CompiledSubscription) string { return v.Name })
}

func sortedValues[K comparable, V any](m map[K]V, name func(V) string) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b V) int { return strings.Compare(name(a), name(b)) })
	return out
}

// IdentityProvider returns the provider named name.
func (s *Snapshot) IdentityProvider(name string) (*CompiledIdentityProvider, bool) {
	v, ok := s.idps[name]
	return v, ok
}

// IdentityProviderByIssuer returns the provider whose issuer is iss, the
// "iss" of a token.
func (s *Snapshot) IdentityProviderByIssuer(iss string) (*CompiledIdentityProvider, bool) {
	v, ok := s.idpsByIssuer[iss]
	return v, ok
}

// IdentityProviders returns every provider, sorted by name.
func (s *Snapshot) IdentityProviders() []*CompiledIdentityProvider { return slices.Clone(s.idpList) }

// API returns the API named name (metadata.name, not name:version).
func (s *Snapshot) API(name string) (*CompiledAPI, bool) {
	v, ok := s.apis[name]
	return v, ok
}

// APIAt returns the API serving basePath exactly on host: one listing the
// host, or else one without hosts. host is compared in lower case. Prefix
// matching of a request path against base paths is pkg/route's job; this
// is its exact lookup.
func (s *Snapshot) APIAt(host, basePath string) (*CompiledAPI, bool) {
	if host != "" {
		if v, ok := s.routes[route{host: strings.ToLower(host), basePath: basePath}]; ok {
			return v, true
		}
	}
	v, ok := s.routes[route{basePath: basePath}]
	return v, ok
}

// APIs returns every API, sorted by name.
func (s *Snapshot) APIs() []*CompiledAPI { return slices.Clone(s.apiList) }

// Application returns the application named name.
func (s *Snapshot) Application(name string) (*CompiledApplication, bool) {
	v, ok := s.apps[name]
	return v, ok
}

// ApplicationByClientID returns the application owning an OAuth client id,
// and whether that client is a production or a sandbox one.
func (s *Snapshot) ApplicationByClientID(clientID string) (*CompiledApplication, KeyType, bool) {
	e, ok := s.clients[clientID]
	return e.app, e.keyType, ok
}

// ApplicationByKeyHash returns the application and key whose SHA-256 is
// hash. The catalog knows keys only by hash, so a leaked catalog leaks no
// key.
func (s *Snapshot) ApplicationByKeyHash(hash [32]byte) (*CompiledApplication, *CompiledAPIKey, bool) {
	k, ok := s.keys[hash]
	if !ok {
		return nil, nil, false
	}
	return k.Application, k, true
}

// Applications returns every application, sorted by name.
func (s *Snapshot) Applications() []*CompiledApplication { return slices.Clone(s.appList) }

// Subscription returns the subscription of application app to API api
// (both metadata names). An application has at most one per API.
func (s *Snapshot) Subscription(app, api string) (*CompiledSubscription, bool) {
	v, ok := s.subs[subKey{app: app, api: api}]
	return v, ok
}

// Subscriptions returns every subscription, sorted by name.
func (s *Snapshot) Subscriptions() []*CompiledSubscription { return slices.Clone(s.subList) }

// Policy returns the compiled policy named name, as the rate-limit server
// looks up the policy authz named in a descriptor.
func (s *Snapshot) Policy(name string) (*CompiledPolicy, bool) {
	v, ok := s.policies[name]
	return v, ok
}

// Policies returns every policy, sorted by name.
func (s *Snapshot) Policies() []*CompiledPolicy { return slices.Clone(s.policyList) }
