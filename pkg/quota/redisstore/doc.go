// Package redisstore is the quota.Store on Redis, shared by every replica of
// the ratelimit server: standalone Redis, Sentinel or Cluster, Redis 7.
//
// On the request path it sits under pkg/rls: rls builds a request's checks,
// and Apply checks and charges all of them in one atomic step inside a Lua
// script, then answers from the states the script judged (computed in Go by
// quota.Op.Result, so Redis and the memory store agree to the bit).
//
// # One script call per batch of requests
//
// Requests from concurrent callers are coalesced: a few workers each take
// one queued request, then whatever else is already queued (up to
// MaxBatch), and send them all in one script call, one round trip. An idle
// store sends at once (there is no timer); under load, batches grow. A
// script call has fixed costs in Redis (the command, the script's setup,
// its arguments, the reply) that a batch pays once, and a key that several
// requests of the batch share is read and written once.
//
// The script mirrors quota.Step request by request, in batch order: it
// reads every key of the batch once, then judges each request against the
// state the earlier requests of the batch left, its own earlier checks'
// tentative charges overlaid (a key checked twice sees the earlier charge),
// and commits the request's charges only if no enforced check is over; a
// denied request charges nothing. A script runs atomically, so each request
// is as atomic as if it had been sent alone, and the answers are exactly
// those the requests would get sent one by one in that order. At the end
// each changed key is written once: a new key, or a token bucket's, with an
// expiry relative to the requests' time (plus a second's grace against
// clock skew between replicas), so Redis's clock never counts; an existing
// window counter by INCRBY, which keeps the expiry set when the key was
// created (a window's end does not move) and costs Redis less. A
// batch larger than a few hundred checks is split into several calls, in
// one pipeline.
//
// Each caller waits for its own answer or its context, whichever comes
// first: a deadline is honoured whatever Redis does (the batch's answer
// for a caller that left is dropped, and a caller that left before its
// batch was sent is not sent at all), and a full queue fails at once.
// Every failure wraps quota.ErrUnavailable. A key holding anything but a
// decimal integer fails only the requests that read it. The script is
// loaded on first use and again when Redis answers NOSCRIPT (after a
// restart or a failover).
//
// # Keys and Cluster
//
// Keys are Prefix + "{tag}" + counter key + "|" + limit id + "|" + window,
// as quota.Plan writes them. A check without a Tag is tagged with its Key
// (Prefix + "{key}{}key|..."), so that a check's keys (a sliding window has
// two) always share a hash slot. One script call can only touch keys of one
// slot, so on Cluster a batch is one script call per slot, in one pipeline
// (go-redis sends each node its calls): the unit a call judges is then a
// request's checks in that slot, not the whole request. A request whose
// checks span several slots is judged in each slot on its own; each part
// charges only if its own enforced checks fit. If any part denied (or
// failed), the parts that charged are undone by a second script before the
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
// way: until the refund lands, a concurrent request (or a later one in the
// same batch) sees the denied request's charge and may be denied too, and a
// token bucket refund that lost its race leaves the charge in place.
// Requests whose checks share one slot (one tag) need no refund and are
// answered exactly as sent one by one. Standalone and Sentinel Redis need
// none of this: tags are ignored there and a whole batch is one call.
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
