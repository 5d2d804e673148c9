// Package manifests is Portcullis's mesh wiring, shipped as files, and the
// offline proof that the wiring agrees with the code.
//
// It sits beside the request path rather than on it: the Istio resources
// under istio/ put authz on step 1 (ext_authz, through meshConfig's
// envoyExtAuthzGrpc provider and a CUSTOM AuthorizationPolicy), ratelimit
// on step 2 (an EnvoyFilter whose rate_limits actions turn authz's dynamic
// metadata into DESIGN's descriptors) and authz's analytics sink on step 4
// (envoyHttpAls and a Telemetry resource); base/ runs both services
// (kubectl apply -k) and example/ adds a demo API. The package embeds those
// files and offers what a test playing Envoy's part needs: the shipped
// rate_limits as Envoy's own type (RateLimits) and the descriptors Envoy
// builds from them (Descriptors).
//
// Its tests decode every YAML document strictly into its real type
// (Kubernetes', Istio's, go-control-plane's, kustomize's, the catalog's),
// render the kustomizations, start the real binaries with the rendered
// configuration, and compare the wiring with pkg/authz's metadata keys and
// pkg/rules' descriptor entries, so that a rename on either side fails.
package manifests
