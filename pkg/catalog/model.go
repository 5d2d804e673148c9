package catalog

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// Scope is the level a Policy counts at. A policy written for one level
// cannot be used at another, because its counter key (subscription,
// application and user, API, operation) would mean something else.
type Scope uint8

const (
	ScopeSubscription Scope = iota + 1
	ScopeApplication
	ScopeAPI
	ScopeResource
)

var scopeNames = [...]string{"", "subscription", "application", "api", "resource"}

// String is the name used in Policy documents and in the policy_scope
// rate-limit descriptor.
func (s Scope) String() string {
	if int(s) < len(scopeNames) && s != 0 {
		return scopeNames[s]
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// ParseScope reads a scope name as written in a Policy document or a
// policy_scope descriptor.
func ParseScope(s string) (Scope, error) {
	for i, n := range scopeNames {
		if i > 0 && n == s {
			return Scope(i), nil
		}
	}
	return 0, fmt.Errorf("unknown scope %q (want subscription, application, api or resource)", s)
}

// KeyType separates production from sandbox credentials, so that a
// subscription can block one and not the other and analytics can tell them
// apart.
type KeyType uint8

const (
	KeyTypeProduction KeyType = iota + 1
	KeyTypeSandbox
)

// String is the name used in documents and in the key_type metadata.
func (k KeyType) String() string {
	switch k {
	case KeyTypeProduction:
		return "PRODUCTION"
	case KeyTypeSandbox:
		return "SANDBOX"
	}
	return fmt.Sprintf("keytype(%d)", uint8(k))
}

// ParseKeyType reads PRODUCTION or SANDBOX.
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "PRODUCTION":
		return KeyTypeProduction, nil
	case "SANDBOX":
		return KeyTypeSandbox, nil
	}
	return 0, fmt.Errorf("unknown key type %q (want PRODUCTION or SANDBOX)", s)
}

// SubscriptionState is a subscription's life-cycle state as an API manager
// sets it; only an active subscription lets requests through.
type SubscriptionState uint8

const (
	StateActive SubscriptionState = iota + 1
	StateBlocked
	StateProdOnlyBlocked // production keys blocked, sandbox keys allowed
	StateOnHold          // awaiting approval
)

var stateNames = [...]string{"", "ACTIVE", "BLOCKED", "PROD_ONLY_BLOCKED", "ON_HOLD"}

func (s SubscriptionState) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseSubscriptionState reads a state; "" is ACTIVE.
func ParseSubscriptionState(s string) (SubscriptionState, error) {
	if s == "" {
		return StateActive, nil
	}
	for i, n := range stateNames {
		if i > 0 && n == s {
			return SubscriptionState(i), nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want ACTIVE, BLOCKED, PROD_ONLY_BLOCKED or ON_HOLD)", s)
}

// Allows reports whether a credential of key type kt may use the
// subscription in this state.
func (s SubscriptionState) Allows(kt KeyType) bool {
	switch s {
	case StateActive:
		return true
	case StateProdOnlyBlocked:
		return kt == KeyTypeSandbox
	}
	return false
}

// Security is the set of credentials an operation accepts. The empty set
// means the operation needs no credential (security: [none]).
type Security uint8

const (
	SecurityOAuth2 Security = 1 << iota
	SecurityAPIKey
)

// SecurityNone accepts requests without a credential.
const SecurityNone Security = 0

// Has reports whether s accepts credential kind k.
func (s Security) Has(k Security) bool { return k != 0 && s&k == k }

func (s Security) String() string {
	if s == SecurityNone {
		return "none"
	}
	var parts []string
	if s.Has(SecurityOAuth2) {
		parts = append(parts, "oauth2")
	}
	if s.Has(SecurityAPIKey) {
		parts = append(parts, "apiKey")
	}
	return strings.Join(parts, ",")
}

// CompiledIdentityProvider is an IdentityProvider with its durations parsed
// and defaults applied.
type CompiledIdentityProvider struct {
	Name   string
	Issuer string
	// JWT is nil when the provider's tokens are opaque (introspection only).
	JWT *JWTVerification
	// Introspection is nil when tokens are verified as JWTs only.
	Introspection *Introspection
	Cache         TokenCachePolicy
	Pos           Pos
	Doc           *IdentityProvider
}

// JWTVerification is how to verify a provider's JWT access tokens.
type JWTVerification struct {
	JWKSURI       string // empty: from the issuer's discovery document
	Audiences     []string
	Algorithms    []string // allow-list; never "none" or HS*
	ClockSkew     time.Duration
	ClientIDClaim string // default "client_id"
	RequireType   string // empty: any "typ"
}

// Introspection is how to ask a provider about an opaque token (RFC 7662).
type Introspection struct {
	Endpoint     string
	ClientID     string
	ClientSecret SecretRef
	AuthMethod   string // client_secret_basic (default) or client_secret_post
}

// SecretRef says where a secret is, never what it is: the catalog is a
// ConfigMap and is logged and diffed, so secrets live in a mounted file or
// the environment and are read by the component that uses them.
type SecretRef struct {
	File string // exactly one of File and Env is set
	Env  string
}

// String names the secret's location, safe to log.
func (r SecretRef) String() string {
	if r.File != "" {
		return "file:" + r.File
	}
	return "env:" + r.Env
}

// TokenCachePolicy bounds how long verified tokens are trusted without
// asking the provider again. A zero duration means the token cache's own
// default.
type TokenCachePolicy struct {
	MaxTTL       time.Duration
	NegativeTTL  time.Duration
	StaleIfError time.Duration
}

// CompiledAPI is an API with its references resolved and its operations
// compiled. ID is the api metadata value and counter, "name:version".
type CompiledAPI struct {
	Name        string
	Version     string
	ID          string
	DisplayName string
	BasePath    string   // "/" or a path without a trailing slash
	Hosts       []string // lower case; empty means any host
	// IdentityProviders are the issuers whose tokens this API trusts.
	IdentityProviders []*CompiledIdentityProvider
	// Security is the API's default; each operation carries its effective set.
	Security Security
	// APIKeyHeaders (lower case) and APIKeyQueryParams are where an API key
	// is looked for.
	APIKeyHeaders     []string
	APIKeyQueryParams []string
	Policy            *CompiledPolicy // nil when the API has no API-level policy
	Operations        []*CompiledOperation
	Pos               Pos
	Doc               *API
}

// IdentityProviderFor returns the trusted provider whose issuer is iss.
// An API trusts a handful of providers, so this is a short scan.
func (a *CompiledAPI) IdentityProviderFor(iss string) (*CompiledIdentityProvider, bool) {
	for _, p := range a.IdentityProviders {
		if p.Issuer == iss {
			return p, true
		}
	}
	return nil, false
}

// CompiledOperation is one method and path template of an API, with the
// security and policy that apply to it.
type CompiledOperation struct {
	API      *CompiledAPI
	Method   string // upper case
	Template string // as written, without the base path
	// Segments is Template split at "/": the route matcher's input.
	Segments []Segment
	// Name is "METHOD /template", the operation metadata value.
	Name string
	// Counter is "name:version:METHOD /template", the resource_counter value.
	Counter  string
	Scopes   []string // OAuth2 scopes a token must carry, all of them
	Security Security // effective: the operation's, or the API's
	Policy   *CompiledPolicy
}

// SegmentKind is what one path segment of an operation template matches.
type SegmentKind uint8

const (
	SegmentLiteral  SegmentKind = iota + 1 // exactly Text
	SegmentParam                           // any one non-empty segment, named Text
	SegmentWildcard                        // "*": any one non-empty segment
	SegmentRest                            // "**": the rest of the path, possibly empty; last only
)

// Segment is one "/"-separated part of an operation template.
type Segment struct {
	Kind SegmentKind
	Text string // the literal, or the parameter's name
}

// CompiledApplication is an Application with its policy resolved.
type CompiledApplication struct {
	Name         string
	DisplayName  string
	Owner        string
	Policy       *CompiledPolicy // nil when the application has no policy
	OAuthClients []OAuthClientBinding
	APIKeys      []*CompiledAPIKey
	Pos          Pos
	Doc          *Application
}

// OAuthClientBinding ties an OAuth client id to its application and key type.
type OAuthClientBinding struct {
	ClientID string
	KeyType  KeyType
}

// CompiledAPIKey is an API key known by its SHA-256 only.
type CompiledAPIKey struct {
	Application *CompiledApplication
	ID          string // safe to log
	Hash        [32]byte
	KeyType     KeyType
	Expires     time.Time      // zero: never
	AllowedIPs  []netip.Prefix // empty: any address
	// AllowedReferrers are patterns as written; a trailing "*" is a prefix.
	AllowedReferrers []string
}

// CompiledSubscription binds an application to an API under a plan.
type CompiledSubscription struct {
	Name        string
	Application *CompiledApplication
	API         *CompiledAPI
	Policy      *CompiledPolicy // the plan; scope subscription
	State       SubscriptionState
	// Counter is "application:name:version", the subscription_counter value.
	Counter string
	Pos     Pos
	Doc     *Subscription
}

// DefaultGroup is the group name reported when no condition group matches.
const DefaultGroup = "default"

// CompiledPolicy is a Policy as counting needs it: limits as quota.Limit
// values, ready for quota.Check.
type CompiledPolicy struct {
	Name  string
	Scope Scope
	// Limits apply when no condition group matches.
	Limits []quota.Limit
	// Burst is spike control counted beside every limit set (default and
	// groups), in a fixed window; nil when the policy has none.
	Burst *quota.Limit
	// StopOnQuotaReach false counts and reports but never denies.
	StopOnQuotaReach bool
	// Groups are tried in order; the first whose conditions all match wins.
	Groups []CompiledGroup
	Pos    Pos
	Doc    *Policy

	counted [][]quota.Limit // [0] default, [i+1] Groups[i]; each with Burst appended
}

// CompiledGroup is a condition group: requests matching all Conditions
// count against Limits instead of the policy's default limits.
type CompiledGroup struct {
	// Description names the group in metadata, descriptors and counters.
	Description string
	Conditions  []CompiledCondition
	Limits      []quota.Limit
}

// LimitsFor returns the limits of the group named group (DefaultGroup or ""
// for the default limits), burst included, so that a rate-limit server given
// a group name by authz counts exactly what the policy says. The slice is
// shared: callers must not modify it.
func (p *CompiledPolicy) LimitsFor(group string) ([]quota.Limit, bool) {
	if group == "" || group == DefaultGroup {
		return p.counted[0], true
	}
	for i := range p.Groups {
		if p.Groups[i].Description == group {
			return p.counted[i+1], true
		}
	}
	return nil, false
}
