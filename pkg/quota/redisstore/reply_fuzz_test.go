package redisstore

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/quota"
)

// packReply is what the script returns for one unit.
func packReply(status int64, states ...quota.State) []byte {
	b := binary.LittleEndian.AppendUint64(nil, math.Float64bits(float64(status)))
	for _, s := range states {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(s.A)))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(s.B)))
	}
	return b
}

func TestReplyReaderReadsUnits(t *testing.T) {
	keys := []string{"k1", "k2"}
	tests := []struct {
		name    string
		reply   []byte
		ops     int
		allowed bool
		want    []quota.State
		err     string
	}{
		{"allowed", packReply(1, quota.State{A: 3}, quota.State{A: 1 << 52, B: 7}), 2, true, []quota.State{{A: 3}, {A: 1 << 52, B: 7}}, ""},
		{"denied", packReply(0, quota.State{A: 9, B: 2}), 1, false, []quota.State{{A: 9, B: 2}}, ""},
		{"corrupt key", packReply(-2, quota.State{}), 1, false, nil, "key k2 does not hold an integer"},
		{"corrupt key out of range", packReply(-3, quota.State{}), 1, false, nil, "unexpected script status -3"},
		{"unknown status", packReply(2, quota.State{}), 1, false, nil, "unexpected script status 2"},
		{"truncated", packReply(1, quota.State{A: 1})[:20], 1, false, nil, "unexpected end"},
		{"not a number", binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN())), 0, false, nil, "out of range"},
		{"too large", packReply(1, quota.State{A: 1<<53 + 2}), 1, false, nil, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			judged := make([]quota.State, tt.ops)
			r := replyReader{b: string(tt.reply), keys: keys}
			ok, err := r.unit(nil, judged)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
			case err != nil:
				t.Fatalf("unit: %v", err)
			case ok != tt.allowed:
				t.Fatalf("allowed = %v, want %v", ok, tt.allowed)
			default:
				for i := range tt.want {
					if judged[i] != tt.want[i] {
						t.Fatalf("judged[%d] = %+v, want %+v", i, judged[i], tt.want[i])
					}
				}
				if len(r.b) != 0 {
					t.Fatalf("%d bytes left over", len(r.b))
				}
			}
		})
	}
}

// FuzzReplyReader feeds the reply parser arbitrary bytes: it must never
// panic, must consume exactly 8 bytes per value it reads, and what it
// accepts must be integers Lua could have sent exactly.
func FuzzReplyReader(f *testing.F) {
	f.Add(packReply(1, quota.State{A: 3}, quota.State{A: 5, B: 1}), uint8(2), uint8(1))
	f.Add(packReply(0, quota.State{A: 1 << 53}), uint8(1), uint8(1))
	f.Add(packReply(-1, quota.State{}), uint8(1), uint8(1))
	f.Add(packReply(1)[:5], uint8(0), uint8(0))
	f.Add(binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, reply []byte, ops, nkeys uint8) {
		keys := make([]string, nkeys)
		for i := range keys {
			keys[i] = "k"
		}
		judged := make([]quota.State, ops)
		r := replyReader{b: string(reply), keys: keys}
		_, err := r.unit(nil, judged)
		if err != nil {
			return
		}
		if want := len(reply) - 8*(1+2*int(ops)); len(r.b) != want {
			t.Fatalf("%d bytes left of %d for %d ops, want %d", len(r.b), len(reply), ops, want)
		}
		for i, s := range judged {
			for _, v := range []int64{s.A, s.B} {
				if v > 1<<53 || v < -(1<<53) {
					t.Fatalf("judged[%d] = %+v, beyond what a double holds exactly", i, s)
				}
			}
		}
	})
}
