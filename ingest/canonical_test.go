package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

func TestCanonicalJSON(t *testing.T) {
	cases := []struct {
		name, in, want string // want "" means: refused
	}{
		{"compacts", " { \"a\" : [ 1 , 2.5e3 , true , false , null ] ,\n\t\"b\" : { } } ", `{"a":[1,2.5e3,true,false,null],"b":{}}`},
		{"keeps numbers as sent", `[-0,0.000,1E+2,-12.5e-3]`, `[-0,0.000,1E+2,-12.5e-3]`},
		{"decodes needless escapes", `{"\u0061":"\/x\u00e9"}`, `{"a":"/xé"}`},
		{"keeps needed escapes", `"q\"b\\n\n\t\r\u0001"`, `"q\"b\\n\n\t\r\u0001"`},
		{"\\b and \\f become \\u escapes", `"\b\f"`, `"\u0008\u000c"`},
		{"drops NUL", `{"a":"x\u0000y"}`, `{"a":"xy"}`},
		{"pairs surrogates", `"\ud83d\ude00"`, `"😀"`},
		{"lone high surrogate", `"\ud83dx"`, `"` + "\uFFFD" + `x"`},
		{"lone low surrogate", `"\ude00"`, `"` + "\uFFFD" + `"`},
		{"high then non-low escape", `"\ud83d\u0041"`, `"` + "\uFFFD" + `A"`},
		{"invalid UTF-8", "\"a\xffb\xc3\"", "\"a\uFFFDb\uFFFD\""},
		{"U+2028 escaped", "\"a\u2028b\"", `"a\u2028b"`},
		{"empty", ``, ""},
		{"only space", "  ", ""},
		{"trailing comma array", `[1,]`, ""},
		{"trailing comma object", `{"a":1,}`, ""},
		{"leading zero", `[01]`, ""},
		{"bare dot", `[1.]`, ""},
		{"NaN", `[NaN]`, ""},
		{"Infinity", `[-Infinity]`, ""},
		{"single quotes", `{'a':1}`, ""},
		{"unquoted key", `{a:1}`, ""},
		{"raw control char", "\"a\tb\"", ""},
		{"bad escape", `"\x41"`, ""},
		{"short unicode escape", `"\u12"`, ""},
		{"unterminated string", `"abc`, ""},
		{"unclosed object", `{"a":1`, ""},
		{"mismatched bracket", `[1}`, ""},
		{"two values", `{} {}`, ""},
		{"missing colon", `{"a" 1}`, ""},
		{"bad literal", `[tru]`, ""},
		{"too deep", strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), ""},
		{"deep enough", strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := canonicalJSON(nil, []byte(c.in))
			if c.want == "" {
				if err == nil {
					t.Fatalf("accepted %q as %q", c.in, got)
				}
				if !strings.Contains(err.Error(), "at byte") {
					t.Fatalf("error without position: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if string(got) != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestCanonicalJSONFindsMembersAndElements(t *testing.T) {
	canon, err := canonicalJSON(nil, []byte(` {"x":"a,]}\"","events":[{"a":[1,{"b":"]"}]}, "s", 3, null],"eventType":"e"}`))
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := memberValue(canon, "events")
	if !ok {
		t.Fatal("events not found")
	}
	var got []string
	for _, sp := range appendElements(nil, canon, ev.start) {
		got = append(got, string(canon[sp.start:sp.end]))
	}
	want := []string{`{"a":[1,{"b":"]"}]}`, `"s"`, `3`, `null`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("elements %q, want %q", got, want)
	}
	if sp, ok := memberValue(canon, "eventType"); !ok || string(canon[sp.start:sp.end]) != `"e"` {
		t.Fatalf("eventType %v %v", sp, ok)
	}
	if _, ok := memberValue(canon, "missing"); ok {
		t.Fatal("found a missing key")
	}
}

// FuzzCanonicalJSON checks the validator against encoding/json and the
// output's promises: valid, compact, idempotent, valid UTF-8, no NUL.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{seedPageview, seedCurlTest, `[1,"a\u0000"]`, `{"a":"\ud800"}`, "\"\xff\"", `[[[]]]`, `-0.1e+5`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := canonicalJSON(nil, in)
		stdValid := json.Valid(in)
		if err == nil && !stdValid {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		if err != nil {
			if stdValid && !strings.Contains(err.Error(), "nested deeper") {
				t.Fatalf("refused valid JSON %q: %v", in, err)
			}
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) || bytes.Contains(out, []byte(`\u0000`)) || bytes.ContainsAny(out, "\n\r\t") {
			t.Fatalf("bad canonical output %q for %q", out, in)
		}
		again, err := canonicalJSON(nil, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q → %q (%v)", out, again, err)
		}
		// Ingest is the only writer of raw events: an object it would store
		// must keep the guarantee the loader and the shipper rely on.
		if out[0] == '{' && !event.IsCompactRaw(out) {
			t.Fatalf("canonical object %q does not keep event.IsCompactRaw's guarantee", out)
		}
	})
}

// skipStringByteByByte is the plain walk skipString must agree with.
func skipStringByteByByte(b []byte, i int) int {
	for i++; i < len(b); {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return len(b)
}

func FuzzSkipStringMatchesByteWalk(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\"b"`, `"\\"`, `"\\\""`, `"\\\\"x"`, `"\u00e9\n\"\\"`, `"unterminated`, `"\`, `""`, `"\\\\\\\"\\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != '"' {
			return
		}
		if got, want := skipString(b, 0), skipStringByteByByte(b, 0); got != want && !(want > len(b) && got == len(b)) {
			t.Fatalf("skipString(%q) = %d, byte walk says %d", b, got, want)
		}
	})
}
