// Package server runs the gRPC server and the HTTP admin server of a
// binary, with the operational behaviour both binaries share: gRPC health
// and reflection, per-method Prometheus metrics, optional OpenTelemetry
// tracing, optional TLS or mutual TLS with certificates reloaded from disk,
// /metrics, /healthz and /readyz on the admin port, and a graceful drain on
// shutdown.
//
// On the request path it is the front door: Envoy's ext_authz, rate-limit
// and access-log calls arrive on the gRPC listener and go to the services
// the binary registers (pkg/extauthz, pkg/rls, pkg/accesslog); Prometheus
// and the kubelet call the admin listener. Which services and handlers run
// is the binary's choice; this package only hosts them.
package server
