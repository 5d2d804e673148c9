// Package accesslog is Envoy's access-log service
// (envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs) for
// analytics: each finished HTTP request Envoy logs becomes one
// analytics.Event, handed to a non-blocking sink (the analytics Emitter).
//
// It is step 4 of the request path, after the response: Istio's
// envoyHttpAls provider (with a Telemetry resource enabling it) streams
// entries to authz's gRPC port. The entry carries the dynamic metadata of
// steps 1 and 2, which is where the event's API, operation, application,
// key type and user come from (namespace envoy.filters.http.ext_authz,
// pkg/authz's Meta* keys) and which tier throttled it
// (envoy.filters.http.ratelimit, what pkg/rls returns on OVER_LIMIT).
//
// # From entry to event
//
//   - API and operation: authz's api ("name:version") and operation
//     ("METHOD /template"); the base path, application owner and display
//     name from the catalog in force. Without an operation the method is
//     the request's.
//   - Statuses: response_code is what the client got; it is also the
//     target's status when response_code_details is via_upstream (Envoy's
//     own replies have other details).
//   - Latencies (AccessLogCommon timings, all from the first byte
//     received): response = time_to_last_downstream_tx_byte (else
//     duration); backend = time_to_last_upstream_rx_byte -
//     time_to_first_upstream_tx_byte; request mediation =
//     time_to_first_upstream_tx_byte, the ext_authz and rate-limit calls
//     and any buffering before the upstream. Envoy's access log does not
//     carry the ext_authz call's own latency (its ExtAuthzLoggingInfo
//     filter state has no protobuf form to log), so authzLatency stays
//     empty here; decision events measure it.
//   - Bytes: request and response headers plus bodies.
//   - Client address: pkg/apikey.ClientAddr over downstream_remote_address
//     (ext_authz's source address) and the logged x-forwarded-for, with
//     authz's trusted hops, so the event names the address authz judged.
//   - User agent, host (server.address), x-request-id (request_id, else
//     authz's request_id).
//   - Faults: classify's table (response flags, details, status); the
//     codes are the analytics package's.
//
// Nothing is read from the path, the query, the logged headers or the
// trailers: an entry whose request carried a token or an API key yields
// an event without it.
//
// Entries that are not a finished request (intermediate entries of long
// streams, start-of-request and upstream-side log types) and TCP entries
// yield no event and are counted in entries_skipped_total.
//
// # Loss and gaps
//
// The stream is lossy by design: Envoy buffers entries, drops them when
// its buffer is full or no stream is up, never resends, and the messages
// carry no sequence number, so the receiving side cannot count what it
// did not get. What it can show:
//
//   - entries_total{node}: entries received per Envoy node. Envoy counts
//     what it wrote (access_logs.grpc_access_log.logs_written) and
//     dropped (logs_dropped) per proxy; the difference between its
//     logs_written and this counter over the same node is the loss on the
//     wire, and logs_dropped the loss before it.
//   - node_streams_total{node}: streams opened per node; every stream
//     after a node's first is a reconnect, and whatever Envoy had in
//     flight when the previous one broke is gone.
//   - streams_closed_total{reason}: every end but eof (Envoy closing
//     cleanly) can lose entries; drain counts the ends this replica forced
//     on shutdown.
//   - node_last_entry_timestamp_seconds{node}: a node that serves traffic
//     (by its own metrics) but whose last entry is old has a gap now.
//
// Node ids in Istio are per pod, unbounded over time: MaxNodes of them get
// series, a new node takes the series of one silent for NodeIdle with no
// open stream, and the rest share node="_other".
//
// On drain (internal/server closes Draining before it stops) every stream
// ends with UNAVAILABLE, so Envoy opens its next stream to another
// replica instead of being cut at the grace deadline.
package accesslog
