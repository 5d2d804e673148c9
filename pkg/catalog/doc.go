// Package catalog turns the catalog's YAML documents (IdentityProvider, API,
// Application, Subscription, Policy) into an immutable, indexed Snapshot.
//
// It is read before the request path, not on it: both binaries load the
// catalog at start and on change, and every request then asks the current
// Snapshot by key (an issuer, a client id, an API key's SHA-256, a policy
// name) without scanning a list. pkg/route, pkg/authz and pkg/apikey read
// APIs, applications and subscriptions from it; pkg/rules reads the compiled
// Policy documents.
//
// Three steps, each usable alone: Decode reads one file strictly (an unknown
// field, a wrong type, an unknown kind or apiVersion is a Problem naming the
// file and line); Build validates the whole catalog and reports every
// Problem at once, then compiles and indexes it; Source holds the current
// Snapshot behind an atomic pointer, reloads on change and keeps the last
// good one when a reload fails.
package catalog

// The catalog names time zones for calendar-month quotas; embedding the zone
// database makes them load the same on a scratch or distroless image as on
// a developer's machine.
import _ "time/tzdata"
