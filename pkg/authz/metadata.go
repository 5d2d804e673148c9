package authz

// Dynamic metadata keys: DESIGN's contract between authz, the shipped
// EnvoyFilter's rate-limit actions and the analytics sink. Envoy files them
// under the namespace envoy.filters.http.ext_authz. Renaming one breaks
// every deployed EnvoyFilter: they are as stable as the flags.
const (
	MetaAPI         = "api"         // name:version
	MetaOperation   = "operation"   // METHOD /template
	MetaApplication = "application" // application name
	MetaUser        = "user"        // end-user subject
	MetaKeyType     = "key_type"    // PRODUCTION or SANDBOX

	MetaSubscriptionCounter = "subscription_counter" // application:name:version
	MetaSubscriptionPolicy  = "subscription_policy"

	MetaApplicationCounter = "application_counter" // application:user, or application
	MetaApplicationPolicy  = "application_policy"

	MetaAPICounter     = "api_counter" // name:version
	MetaAPIPolicy      = "api_policy"
	MetaAPIPolicyGroup = "api_policy_group"

	MetaResourceCounter     = "resource_counter" // name:version:METHOD /template
	MetaResourcePolicy      = "resource_policy"
	MetaResourcePolicyGroup = "resource_policy_group"

	MetaRequestID = "request_id"

	// MetaErrorCode is set on refusals only: the reason's stable code, so
	// that the access-log entry of a denied request tells analytics why.
	MetaErrorCode = "error_code"
)

// Metadata is an allowed request's dynamic metadata, one field per key of
// DESIGN's contract table. It is a struct rather than a map so that a
// decision builds it without allocating (a map was a fifth of Decide's
// time); Each and Map give the key/value view the transports and tests
// use. An empty field is an absent key: a rate-limit level without a
// policy has none of its keys, so that Envoy drops that level's
// descriptor instead of counting under an empty policy name.
type Metadata struct {
	API, Operation, Application, User, KeyType           string
	SubscriptionCounter, SubscriptionPolicy              string
	ApplicationCounter, ApplicationPolicy                string
	APICounter, APIPolicy, APIPolicyGroup                string
	ResourceCounter, ResourcePolicy, ResourcePolicyGroup string
	RequestID                                            string
	ErrorCode                                            string // refusals only
}

// Each calls fn with every key that has a value, in the contract table's
// order.
func (m *Metadata) Each(fn func(key, value string)) {
	for _, kv := range [...]struct{ k, v string }{
		{MetaAPI, m.API}, {MetaOperation, m.Operation}, {MetaApplication, m.Application},
		{MetaUser, m.User}, {MetaKeyType, m.KeyType},
		{MetaSubscriptionCounter, m.SubscriptionCounter}, {MetaSubscriptionPolicy, m.SubscriptionPolicy},
		{MetaApplicationCounter, m.ApplicationCounter}, {MetaApplicationPolicy, m.ApplicationPolicy},
		{MetaAPICounter, m.APICounter}, {MetaAPIPolicy, m.APIPolicy}, {MetaAPIPolicyGroup, m.APIPolicyGroup},
		{MetaResourceCounter, m.ResourceCounter}, {MetaResourcePolicy, m.ResourcePolicy},
		{MetaResourcePolicyGroup, m.ResourcePolicyGroup},
		{MetaRequestID, m.RequestID}, {MetaErrorCode, m.ErrorCode},
	} {
		if kv.v != "" {
			fn(kv.k, kv.v)
		}
	}
}

// Len is the number of keys with a value.
func (m *Metadata) Len() int {
	n := 0
	m.Each(func(string, string) { n++ })
	return n
}

// Map returns the keys with a value as a map.
func (m *Metadata) Map() map[string]string {
	out := make(map[string]string, m.Len())
	m.Each(func(k, v string) { out[k] = v })
	return out
}
