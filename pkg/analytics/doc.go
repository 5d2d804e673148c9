// Package analytics is the usage-analytics model and its export: the
// Event (one request: who called which API operation, how it went, how
// long it took), an Emitter that takes events off the request path
// through a bounded queue, and the sinks it batches them to (JSON lines,
// OTLP log records over gRPC or HTTP, Prometheus usage metrics).
//
// It is the end of the request path: pkg/accesslog turns each Envoy
// access-log entry (step 4) into an Event; where no access log is wired,
// RecordDecisions wraps authz's Decider so that each decision (step 1)
// becomes one. Neither waits on export: Emit never blocks, a full queue
// drops and counts (portcullis_analytics_events_dropped_total), and Close
// flushes what was queued when the process stops.
//
// # Fields
//
// JSON names are WSO2 API Manager's analytics names; OpenTelemetry names
// follow the HTTP semantic conventions where one exists, portcullis.*
// otherwise. Empty and zero fields are left out of both.
//
//	JSON (WSO2)               OpenTelemetry                            value
//	source                    portcullis.event.source                  accesslog | decision (also the record's event name:
//	                                                                   portcullis.api.request | portcullis.authz.decision)
//	timestamp                 LogRecord.Timestamp                      request start
//	correlationId             portcullis.correlation_id                x-request-id
//	apiName                   portcullis.api.name                      API metadata.name
//	apiVersion                portcullis.api.version                   API spec.version
//	apiContext                portcullis.api.context                   API base path
//	apiMethod                 http.request.method                      operation method (request method if none matched)
//	apiResourceTemplate       portcullis.api.resource_template         operation template, without the base path
//	  (derived)               http.route                               apiContext + apiResourceTemplate
//	applicationId             portcullis.application.id                Application metadata.name
//	applicationName           portcullis.application.name              display name (or metadata.name)
//	applicationOwner          portcullis.application.owner             spec.owner
//	keyType                   portcullis.key_type                      PRODUCTION | SANDBOX
//	userName                  user.id                                  end-user subject of a token
//	proxyResponseCode         http.response.status_code                status sent to the client
//	targetResponseCode        portcullis.target.status_code            status from the upstream
//	responseLatency           portcullis.latency.response_ms           ms, first byte in to last byte out
//	backendLatency            portcullis.latency.backend_ms            ms, first byte to upstream to last byte from it
//	requestMediationLatency   portcullis.latency.request_mediation_ms  ms, first byte in to first byte to upstream
//	authzLatency              portcullis.latency.authz_ms              ms, authz's decision (decision events)
//	requestBytes              http.request.size                        headers + body
//	responseBytes             http.response.size                       headers + body
//	userIp                    client.address                           client address (trusted hops applied)
//	userAgent                 user_agent.original                      User-Agent
//	serverAddress             server.address                           request host without port
//	proxyNode                 portcullis.proxy.node                    Envoy node id
//	errorType                 portcullis.error.category                AUTH | THROTTLED | TARGET_CONNECTIVITY | OTHER
//	errorSubtype              portcullis.error.subtype                 SUBSCRIPTION | APPLICATION | API | RESOURCE | BURST | UNKNOWN
//	errorCode                 error.type                               stable code (below)
//	throttledPolicy           portcullis.throttle.policy               the policy that throttled
//	throttledLimit            portcullis.throttle.limit                which of its limits: burst, 1m0s, month, ...
//
// OpenTelemetry's error.type wants the most specific low-cardinality
// identifier, which is the error code, so the WSO2 errorType goes to
// portcullis.error.category. There is deliberately no url.path or
// url.query: a path can hold identifiers and a query an API key, and the
// operation template says what the path matched without either.
//
// # Error codes
//
// AUTH: authz's refusal codes as its reasons table names them
// (missing_credential, invalid_credential, key_expired, not_subscribed,
// insufficient_scope, ..., idp_unavailable), authz_denied (refused, no code
// in the metadata), authz_error (the ext_authz call failed and Envoy
// failed closed). authz's no_route, bad_path and malformed_request are
// OTHER (AuthzErrorType).
//
// THROTTLED: throttled_subscription, throttled_application, throttled_api,
// throttled_resource, throttled_burst; throttled when the tier is unknown.
//
// TARGET_CONNECTIVITY: upstream_connection_failure (Envoy flag UF),
// no_healthy_upstream (UH), upstream_timeout (UT),
// upstream_retry_limit_exceeded (URX), upstream_overflow (UO),
// upstream_connection_termination (UC), upstream_reset (UR),
// upstream_protocol_error (UPE), upstream_max_stream_duration (UMSDR),
// dns_resolution_failure (DF), no_cluster (NC).
//
// OTHER: ratelimit_error (RLSE), no_route_found (NR), stream_idle_timeout
// (SI), duration_timeout (DT), local_reset (LR), overload (OM),
// invalid_request_headers (IH), downstream_protocol_error (DPE),
// fault_injected (FI), client_disconnected (DC or DR before a response),
// target_5xx (the upstream answered 5xx), proxy_5xx (Envoy answered 5xx
// and no flag says why), no_response (status 0, no flag).
//
// # Credentials
//
// No event field can hold a token or a key: there is no path, query,
// header map or body, and every string is a catalog name, an address or
// one of the user agent, host, node id and request id. The tests feed
// requests carrying credentials through every producer and sink and look
// for them in the output.
package analytics
