package catalog

// The five kinds, as written in files and (later) as CRDs. Field names are
// the contract of examples/catalog.yaml; durations and times stay
// strings here and are parsed by validation, which can then name the
// document and field that is wrong.

// APIVersion is the only version this catalog reads.
const APIVersion = "portcullis.dev/v1alpha1"

// Kind names.
const (
	KindIdentityProvider = "IdentityProvider"
	KindAPI              = "API"
	KindApplication      = "Application"
	KindSubscription     = "Subscription"
	KindPolicy           = "Policy"
)

// Metadata is the Kubernetes-style object metadata the catalog keeps.
type Metadata struct {
	Name        string            `yaml:"name" json:"name"`
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// IdentityProvider is an OAuth2/OIDC issuer whose tokens authz verifies.
type IdentityProvider struct {
	APIVersion string               `yaml:"apiVersion" json:"apiVersion"`
	Kind       string               `yaml:"kind" json:"kind"`
	Metadata   Metadata             `yaml:"metadata" json:"metadata"`
	Spec       IdentityProviderSpec `yaml:"spec" json:"spec"`
}

// IdentityProviderSpec says how to verify the provider's tokens: as JWTs
// against its keys, by asking it (RFC 7662 introspection), or both.
type IdentityProviderSpec struct {
	Issuer        string             `yaml:"issuer" json:"issuer"`
	JWT           *JWTSpec           `yaml:"jwt,omitempty" json:"jwt,omitempty"`
	Introspection *IntrospectionSpec `yaml:"introspection,omitempty" json:"introspection,omitempty"`
	Cache         TokenCacheSpec     `yaml:"cache,omitempty" json:"cache,omitempty"`
}

// JWTSpec verifies tokens locally, so that most requests never wait on the
// identity provider.
type JWTSpec struct {
	JWKSURI       string   `yaml:"jwksURI,omitempty" json:"jwksURI,omitempty"`
	Audiences     []string `yaml:"audiences,omitempty" json:"audiences,omitempty"`
	Algorithms    []string `yaml:"algorithms,omitempty" json:"algorithms,omitempty"`
	ClockSkew     string   `yaml:"clockSkew,omitempty" json:"clockSkew,omitempty"`
	ClientIDClaim string   `yaml:"clientIdClaim,omitempty" json:"clientIdClaim,omitempty"`
	RequireType   string   `yaml:"requireType,omitempty" json:"requireType,omitempty"`
}

// IntrospectionSpec asks the provider about opaque tokens. The client
// secret is referenced, never written here: the catalog is a ConfigMap.
type IntrospectionSpec struct {
	Endpoint         string `yaml:"endpoint" json:"endpoint"`
	ClientID         string `yaml:"clientId" json:"clientId"`
	ClientSecretFile string `yaml:"clientSecretFile,omitempty" json:"clientSecretFile,omitempty"`
	ClientSecretEnv  string `yaml:"clientSecretEnv,omitempty" json:"clientSecretEnv,omitempty"`
	// AuthMethod is client_secret_basic (the default) or client_secret_post.
	AuthMethod string `yaml:"authMethod,omitempty" json:"authMethod,omitempty"`
}

// TokenCacheSpec bounds how long a verification result is reused, trading
// revocation latency for load on the provider.
type TokenCacheSpec struct {
	MaxTTL       string `yaml:"maxTTL,omitempty" json:"maxTTL,omitempty"`
	NegativeTTL  string `yaml:"negativeTTL,omitempty" json:"negativeTTL,omitempty"`
	StaleIfError string `yaml:"staleIfError,omitempty" json:"staleIfError,omitempty"`
}

// API is a managed API: where it lives, which credentials it accepts, its
// operations and their policies.
type API struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       APISpec  `yaml:"spec" json:"spec"`
}

// APISpec places the API (hosts and base path), names the credentials it
// accepts and lists its operations.
type APISpec struct {
	DisplayName       string      `yaml:"displayName,omitempty" json:"displayName,omitempty"`
	Version           string      `yaml:"version" json:"version"`
	BasePath          string      `yaml:"basePath" json:"basePath"`
	Hosts             []string    `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	IdentityProviders []string    `yaml:"identityProviders,omitempty" json:"identityProviders,omitempty"`
	Security          []string    `yaml:"security,omitempty" json:"security,omitempty"`
	APIKey            *APIKeySpec `yaml:"apiKey,omitempty" json:"apiKey,omitempty"`
	Policy            string      `yaml:"policy,omitempty" json:"policy,omitempty"`
	Operations        []Operation `yaml:"operations" json:"operations"`
}

// APIKeySpec says where a request carries its API key.
type APIKeySpec struct {
	Headers     []string `yaml:"headers,omitempty" json:"headers,omitempty"`
	QueryParams []string `yaml:"queryParams,omitempty" json:"queryParams,omitempty"`
}

// Operation is a method and path template under the API's base path, with
// what it requires beyond the API's defaults.
type Operation struct {
	Method   string   `yaml:"method" json:"method"`
	Path     string   `yaml:"path" json:"path"`
	Scopes   []string `yaml:"scopes,omitempty" json:"scopes,omitempty"`
	Policy   string   `yaml:"policy,omitempty" json:"policy,omitempty"`
	Security []string `yaml:"security,omitempty" json:"security,omitempty"`
}

// Application is a consumer: its OAuth clients and API keys (hashes only).
type Application struct {
	APIVersion string          `yaml:"apiVersion" json:"apiVersion"`
	Kind       string          `yaml:"kind" json:"kind"`
	Metadata   Metadata        `yaml:"metadata" json:"metadata"`
	Spec       ApplicationSpec `yaml:"spec" json:"spec"`
}

// ApplicationSpec lists the credentials that identify the application.
type ApplicationSpec struct {
	DisplayName  string        `yaml:"displayName,omitempty" json:"displayName,omitempty"`
	Owner        string        `yaml:"owner,omitempty" json:"owner,omitempty"`
	Policy       string        `yaml:"policy,omitempty" json:"policy,omitempty"`
	OAuthClients []OAuthClient `yaml:"oauthClients,omitempty" json:"oauthClients,omitempty"`
	APIKeys      []APIKey      `yaml:"apiKeys,omitempty" json:"apiKeys,omitempty"`
}

// OAuthClient binds a client id (the token's client claim) to the
// application, as a production or sandbox credential.
type OAuthClient struct {
	ClientID string `yaml:"clientId" json:"clientId"`
	KeyType  string `yaml:"keyType" json:"keyType"`
}

// APIKey is a key known only by its SHA-256, so that the catalog can be
// read, diffed and logged without leaking keys.
type APIKey struct {
	ID               string   `yaml:"id" json:"id"`
	SHA256           string   `yaml:"sha256" json:"sha256"`
	KeyType          string   `yaml:"keyType" json:"keyType"`
	Expires          string   `yaml:"expires,omitempty" json:"expires,omitempty"`
	AllowedCIDRs     []string `yaml:"allowedCIDRs,omitempty" json:"allowedCIDRs,omitempty"`
	AllowedReferrers []string `yaml:"allowedReferrers,omitempty" json:"allowedReferrers,omitempty"`
}

// Subscription binds an application to an API under a plan.
type Subscription struct {
	APIVersion string           `yaml:"apiVersion" json:"apiVersion"`
	Kind       string           `yaml:"kind" json:"kind"`
	Metadata   Metadata         `yaml:"metadata" json:"metadata"`
	Spec       SubscriptionSpec `yaml:"spec" json:"spec"`
}

// SubscriptionSpec names the application, the API and the plan (a Policy of
// scope subscription).
type SubscriptionSpec struct {
	Application string `yaml:"application" json:"application"`
	API         string `yaml:"api" json:"api"`
	Policy      string `yaml:"policy" json:"policy"`
	State       string `yaml:"state,omitempty" json:"state,omitempty"`
}

// Policy is a throttling tier at one scope.
type Policy struct {
	APIVersion string     `yaml:"apiVersion" json:"apiVersion"`
	Kind       string     `yaml:"kind" json:"kind"`
	Metadata   Metadata   `yaml:"metadata" json:"metadata"`
	Spec       PolicySpec `yaml:"spec" json:"spec"`
}

// PolicySpec is what a Policy allows at its scope: default limits, an
// optional burst beside them, and condition groups that override the
// default limits for matching requests.
type PolicySpec struct {
	Scope            string           `yaml:"scope" json:"scope"`
	Limits           []LimitSpec      `yaml:"limits" json:"limits"`
	Burst            *BurstSpec       `yaml:"burst,omitempty" json:"burst,omitempty"`
	StopOnQuotaReach *bool            `yaml:"stopOnQuotaReach,omitempty" json:"stopOnQuotaReach,omitempty"`
	ConditionGroups  []ConditionGroup `yaml:"conditionGroups,omitempty" json:"conditionGroups,omitempty"`
}

// LimitSpec is requests per a duration or per calendar month.
type LimitSpec struct {
	Requests  uint64 `yaml:"requests" json:"requests"`
	Per       string `yaml:"per" json:"per"`
	Algorithm string `yaml:"algorithm,omitempty" json:"algorithm,omitempty"`
	TimeZone  string `yaml:"timeZone,omitempty" json:"timeZone,omitempty"`
}

// BurstSpec is spike control counted beside the quota, in a fixed window.
type BurstSpec struct {
	Requests uint64 `yaml:"requests" json:"requests"`
	Per      string `yaml:"per" json:"per"`
}

// ConditionGroup gives different limits to requests that match all of its
// conditions. Groups are tried in order; the first match wins. A group is
// named by its description in metadata and counters, so descriptions are
// required and unique within a policy.
type ConditionGroup struct {
	Description string      `yaml:"description" json:"description"`
	Conditions  []Condition `yaml:"conditions" json:"conditions"`
	Limits      []LimitSpec `yaml:"limits" json:"limits"`
}

// Condition holds exactly one of its matchers.
type Condition struct {
	IP         *IPCondition    `yaml:"ip,omitempty" json:"ip,omitempty"`
	Header     *ValueCondition `yaml:"header,omitempty" json:"header,omitempty"`
	QueryParam *ValueCondition `yaml:"queryParam,omitempty" json:"queryParam,omitempty"`
	Claim      *ValueCondition `yaml:"claim,omitempty" json:"claim,omitempty"`
}

// IPCondition matches the client address against a CIDR (a bare address is
// one host).
type IPCondition struct {
	CIDR   string `yaml:"cidr" json:"cidr"`
	Invert bool   `yaml:"invert,omitempty" json:"invert,omitempty"`
}

// ValueCondition matches a named value; Value may end in "*" for a prefix
// or be "*" alone for presence.
type ValueCondition struct {
	Name   string `yaml:"name" json:"name"`
	Value  string `yaml:"value" json:"value"`
	Invert bool   `yaml:"invert,omitempty" json:"invert,omitempty"`
}
