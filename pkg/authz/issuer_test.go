package authz

import (
	"encoding/json"
	"testing"
)

func TestTopLevelString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		want      string
		ok        bool
	}{
		{"a plain member", `{"iss":"https://idp"}`, "https://idp", true},
		{"after other members", `{"sub":"a","aud":["x","y"],"n":1.5e3,"t":true,"z":null,"iss":"i"}`, "i", true},
		{"with spaces", " {\n \"iss\" :\t\"i\" } ", "i", true},
		{"a nested iss is not the token's", `{"act":{"iss":"evil"},"iss":"good"}`, "good", true},
		{"only a nested iss", `{"act":{"iss":"evil"}}`, "", false},
		{"inside an array", `{"x":[{"iss":"evil"}],"iss":"good"}`, "good", true},
		{"a string holding a quoted iss", `{"sub":"\"iss\":\"evil\"","iss":"good"}`, "good", true},
		{"an escaped value", `{"iss":"https:\/\/idp"}`, "https://idp", true},
		{"an escaped name", `{"\u0069ss":"i"}`, "i", true},
		{"the last of repeated members", `{"iss":"a","iss":"b"}`, "b", true},
		{"a number", `{"iss":5}`, "", false},
		{"not an object", `["iss","x"]`, "", false},
		{"empty object", `{}`, "", false},
		{"truncated", `{"iss":"i"`, "", false},
		{"unterminated string", `{"iss":"i}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := topLevelString([]byte(tt.doc), "iss")
			if ok != tt.ok || string(got) != tt.want {
				t.Fatalf("topLevelString(%s) = %q, %v; want %q, %v", tt.doc, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzTopLevelString holds the scanner to encoding/json, which the
// verifiers use: wherever json reads a string iss from an object, the
// scanner finds the same one.
func FuzzTopLevelString(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://idp"}`, `{"act":{"iss":"evil"},"iss":"good"}`, `{"iss":"a","iss":"b"}`,
		`{"sub":"\"iss\":\"evil\"","iss":"good"}`, `{"\u0069ss":"i"}`, `{"x":[1,{"a":"]"}],"iss":"q"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, ok := topLevelString(doc, "iss")
		var ref map[string]any
		if err := json.Unmarshal(doc, &ref); err != nil {
			return // the verifier would refuse it whatever was chosen
		}
		want, wantOK := ref["iss"].(string)
		if wantOK != ok || (ok && string(got) != want) {
			t.Fatalf("topLevelString(%q) = %q, %v; encoding/json reads %q, %v", doc, got, ok, want, wantOK)
		}
	})
}
