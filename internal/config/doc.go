// Package config loads a binary's configuration: defaults, then one YAML
// file decoded strictly, then environment overrides, then command-line
// overrides, then validation of every part. It also reloads the file when it
// changes, keeping the last good value when the new one is wrong.
//
// It is off the request path. Each binary (cmd/authz, cmd/ratelimit)
// defines one Config struct composed of per-package parts, including the
// shared Server, Log and Tracing parts declared here, and passes it through
// Load at start-up and through a Reloader afterwards. Nothing here is
// package-level state: the environment is read through an injected lookup
// function so tests and binaries decide where settings come from.
package config
