package event

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIsCompactRawAcceptsWhatIngestWritesAndNothingElse(t *testing.T) {
	cases := []struct {
		raw  string
		want bool
	}{
		{`{}`, true},
		{`{"a":1}`, true},
		{`{"a":[1,-0.5e+3,true,false,null,{"b":"\u00e9\"\\\/\b\f\n\r\t"}],"c":{}}`, true},
		{`{"emoji":"\ud83d\ude00","jp":"日本語","x":"\u2028"}`, true},
		{`{"a":[]}`, true},
		{`{"d":` + strings.Repeat("[", MaxRawDepth-1) + strings.Repeat("]", MaxRawDepth-1) + `}`, true},
		{`{"d":` + strings.Repeat("[", MaxRawDepth) + strings.Repeat("]", MaxRawDepth) + `}`, false},
		{``, false},
		{`[]`, false},
		{`"s"`, false},
		{`{`, false},
		{`{"a":1}{}`, false},
		{`{"a":1} `, false},
		{`{ "a":1}`, false},
		{`{"a": 1}`, false},
		{"{\"a\":1,\n\"b\":2}", false},
		{"{\"a\":\"x\ny\"}", false},
		{"{\"a\":\"\x01\"}", false},
		{"{\"a\":\"\xff\"}", false},
		{"{\"a\":\"\xe2\x80\"}", false},
		{`{"a":"\u0000"}`, false},
		{`{"a":"\ud800"}`, false},
		{`{"a":"\ud800x"}`, false},
		{`{"a":"\ude00"}`, false},
		{`{"a":"\ud800\u0041"}`, false},
		{`{"a":"\x"}`, false},
		{`{"a":"\u12"}`, false},
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":1e}`, false},
		{`{"a":-}`, false},
		{`{"a":+1}`, false},
		{`{"a":NaN}`, false},
		{`{"a":tru}`, false},
		{`{"a":[1,]}`, false},
		{`{"a":1,}`, false},
		{`{"a":[1}`, false},
		{`{"a":{]}`, false},
		{`{"a"}`, false},
		{`{1:2}`, false},
	}
	for _, tc := range cases {
		if got := IsCompactRaw([]byte(tc.raw)); got != tc.want {
			t.Errorf("IsCompactRaw(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

// referenceCompactRaw is the guarantee spelled out with encoding/json.
func referenceCompactRaw(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) || !utf8.Valid(raw) {
		return false
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil || !bytes.Equal(compact.Bytes(), raw) {
		return false
	}
	// Escapes only occur inside strings in valid JSON.
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++
			continue
		}
		r, _ := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
		switch {
		case r == 0, r >= 0xdc00 && r <= 0xdfff:
			return false
		case r >= 0xd800 && r <= 0xdbff:
			if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return false
			}
			lo, err := strconv.ParseUint(string(raw[i+8:i+12]), 16, 32)
			if err != nil || lo < 0xdc00 || lo > 0xdfff {
				return false
			}
			i += 11
		default:
			i += 5
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return deepest <= MaxRawDepth
}

func FuzzIsCompactRawAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,-0.5e+3,true,false,null,{"b":"\u00e9\"\\"}]}`, `{"a":01}`, `{"a":"\ud83d\ude00"}`,
		`{"a":"\ud800"}`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}", `{"a" :1}`, `{"a":[{"b":[{"c":{}}]}]}`, `{"d":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := IsCompactRaw(raw), referenceCompactRaw(raw); got != want {
			t.Fatalf("IsCompactRaw(%q) = %v, encoding/json says %v", raw, got, want)
		}
	})
}

func BenchmarkIsCompactRaw(b *testing.B) {
	raw := []byte(`{"eventType":"pageview","sessionId":"sess_1a2b3c4d5e","visitorId":"vis_004211","siteId":"shop.example.com",` +
		`"url":"https://shop.example.com/products/shoes/4211?utm_source=google&ref=9f8e7d6c","path":"/products/shoes/4211",` +
		`"attribution":{"utmParams":{"utm_source":"google","utm_medium":"cpc","utm_campaign":"summer-12"}},` +
		`"viewport":{"w":1440,"h":900},"scrollDepth":57,"title":"Product 4211 – Größe"}`)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if !IsCompactRaw(raw) {
			b.Fatal("refused")
		}
	}
}

// TestPlainRunStopsAtTheFirstByteToLookAt puts every byte value at every
// position of short and longer strings (both sides of the unrolled steps and
// of the eight-byte words, over several words).
func TestPlainRunStopsAtTheFirstByteToLookAt(t *testing.T) {
	plain := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	for n := 0; n <= 27; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[pos] = byte(c)
				want := n
				if !plain(byte(c)) {
					want = pos
				}
				for from := 0; from <= pos; from++ {
					if got := PlainRun(b, from); got != want {
						t.Fatalf("PlainRun(%q, %d) = %d, want %d", b, from, got, want)
					}
					if got := PlainRun(string(b), from); got != want {
						t.Fatalf("PlainRun(string %q, %d) = %d, want %d", b, from, got, want)
					}
				}
			}
		}
		if got := PlainRun(bytes.Repeat([]byte{'a'}, n), n); got != n {
			t.Fatalf("PlainRun at the end = %d, want %d", got, n)
		}
	}
	// Words mixing bytes next to the boundaries (borrows between the bytes
	// of a word must neither hide a byte to look at nor invent one).
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7e, 0x7f, 0x80, 0xff, 'a'}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300000 {
		b := make([]byte, 1+rng.IntN(40))
		for j := range b {
			if rng.IntN(4) == 0 {
				b[j] = edges[rng.IntN(len(edges))]
			} else {
				b[j] = byte(0x20 + rng.IntN(0x60))
			}
		}
		from := rng.IntN(len(b))
		want := from
		for want < len(b) && plain(b[want]) {
			want++
		}
		if got := PlainRun(b, from); got != want {
			t.Fatalf("PlainRun(%q, %d) = %d, want %d", b, from, got, want)
		}
	}
}

func TestNonPlainBytesFindsTheFirst(t *testing.T) {
	plain := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	word := func(b [8]byte) (w uint64) {
		for k, v := range b {
			w |= uint64(v) << (8 * k)
		}
		return w
	}
	first := func(b [8]byte) int {
		for k, v := range b {
			if !plain(v) {
				return k
			}
		}
		return 8
	}
	got := func(b [8]byte) int {
		m := nonPlainBytes(word(b))
		if m == 0 {
			return 8
		}
		return bits.TrailingZeros64(m) / 8
	}
	// Every byte value in every lane, the other lanes plain or just inside
	// or outside each bound (a neighbour may borrow or be borrowed from).
	for _, fill := range []byte{'a', 0x20, 0x7f, 0x21, 0x5d, 0x23, 0x5b, 0x7e, 0x1f, 0x80, '"', '\\', 0x00} {
		for lane := 0; lane < 8; lane++ {
			for c := 0; c < 256; c++ {
				var b [8]byte
				for k := range b {
					b[k] = fill
				}
				b[lane] = byte(c)
				if g, w := got(b), first(b); g != w {
					t.Fatalf("nonPlainBytes(%q): first non-plain byte %d, want %d", b[:], g, w)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7e, 0x7f, 0x80, 0xc3, 0xff}
	for range 500000 {
		var b [8]byte
		for k := range b {
			if rng.IntN(3) == 0 {
				b[k] = edges[rng.IntN(len(edges))]
			} else {
				b[k] = byte(rng.IntN(256))
			}
		}
		if g, w := got(b), first(b); g != w {
			t.Fatalf("nonPlainBytes(%q): first non-plain byte %d, want %d", b[:], g, w)
		}
	}
}
