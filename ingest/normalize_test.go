package ingest

import (
	"testing"

	"github.com/valyala/fastjson"
)

var memberNames = []string{"eventType", "siteId", "sessionId", "visitorId", "url", "path", "referrer", "timestamp"}

func memberSpan(m eventMembers, name string) span {
	switch name {
	case "eventType":
		return m.eventType
	case "siteId":
		return m.siteID
	case "sessionId":
		return m.sessionID
	case "visitorId":
		return m.visitorID
	case "url":
		return m.url
	case "path":
		return m.path
	case "referrer":
		return m.referrer
	}
	return m.timestamp
}

// singleEventMembers finds the members of the object canon both ways, from
// the spans canonicalJSONSpans records and by walking it, which must agree.
func singleEventMembers(t *testing.T, canon []byte) eventMembers {
	t.Helper()
	again, spans, err := canonicalJSONSpans(nil, nil, canon, true)
	if err != nil {
		t.Fatalf("%q: %v", canon, err)
	}
	recorded := membersOf(again, eventSpan{val: span{0, len(again)}, members: spans})
	walked := membersOf(canon, eventSpan{val: span{0, len(canon)}, scan: true})
	if recorded != walked {
		t.Fatalf("%q: recorded members %+v, walked %+v", canon, recorded, walked)
	}
	return walked
}

func TestTextFieldReadsCanonicalMembers(t *testing.T) {
	cases := []struct {
		body    string
		name    string
		want    string
		refused bool
	}{
		{`{"eventType":"page_view"}`, "eventType", "page_view", false},
		{`{"a":{"eventType":"nested"},"eventType":"top"}`, "eventType", "top", false},
		{`{"eventType":"first","eventType":"second"}`, "eventType", "first", false},
		{`{"\u0065ventType":"escaped key"}`, "eventType", "escaped key", false},
		{`{"url":"https://x.test/a?b=\"c\"\\d"}`, "url", `https://x.test/a?b="c"\d`, false},
		{`{"url":"line\nbreak\ttab\u0001\u2028"}`, "url", "line\nbreak\ttab\x01\u2028", false},
		{`{"url":"\u00e9\ud83d\ude00 \/"}`, "url", "é😀 /", false},
		{`{"sessionId":12345}`, "sessionId", "12345", false},
		{`{"sessionId":-1.5e3}`, "sessionId", "-1.5e3", false},
		{`{"sessionId":null}`, "sessionId", "", false},
		{`{"other":1}`, "sessionId", "", false},
		{`{}`, "sessionId", "", false},
		{`{"sessionId":true}`, "sessionId", "", true},
		{`{"sessionId":{"a":1}}`, "sessionId", "", true},
		{`{"sessionId":["a"]}`, "sessionId", "", true},
		{`{"x":"has \"sessionId\":\"fake\"","sessionId":"real"}`, "sessionId", "real", false},
	}
	for _, c := range cases {
		canon, err := canonicalJSON(nil, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		var st reqState
		got, fe := st.textField(canon, memberSpan(singleEventMembers(t, canon), c.name), c.name)
		if (fe.message != "") != c.refused || got != c.want {
			t.Errorf("%s: %s = %q (refused %v), want %q (refused %v)", c.body, c.name, got, fe.message != "", c.want, c.refused)
		}
		if c.refused && fe.field != c.name {
			t.Errorf("%s: refusal names field %q, want %q", c.body, fe.field, c.name)
		}
	}
}

func TestTimestampFieldKeepsTheValueText(t *testing.T) {
	cases := []struct {
		body    string
		want    string
		numeric bool
	}{
		{`{"timestamp":"2025-06-22T12:00:00Z"}`, "2025-06-22T12:00:00Z", false},
		{`{"timestamp":1750593600123}`, "1750593600123", true},
		{`{"timestamp":null}`, "", false},
		{`{"timestamp":true}`, "true", false},
		{`{"timestamp":{"a":"b"}}`, `{"a":"b"}`, false},
		{`{}`, "", false},
	}
	for _, c := range cases {
		canon, err := canonicalJSON(nil, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		var st reqState
		got, numeric := st.timestampField(canon, singleEventMembers(t, canon).timestamp)
		if got != c.want || numeric != c.numeric {
			t.Errorf("%s: %q numeric %v, want %q numeric %v", c.body, got, numeric, c.want, c.numeric)
		}
	}
}

// FuzzMembersAgreeWithFastjson holds the one-pass member reader to what a
// full parser (fastjson, which normalize used before) finds in the same
// canonical object: the same first occurrence, the same decoded string, the
// same number text, the same refusals.
func FuzzMembersAgreeWithFastjson(f *testing.F) {
	for _, s := range []string{seedPageview, seedCurlTest,
		`{"eventType":"a","eventType":"b","siteId":7,"url":"\u0000x\ud800","path":null,"referrer":[1]}`,
		`{"x":{"sessionId":"inner"},"sessionId":"outer\\\"q","timestamp":{"a":[1,2]}}`,
		`{"visitorId":"\u2028\u00e9\t","timestamp":-0.5e-3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		canon, err := canonicalJSON(nil, body)
		if err != nil || len(canon) == 0 || canon[0] != '{' {
			return
		}
		v, err := fastjson.ParseBytes(canon)
		if err != nil {
			t.Fatalf("fastjson refuses canonical JSON %q: %v", canon, err)
		}
		o, _ := v.Object()
		m := singleEventMembers(t, canon)
		var st reqState
		for _, name := range memberNames {
			sp := memberSpan(m, name)
			want := o.Get(name)
			if want == nil {
				if sp.start != 0 {
					t.Fatalf("%s: found %q in %q, fastjson finds nothing", name, canon[sp.start:sp.end], canon)
				}
				continue
			}
			if sp.start == 0 {
				t.Fatalf("%s: not found in %q, fastjson finds %s", name, canon, want)
			}
			if name == "timestamp" {
				got, numeric := st.timestampField(canon, sp)
				switch want.Type() {
				case fastjson.TypeString:
					b, _ := want.StringBytes()
					if got != string(b) || numeric {
						t.Fatalf("timestamp %q, fastjson %q", got, b)
					}
				case fastjson.TypeNumber:
					if got != string(want.MarshalTo(nil)) || !numeric {
						t.Fatalf("timestamp %q (numeric %v), fastjson %s", got, numeric, want)
					}
				case fastjson.TypeNull:
					if got != "" {
						t.Fatalf("null timestamp gave %q", got)
					}
				}
				continue
			}
			got, fe := st.textField(canon, sp, name)
			switch want.Type() {
			case fastjson.TypeString:
				b, _ := want.StringBytes()
				if got != string(b) || fe.message != "" {
					t.Fatalf("%s = %q (%s), fastjson %q in %q", name, got, fe.message, b, canon)
				}
			case fastjson.TypeNumber:
				if got != string(want.MarshalTo(nil)) || fe.message != "" {
					t.Fatalf("%s = %q (%s), fastjson %s", name, got, fe.message, want)
				}
			case fastjson.TypeNull:
				if got != "" || fe.message != "" {
					t.Fatalf("%s: null gave %q (%s)", name, got, fe.message)
				}
			default:
				if fe.message == "" {
					t.Fatalf("%s: %s accepted as %q", name, want.Type(), got)
				}
			}
		}
	})
}
