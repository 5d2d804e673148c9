package redisstore

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// applyLua is quota.Step for a batch of requests in one script call. It
// mirrors quota.Op.Over, Charge and ExpireAt operation for operation: Lua
// numbers are IEEE doubles, so where Go converts to float64 the script does
// the same arithmetic in the same order and gets the same bits, and where
// Go uses int64 the values stay below 2^53 and are exact in both. Change the
// two together; the differential tests hold them to the same answers.
//
// KEYS are the distinct keys of the batch. ARGV[1] is the number of
// requests and ARGV[2] the requests themselves, packed as little-endian
// doubles (struct.unpack reads one op in one call, where nine decimal ARGV
// strings per op cost Redis a string object and a conversion each): per
// request, its number of ops and its now (µs); per op, code (algorithm +
// 4 when enforced), index of Key in KEYS, index of PrevKey (0 when none),
// limit, hits, start and length (µs).
//
// It reads every key once, then judges the requests in order, each exactly
// as quota.Step would if it ran alone right then: against the state the
// earlier requests of the batch left, overlaid with its own earlier ops'
// tentative charges. A request whose enforced ops all fit commits its
// charges to the batch's state; a denied one commits nothing. At the end
// every key some request charged is written once, with the relative expiry
// of its last charge, so Redis's own clock never takes part in counting.
// The expiry is quota.Op.ExpireAt plus a grace (expiryGrace): a key
// outliving its use changes no answer (windows are part of the key, a
// stale TAT is below now), while one expiring early would reset a counter
// for a replica whose clock lags, or for a request delayed between its
// timestamp and the script.
//
// Only keys whose value changed are written. A new key, and a token
// bucket's TAT (whose expiry moves with it), by SET with PX; a window's
// counter that already exists by INCRBY of what the batch added, which
// keeps the expiry its creation set: a window's expiry is fixed, the window
// being part of the key, and INCRBY costs Redis well under half a SET PX,
// which removes and re-adds the key's expiry.
//
// A key that does not hold a decimal integer of at most 16 characters (as
// the store writes them) fails only the requests that read it: their
// status is minus the key's index, and they commit nothing.
//
// Redis's CPU is what limits a shared rate-limit server, so the script is
// written for it (measured with callgrind, in instructions per request):
// functions and tables are locals; per-key state lives in arrays indexed
// like KEYS and preallocated by a constructor, since growing a table key by
// key costs Lua a rehash at every power of two; a request's overlay is
// marked with the request's number rather than cleared.
//
// It returns one string of little-endian doubles: per request, its status
// (1 allowed, 0 denied, -i key i is corrupt) then, per op, the state it was
// judged on (A, B).
const applyLua = `
local floor, ceil, fmt, find = math.floor, math.ceil, string.format, string.find
local sunpack, call = struct.unpack, redis.call
local nreq = tonumber(ARGV[1])
local spec = ARGV[2]
local nkeys = #KEYS
-- Tables are preallocated (a constructor sized by unpack) rather than grown
-- key by key, which costs Lua a rehash at every power of two.
local function sized(n, src)
  if n <= 4000 then return {unpack(src, 1, n)} end
  return {}
end
-- Per key: state (false: corrupt), orig (the stored value; false: absent),
-- bucket (a token bucket's TAT), the request overlay pend and pexp, valid
-- while pgen is the request's number, and life, the committed expiry
-- relative to its charge's now (false: not written).
local state, orig, bucket = sized(nkeys, KEYS), sized(nkeys, KEYS), sized(nkeys, KEYS)
local pend, pexp, pgen, life = sized(nkeys, KEYS), sized(nkeys, KEYS), sized(nkeys, KEYS), sized(nkeys, KEYS)
local i = 1
while i <= nkeys do
  local j = i + 999
  if j > nkeys then j = nkeys end
  local stored = call('MGET', unpack(KEYS, i, j))
  for k = i, j do
    local v = stored[k - i + 1]
    local x, o = 0, false
    if v then
      if #v <= 16 and find(v, '^%-?%d+$') then
        x = tonumber(v)
        o = x
      else
        x = false
      end
    end
    state[k] = x
    orig[k] = o
    pgen[k] = 0
    life[k] = false
    bucket[k] = false
  end
  i = j + 1
end
local nout = nreq + 2 * ((#spec / 8 - 2 * nreq) / 7)
local out
if nout <= 4000 then out = {string.byte(spec, 1, nout)} else out = {} end
local no = 0
local touched = {}
local order, nord = {}, 0
local pos = 1
for r = 1, nreq do
  local nops, now
  nops, now, pos = sunpack('<dd', spec, pos)
  no = no + 1
  local statusAt = no
  local allowed, bad, nt = true, 0, 0
  for _ = 1, nops do
    local code, ki, pi, limit, hits, start, length
    code, ki, pi, limit, hits, start, length, pos = sunpack('<ddddddd', spec, pos)
    local a
    if pgen[ki] == r then a = pend[ki] else a = state[ki] end
    local prev = 0
    if pi > 0 then
      if pgen[pi] == r then prev = pend[pi] else prev = state[pi] end
    end
    if a == false then bad = ki; a = 0 end
    if prev == false then bad = pi; prev = 0 end
    out[no + 1] = a
    out[no + 2] = prev
    no = no + 2
    local test = hits
    if test < 1 then test = 1 end
    local alg = code % 4
    local over, charged, exp
    if alg == 1 then
      local share = floor(prev * (length - (now - start)) / length)
      over = share + a + test > limit
      charged = a + hits
      exp = start + 2 * length
    elseif alg == 2 then
      local base = a
      if now > base then base = now end
      local interval = length / limit
      over = base - now + floor(test * interval) > length
      charged = base + floor(hits * interval)
      exp = charged
      if now > exp then exp = now end
      exp = exp + 1000
      bucket[ki] = true
    else
      over = a + test > limit
      charged = a + hits
      exp = start + length
    end
    if over and code >= 4 then allowed = false end
    if pgen[ki] ~= r then
      pgen[ki] = r
      nt = nt + 1
      touched[nt] = ki
    end
    pend[ki] = charged
    pexp[ki] = exp
  end
  if bad > 0 then
    out[statusAt] = -bad
  elseif allowed then
    out[statusAt] = 1
    for t = 1, nt do
      local k = touched[t]
      if not life[k] then
        nord = nord + 1
        order[nord] = k
      end
      state[k] = pend[k]
      life[k] = pexp[k] - now
    end
  else
    out[statusAt] = 0
  end
end
local small = {}
for t = 1, nord do
  local k = order[t]
  local old, v = orig[k], state[k]
  if old == false or (bucket[k] and v ~= old) then
    local ms = ceil(life[k] / 1000)
    if ms < 1 then ms = 1 end
    call('SET', KEYS[k], fmt('%d', v), 'PX', fmt('%d', ms + GRACE_MS))
  elseif v ~= old then
    local d = v - old
    local s = small[d]
    if s == nil then
      s = fmt('%d', d)
      small[d] = s
    end
    call('INCRBY', KEYS[k], s)
  end
end
local parts = {}
i = 1
while i <= no do
  local j = i + 255
  if j > no then j = no end
  parts[#parts + 1] = struct.pack('<' .. string.rep('d', j - i + 1), unpack(out, i, j))
  i = j + 1
end
return table.concat(parts)
`

// refundLua undoes one unit's charges after another slot of the same
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

// maxOpsPerCall is where a batch starts a second script call: the script
// holds Redis for its whole run, and a few hundred ops keep that well under
// a millisecond. A single request larger than this still goes in one call.
const maxOpsPerCall = 512

// encoder builds script calls' KEYS and packed ARGV. A worker keeps one and
// reuses its memory from batch to batch: the calls of one batch are laid
// end to end in keys and buf, each handed out capped, so that building the
// next never writes into one already queued.
type encoder struct {
	pos      map[string]int // key of the current call -> 1-based index in its KEYS
	keys     []string
	buf      []byte
	keyStart int // where the current call starts in keys
	bufStart int // and in buf
	ops      int // ops in the current call
}

func newEncoder() *encoder { return &encoder{pos: make(map[string]int)} }

// next starts a new call after the ones built so far.
func (e *encoder) next() {
	clear(e.pos)
	e.keyStart, e.bufStart, e.ops = len(e.keys), len(e.buf), 0
}

// rewind reuses all memory; only once the batch's calls are finished.
func (e *encoder) rewind() {
	clear(e.keys) // let the batch's keys be collected
	e.keys, e.buf = e.keys[:0], e.buf[:0]
	e.next()
}

// add encodes the ops at idx (all of them when idx is nil) as one unit of
// the current call.
func (e *encoder) add(ops []quota.Op, idx []int) {
	n := len(ops)
	if idx != nil {
		n = len(idx)
	}
	e.ops += n
	var now int64
	if n > 0 {
		now = ops[opIndex(idx, 0)].Now
	}
	e.num(int64(n))
	e.num(now)
	for k := range n {
		o := &ops[opIndex(idx, k)]
		code := int64(o.Alg)
		if o.Enforce {
			code += 4
		}
		ki := e.key(o.Key)
		pi := 0
		if o.PrevKey != "" {
			pi = e.key(o.PrevKey)
		}
		e.num(code)
		e.num(int64(ki))
		e.num(int64(pi))
		e.num(o.Limit)
		e.num(o.Hits)
		e.num(o.Start)
		e.num(o.Length)
	}
}

func (e *encoder) key(k string) int {
	if i, ok := e.pos[k]; ok {
		return i
	}
	e.keys = append(e.keys, k)
	i := len(e.keys) - e.keyStart
	e.pos[k] = i
	return i
}

// num appends v as a little-endian double: exact, as every value the store
// sends is an integer below 2^53.
func (e *encoder) num(v int64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(float64(v)))
}

// call returns the current call's KEYS and packed ARGV, capped so that
// later appends never write into them.
func (e *encoder) call() (keys []string, packed []byte) {
	return e.keys[e.keyStart:len(e.keys):len(e.keys)], e.buf[e.bufStart:len(e.buf):len(e.buf)]
}

func opIndex(idx []int, k int) int {
	if idx == nil {
		return k
	}
	return idx[k]
}

// errCorruptKey is a key that holds something other than an integer:
// written by someone else, it fails the requests that read it.
var errCorruptKey = errors.New("does not hold an integer")

// replyReader walks a script reply: per unit, a status and the judged
// states of its ops.
type replyReader struct {
	b    string
	keys []string
}

func (r *replyReader) num() (int64, error) {
	if len(r.b) < 8 {
		return 0, errors.New("unexpected end of script reply")
	}
	b := r.b
	f := math.Float64frombits(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56)
	r.b = b[8:]
	if !(f >= -(1<<53) && f <= 1<<53) {
		return 0, fmt.Errorf("script reply value %v out of range", f)
	}
	return int64(f), nil
}

// unit reads one unit's reply into judged (indexed like the request's ops)
// and reports whether the unit was allowed and charged.
func (r *replyReader) unit(idx []int, judged []quota.State) (bool, error) {
	status, err := r.num()
	if err != nil {
		return false, err
	}
	n := len(judged)
	if idx != nil {
		n = len(idx)
	}
	for k := range n {
		a, err := r.num()
		if err != nil {
			return false, err
		}
		b, err := r.num()
		if err != nil {
			return false, err
		}
		judged[opIndex(idx, k)] = quota.State{A: a, B: b}
	}
	switch {
	case status == 1:
		return true, nil
	case status == 0:
		return false, nil
	case status < 0 && -status <= int64(len(r.keys)):
		return false, fmt.Errorf("portcullis: key %s %w", r.keys[-status-1], errCorruptKey)
	default:
		return false, fmt.Errorf("unexpected script status %d", status)
	}
}

// refundArgs builds the refund for a unit that charged: per distinct key,
// the hits it added (counters) or the TAT it wrote and the one it replaced
// (token buckets).
func refundArgs(ops []quota.Op, idx []int, judged []quota.State) (keys []string, args []any) {
	type undo struct {
		bucket      bool
		add, before int64
		after       int64
	}
	n := len(ops)
	if idx != nil {
		n = len(idx)
	}
	pos := make(map[string]int, n)
	var undos []undo
	for k := range n {
		i := opIndex(idx, k)
		o := ops[i]
		u, ok := pos[o.Key]
		if !ok {
			u = len(undos)
			pos[o.Key] = u
			keys = append(keys, o.Key)
			undos = append(undos, undo{bucket: o.Alg == quota.TokenBucket, before: judged[i].A})
		}
		undos[u].add += o.Hits
		undos[u].after = o.Charge(judged[i]).A
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
