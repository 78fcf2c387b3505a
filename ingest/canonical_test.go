package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

// canonicalJSON is canonicalJSONSpans without the spans.
func canonicalJSON(dst, src []byte) ([]byte, error) {
	dst, _, err := canonicalJSONSpans(dst, nil, src, false)
	return dst, err
}

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
		// Compact members take the comma, the next key and its colon in one
		// step; each of them broken or spaced must still be read as before.
		{"compact members", `{"a":1,"b":"x","c":[2,3],"d":{"e":null}}`, `{"a":1,"b":"x","c":[2,3],"d":{"e":null}}`},
		{"space after a comma", `{"a":1, "b":2}`, `{"a":1,"b":2}`},
		{"space before a colon", `{"a":1,"b" :2}`, `{"a":1,"b":2}`},
		{"space before a comma", `{"a":1 ,"b":2}`, `{"a":1,"b":2}`},
		{"compact key without colon", `{"a":1,"b"2}`, ""},
		{"compact key without value", `{"a":1,"b":}`, ""},
		{"compact key unterminated", `{"a":1,"b`, ""},
		{"compact key not a string", `{"a":1,2:3}`, ""},
		{"comma after the top value", `1,2`, ""},
		{"double comma", `[1,,2]`, ""},
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
	canon, spans, err := canonicalJSONSpans(nil, nil, []byte(` {"x":"a,]}\"","events":[{"a":[1,{"b":"]"}]}, "s", 3, null],"eventType":"e"}`), true)
	if err != nil {
		t.Fatal(err)
	}
	i, ok := topMember(canon, spans, "events")
	if !ok {
		t.Fatal("events not found")
	}
	var got []string
	for _, ev := range appendEvents(nil, spans[i+1:nextAtLevel(spans, i+1, 1)], 2) {
		got = append(got, string(canon[ev.val.start:ev.val.end]))
	}
	want := []string{`{"a":[1,{"b":"]"}]}`, `"s"`, `3`, `null`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("elements %q, want %q", got, want)
	}
	if j, ok := topMember(canon, spans, "eventType"); !ok || string(canon[spans[j].val.start:spans[j].val.end]) != `"e"` {
		t.Fatalf("eventType %v %v", j, ok)
	}
	if _, ok := topMember(canon, spans, "missing"); ok {
		t.Fatal("found a missing key")
	}
	var levels []string
	for _, v := range spans {
		levels = append(levels, fmt.Sprintf("%d:%s=%s", v.level, canon[v.key.start:v.key.end], canon[v.val.start:v.val.end]))
	}
	wantLevels := []string{`1:"x"="a,]}\""`, `1:"events"=[{"a":[1,{"b":"]"}]},"s",3,null]`, `2:={"a":[1,{"b":"]"}]}`,
		`3:"a"=[1,{"b":"]"}]`, `2:="s"`, `2:=3`, `2:=null`, `1:"eventType"="e"`}
	if strings.Join(levels, " ") != strings.Join(wantLevels, " ") {
		t.Fatalf("spans\n%s\nwant\n%s", strings.Join(levels, " "), strings.Join(wantLevels, " "))
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
		if out2, spans, err := canonicalJSONSpans(nil, nil, in, true); err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("recording spans changed the output: %q vs %q (%v)", out2, out, err)
		} else {
			for _, v := range spans {
				if v.level < 1 || v.level > maxSpanLevel || v.val.end <= v.val.start || skipValue(out, v.val.start) != v.val.end {
					t.Fatalf("span %+v is not one value of %q", v, out)
				}
				if v.key != (span{}) && skipString(out, v.key.start) != v.key.end {
					t.Fatalf("key span %+v is not one string of %q", v, out)
				}
			}
		}
		if !json.Valid(out) || !utf8.Valid(out) || bytes.Contains(out, []byte(`\u0000`)) || bytes.ContainsAny(out, "\n\r\t") {
			t.Fatalf("bad canonical output %q for %q", out, in)
		}
		again, err := canonicalJSON(nil, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q → %q (%v)", out, again, err)
		}
		// Same value as encoding/json reads (which also turns invalid UTF-8
		// and lone surrogates into U+FFFD), except for NUL, which is dropped.
		if !bytes.Contains(in, []byte(`\u0000`)) {
			var want, got any
			if json.Unmarshal(in, &want) == nil && json.Unmarshal(out, &got) == nil && !reflect.DeepEqual(want, got) {
				t.Fatalf("canonical %q reads as %v, the input %q as %v", out, got, in, want)
			}
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
