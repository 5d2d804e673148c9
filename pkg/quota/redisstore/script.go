package redisstore

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// applyLua is quota.Step for one script call. It mirrors quota.Op.Over,
// Charge and ExpireAt operation for operation: Lua numbers are IEEE
// doubles, so where Go converts to float64 the script does the same
// arithmetic in the same order and gets the same bits, and where Go uses
// int64 the values stay below 2^53 and are exact in both. Change the two
// together; the differential tests hold them to the same answers.
//
// KEYS are the distinct keys of the call. ARGV[1] is the number of ops,
// then 9 integers per op: algorithm, index of Key in KEYS, index of PrevKey
// (0 when none), limit, hits, enforce (0/1), now, start, length (µs).
//
// It reads every key once (the stored state, before any write, as Step's
// read), judges the ops in order against that state overlaid with the
// earlier ops' tentative charges, and only if no enforced op is over writes
// every charged key with a relative expiry, so Redis's own clock never
// takes part in counting. The expiry is quota.Op.ExpireAt plus a grace
// (expiryGrace): a key outliving its use changes no answer (windows are
// part of the key, a stale TAT is below now), while one expiring early
// would reset a counter for a replica whose clock lags, or for a request
// delayed between its timestamp and the script. It returns {allowed, A1, B1, A2, B2, ...}: the
// state each op was judged on.
const applyLua = `
local n = tonumber(ARGV[1])
local stored = redis.call('MGET', unpack(KEYS))
local state = {}
for i = 1, #KEYS do
  local v = stored[i]
  if v then
    local x = tonumber(v)
    if x == nil then
      return redis.error_reply('portcullis: key ' .. KEYS[i] .. ' does not hold an integer')
    end
    state[i] = x
  else
    state[i] = 0
  end
end
local out = {1}
local expire = {}
local nowOf = {}
local order = {}
local allowed = true
for i = 0, n - 1 do
  local b = 1 + i * 9
  local alg = tonumber(ARGV[b + 1])
  local ki = tonumber(ARGV[b + 2])
  local pi = tonumber(ARGV[b + 3])
  local limit = tonumber(ARGV[b + 4])
  local hits = tonumber(ARGV[b + 5])
  local enforce = ARGV[b + 6] == '1'
  local now = tonumber(ARGV[b + 7])
  local start = tonumber(ARGV[b + 8])
  local length = tonumber(ARGV[b + 9])
  local a = state[ki]
  local prev = 0
  if pi > 0 then prev = state[pi] end
  out[#out + 1] = a
  out[#out + 1] = prev
  local test = math.max(hits, 1)
  local over, charged, exp
  if alg == 1 then
    local elapsed = now - start
    local share = math.floor(prev * (length - elapsed) / length)
    over = share + a + test > limit
    charged = a + hits
    exp = start + 2 * length
  elseif alg == 2 then
    local base = math.max(a, now)
    local interval = length / limit
    over = base - now + math.floor(test * interval) > length
    charged = base + math.floor(hits * interval)
    exp = math.max(charged, now) + 1000
  else
    over = a + test > limit
    charged = a + hits
    exp = start + length
  end
  if over and enforce then allowed = false end
  if expire[ki] == nil then order[#order + 1] = ki end
  state[ki] = charged
  expire[ki] = exp
  nowOf[ki] = now
end
if not allowed then
  out[1] = 0
  return out
end
for _, ki in ipairs(order) do
  local ms = math.ceil((expire[ki] - nowOf[ki]) / 1000)
  if ms < 1 then ms = 1 end
  ms = ms + GRACE_MS
  redis.call('SET', KEYS[ki], string.format('%d', state[ki]), 'PX', string.format('%d', ms))
end
return out
`

// refundLua undoes one script call's charges after another slot of the same
// request denied it (Cluster only). ARGV holds 3 values per key: kind, a, b.
//
//   - kind 0, a counter (fixed or sliding window): subtract a, the hits the
//     call added, if the key still exists; never below zero; the TTL is
//     kept. Concurrent charges on the key are preserved exactly.
//   - kind 1, a token bucket's TAT: if the key still holds a (the TAT the
//     call wrote), put back b (0: delete the key, it was absent); otherwise
//     a later request has moved the TAT from ours and the charge is left in
//     place, because subtracting it could admit more than the limit.
//
// It returns the number of keys refunded.
const refundLua = `
local done = 0
for i = 1, #KEYS do
  local b = (i - 1) * 3
  local kind = ARGV[b + 1]
  local a = tonumber(ARGV[b + 2])
  local v = redis.call('GET', KEYS[i])
  if v then
    local x = tonumber(v)
    if x ~= nil then
      if kind == '0' then
        redis.call('SET', KEYS[i], string.format('%d', math.max(x - a, 0)), 'KEEPTTL')
        done = done + 1
      elseif x == a then
        local prev = tonumber(ARGV[b + 3])
        if prev == 0 then
          redis.call('DEL', KEYS[i])
        else
          redis.call('SET', KEYS[i], string.format('%d', prev), 'KEEPTTL')
        end
        done = done + 1
      end
    end
  end
end
return done
`

// script is a Lua source and its SHA1, which EVALSHA names it by.
type script struct {
	src, sha string
}

func newScript(src string) script {
	h := sha1.Sum([]byte(src))
	return script{src: src, sha: hex.EncodeToString(h[:])}
}

// expiryGrace is added to every key's lifetime; see applyLua.
const expiryGrace = time.Second

var (
	applyScript  = newScript(strings.Replace(applyLua, "GRACE_MS", strconv.FormatInt(expiryGrace.Milliseconds(), 10), 1))
	refundScript = newScript(refundLua)
)

const argsPerOp = 9

// call is one script invocation: a group of a request's ops whose keys
// share a Cluster slot (all of them outside Cluster).
type call struct {
	ops  []int // indexes into the request's ops, in order
	keys []string
	args []any
}

// newCall builds the EVALSHA arguments for ops[idx...] (keys already
// prefixed).
func newCall(ops []quota.Op, idx []int) call {
	c := call{ops: idx, args: make([]any, 1, 1+argsPerOp*len(idx))}
	c.args[0] = len(idx)
	pos := make(map[string]int, len(idx)+1)
	index := func(k string) int {
		if i, ok := pos[k]; ok {
			return i
		}
		c.keys = append(c.keys, k)
		pos[k] = len(c.keys)
		return len(c.keys)
	}
	for _, i := range idx {
		o := &ops[i]
		prev := 0
		ki := index(o.Key)
		if o.PrevKey != "" {
			prev = index(o.PrevKey)
		}
		enforce := 0
		if o.Enforce {
			enforce = 1
		}
		c.args = append(c.args, int(o.Alg), ki, prev, o.Limit, o.Hits, enforce, o.Now, o.Start, o.Length)
	}
	return c
}

// parseApply reads the script's reply into judged (indexed like the
// request's ops) and reports whether the call allowed its ops.
func parseApply(c call, reply any, judged []quota.State) (bool, error) {
	vals, ok := reply.([]any)
	if !ok || len(vals) != 1+2*len(c.ops) {
		return false, fmt.Errorf("unexpected script reply %T of %d values for %d ops", reply, lenOf(reply), len(c.ops))
	}
	ints := make([]int64, len(vals))
	for i, v := range vals {
		n, ok := v.(int64)
		if !ok {
			return false, fmt.Errorf("unexpected script reply value %T at %d", v, i)
		}
		ints[i] = n
	}
	for j, i := range c.ops {
		judged[i] = quota.State{A: ints[1+2*j], B: ints[2+2*j]}
	}
	return ints[0] == 1, nil
}

func lenOf(v any) int {
	if s, ok := v.([]any); ok {
		return len(s)
	}
	return -1
}

// refundArgs builds the refund for a call that charged: per distinct key,
// the hits it added (counters) or the TAT it wrote and the one it replaced
// (token buckets).
func refundArgs(ops []quota.Op, c call, judged []quota.State) (keys []string, args []any) {
	type undo struct {
		bucket      bool
		add, before int64
		after       int64
	}
	pos := make(map[string]int, len(c.ops))
	var undos []undo
	for _, i := range c.ops {
		o := ops[i]
		k, ok := pos[o.Key]
		if !ok {
			k = len(undos)
			pos[o.Key] = k
			keys = append(keys, o.Key)
			undos = append(undos, undo{bucket: o.Alg == quota.TokenBucket, before: judged[i].A})
		}
		u := &undos[k]
		u.add += o.Hits
		u.after = o.Charge(judged[i]).A
	}
	args = make([]any, 0, 3*len(undos))
	for _, u := range undos {
		if u.bucket {
			args = append(args, 1, u.after, u.before)
		} else {
			args = append(args, 0, u.add, 0)
		}
	}
	return keys, args
}
