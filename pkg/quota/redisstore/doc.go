// Package redisstore is the quota.Store on Redis, shared by every replica of
// the ratelimit server: standalone Redis, Sentinel or Cluster, Redis 7.
//
// On the request path it sits under pkg/rls: rls builds a request's checks,
// and Apply checks and charges all of them in one atomic step, one Lua
// script call, then answers from the states the script judged (computed in
// Go by quota.Op.Result, so Redis and the memory store agree to the bit).
//
// # One script call per request, many per round trip
//
// The script mirrors quota.Step: it reads every key once, judges the ops in
// order (a key checked twice sees the earlier check's tentative charge),
// and charges every key only if no enforced op is over, with an expiry
// relative to the request's time (plus a second's grace against clock skew
// between replicas), so Redis's clock never counts. Requests
// from concurrent callers are coalesced: a few workers each take one queued
// request, then whatever else is already queued, and send them as one
// pipeline of EVALSHA. An idle store sends at once (there is no timer);
// under load, batches grow. Each caller waits for its own answer or its
// context, whichever comes first: a deadline is honoured whatever Redis
// does, and a full queue fails at once. Every failure wraps
// quota.ErrUnavailable. The script is loaded on first use and again when
// Redis answers NOSCRIPT (after a restart or a failover).
//
// # Keys and Cluster
//
// Keys are Prefix + "{tag}" + counter key + "|" + limit id + "|" + window,
// as quota.Plan writes them. A check without a Tag is tagged with its Key
// (Prefix + "{key}{}key|..."), so that a check's keys (a sliding window has
// two) always share a hash slot. On Cluster, a request whose checks span
// several slots runs one script call per slot, in one pipeline; each call
// charges only if its own enforced checks fit. If any call denied (or
// failed), the calls that charged are undone by a second script before the
// caller is answered:
//
//   - a counter (fixed or sliding window) loses exactly the hits the call
//     added, concurrent charges kept;
//   - a token bucket's TAT is put back only if no request has moved it
//     since; otherwise the charge stays until it drains.
//
// The guarantee: the store never admits more than a limit allows, as long
// as the replicas' clocks agree to within the refund's round trip (a key
// that expires and is recreated between charge and refund is the one way a
// refund could remove someone else's charge). Admission can err the other
// way: until the refund lands, a concurrent request sees the denied
// request's charge and may be denied too, and a token bucket refund that
// lost its race leaves the charge in place. Standalone and Sentinel Redis
// need none of this: tags are ignored there and every request is exactly
// one script call.
//
// # Local over-limit cache
//
// With Options.LocalCache, the stored value of a key that Redis found over
// a limit is remembered until that request could next succeed, and later
// requests are judged on it in Go, by quota.Step. Those with an enforced
// check over on remembered keys are denied without a round trip, and
// charged nothing, as Redis would charge nothing. Checks on remembered keys
// get the Result Redis would give (exact while this replica is the only
// writer, otherwise optimistic); the others are reported with
// quota.Result.Unknown set, since they were not read. Each check is judged
// with its own limit and hits, so limit overrides and smaller requests are
// never denied on another check's account. A remembered value can only be
// too low (counters grow within their window), so the cache never denies a
// request that Redis would admit, except one still carrying charges a
// Cluster refund has since removed.
//
// # URLs
//
// ParseURL reads the -redis flag. Forms:
//
//	redis://[[user]:password@]host[:port][/db]
//	rediss://[[user]:password@]host[:port][/db]                     TLS
//	redis+sentinel://[[user]:password@]host[:port],host[:port].../master[/db]
//	redis+cluster://[[user]:password@]host[:port],host[:port]...
//
// rediss+sentinel:// and rediss+cluster:// are the TLS variants. The port
// defaults to 6379 (26379 for sentinels), db to 0; an IPv6 host is written
// in brackets, [::1]:6379. The user and password (percent-encode any of
// ":@/?#%") apply to the Redis servers; sentinels that need their own use
// the sentinel_username and sentinel_password options. Options, as a query
// string:
//
//	dial_timeout, read_timeout, write_timeout, pool_timeout   Go durations: 250ms, 2s
//	pool_size, min_idle_conns                                 connections per node
//	max_retries                                               0 disables retries
//	client_name                                               CLIENT SETNAME
//	tls_server_name                                           rediss only; default the first host
//	sentinel_username, sentinel_password                      redis+sentinel only
//
// Example: redis+sentinel://:s3cret@10.0.0.1,10.0.0.2,10.0.0.3/mymaster/0?dial_timeout=200ms
//
// Clients built from these options honour context deadlines
// (ContextTimeoutEnabled), so a worker stuck on an unresponsive Redis gives
// up when its callers have.
package redisstore
