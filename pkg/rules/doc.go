// Package rules turns a rate-limit request's domain and descriptors into the
// counters to check: which limits apply, under which counter key, and
// whether they are enforced.
//
// On the request path it is the first half of step 2 in DESIGN's diagram:
// pkg/rls hands every ShouldRateLimit request to (*Set).Resolve, builds one
// quota.Check per Limit of every resolved Rule, and lets a quota.Store apply
// them atomically. Resolve does no I/O and allocates little, because it runs
// for every request Envoy sends.
//
// A Set is compiled from two sources:
//
//   - envoyproxy/ratelimit rule files, read unchanged (ParseFile, LoadDir).
//     Matching reproduces envoyproxy/ratelimit's config_impl.go, quirks
//     included: per level the exact "key_value" entry first, then the
//     previous level's "*"-suffixed wildcard entries in file order, then the
//     key-only entry; a limit applies only when the request's descriptor ends
//     at its node; key-only entries count each distinct value separately; a
//     descriptor-level limit override applies in any known domain and is never
//     shadow; unlimited rules count nothing; a rule named in another matched
//     rule's replaces list is dropped. Counter keys are built as
//     envoyproxy/ratelimit's cache_key.go builds them, minus the time window,
//     which quota.Plan appends.
//
//   - Portcullis Policy documents, as catalog.Build compiled them
//     (catalog.CompiledPolicy: the one place a Policy is validated and given
//     its meaning), served in the domain "portcullis" from the descriptors
//     the shipped EnvoyFilter builds out of authz's dynamic metadata:
//     ("policy_scope", s), ("counter", c), ("policy", p) and optionally
//     ("group", g). Each group counts its limits plus the policy's burst, as
//     CompiledPolicy.LimitsFor says. A descriptor that does not fit resolves
//     to no limit with an outcome of its own, never to an error.
//
// Metric cardinality: a Rule's Name comes from configuration only (the
// rule's name, its configuration path, or the policy name), never from a
// request's values. envoyproxy/ratelimit's detailed_metric and
// value_to_metric options, which put request values into stat names, are
// accepted so that existing files load, and deliberately ignored.
package rules
