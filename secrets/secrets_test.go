package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func mustKey(t testing.TB) []byte {
	t.Helper()
	k, err := ParseKey(GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeyring(t testing.TB, current, previous []byte) *Keyring {
	t.Helper()
	kr, err := NewKeyring(current, previous)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	kr := mustKeyring(t, mustKey(t), nil)
	for _, plain := range []string{"", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ünïcödé ✓", strings.Repeat("x", 10000), "line\nbreak:colon enc:v1:inside"} {
		v, err := kr.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		if !IsEncrypted(v) || !strings.HasPrefix(v, "enc:v1:"+kr.CurrentKeyID()+":") {
			t.Fatalf("value %q lacks the enc:v1:<key id>: header", v)
		}
		if len(plain) > 3 && strings.Contains(v, plain) {
			t.Fatalf("value contains the plaintext")
		}
		if strings.ContainsAny(v[len("enc:v1:12345678:"):], "+/= \n") {
			t.Fatalf("payload is not unpadded base64url: %q", v)
		}
		got, err := kr.Decrypt(v)
		if err != nil || got != plain {
			t.Fatalf("Decrypt = %q, %v; want %q", got, err, plain)
		}
	}
}

func TestEncryptionIsRandomized(t *testing.T) {
	kr := mustKeyring(t, mustKey(t), nil)
	a, _ := kr.Encrypt("same")
	b, _ := kr.Encrypt("same")
	if a == b {
		t.Fatal("two encryptions of the same plaintext are equal: nonce reuse")
	}
}

func TestPlainValuesPassThrough(t *testing.T) {
	var nilRing *Keyring
	for _, kr := range []*Keyring{nilRing, mustKeyring(t, nil, nil), mustKeyring(t, mustKey(t), nil)} {
		for _, v := range []string{"", "AKIAIOSFODNN7EXAMPLE", "encrypted:no", "ENC:v1:upper"} {
			got, err := kr.Decrypt(v)
			if err != nil || got != v {
				t.Fatalf("Decrypt(%q) = %q, %v", v, got, err)
			}
		}
	}
}

func TestDecryptFailsClearly(t *testing.T) {
	current, other := mustKey(t), mustKey(t)
	kr := mustKeyring(t, current, nil)
	good, _ := kr.Encrypt("s3cr3t-value")
	fromOther, _ := mustKeyring(t, other, nil).Encrypt("s3cr3t-value")
	id, payload, _ := split(good)
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return "enc:v1:" + id + ":" + base64.RawURLEncoding.EncodeToString(b)
	}
	cases := []struct {
		name  string
		kr    *Keyring
		value string
		want  error
	}{
		{"wrong key", kr, fromOther, ErrUnknownKey},
		{"no key configured", mustKeyring(t, nil, nil), good, ErrNoKey},
		{"tampered nonce", kr, flip(0), ErrDecrypt},
		{"tampered ciphertext", kr, flip(13), ErrDecrypt},
		{"tampered tag", kr, flip(len(raw) - 1), ErrDecrypt},
		{"truncated", kr, good[:len(good)-4], ErrDecrypt},
		{"way too short", kr, "enc:v1:" + id + ":AAAA", ErrMalformed},
		{"not base64", kr, "enc:v1:" + id + ":!!!!", ErrMalformed},
		{"no key id", kr, "enc:v1:" + payload, ErrMalformed},
		{"unknown version", kr, "enc:v2:" + id + ":" + payload, ErrMalformed},
		{"key id swapped", kr, "enc:v1:" + KeyID(other) + ":" + payload, ErrUnknownKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.kr.Decrypt(tc.value)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decrypt = %q, %v; want %v", got, err, tc.want)
			}
			if got != "" || strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("failure leaked the plaintext: %q, %v", got, err)
			}
		})
	}
	// The error names both key ids, so an operator knows which key is missing.
	_, err := kr.Decrypt(fromOther)
	if !strings.Contains(err.Error(), KeyID(other)) || !strings.Contains(err.Error(), KeyID(current)) {
		t.Fatalf("error %q does not name the key ids", err)
	}
}

func TestRotationDecryptsWithThePreviousKeyAndReencryptsWithTheCurrent(t *testing.T) {
	oldKey, newKey := mustKey(t), mustKey(t)
	oldValue, _ := mustKeyring(t, oldKey, nil).Encrypt("client-secret")

	rotating := mustKeyring(t, newKey, oldKey)
	if got, err := rotating.Decrypt(oldValue); err != nil || got != "client-secret" {
		t.Fatalf("previous key: Decrypt = %q, %v", got, err)
	}
	if !rotating.NeedsReencrypt(oldValue) {
		t.Fatal("a value under the previous key does not need re-encryption")
	}
	fresh, err := rotating.Reencrypt(oldValue)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KeyIDOf(fresh); id != KeyID(newKey) || rotating.NeedsReencrypt(fresh) {
		t.Fatalf("re-encrypted under key %s, want the current %s", id, KeyID(newKey))
	}
	// Once the previous key is gone, only the re-encrypted value opens.
	after := mustKeyring(t, newKey, nil)
	if got, err := after.Decrypt(fresh); err != nil || got != "client-secret" {
		t.Fatalf("after rotation: %q, %v", got, err)
	}
	if _, err := after.Decrypt(oldValue); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old value after rotation: %v", err)
	}
}

func TestLoadKeyring(t *testing.T) {
	key := GenerateKey()
	raw, _ := ParseKey(key)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("\n  "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bigFile := filepath.Join(dir, "big")
	_ = os.WriteFile(bigFile, bytes.Repeat([]byte("A"), 5000), 0o600)
	urlKey := base64.RawURLEncoding.EncodeToString(raw)
	cases := []struct {
		name                  string
		keyB64, file, prevB64 string
		wantID                string
		wantErr               string
	}{
		{"nothing configured", "", "", "", "", ""},
		{"key in the environment", key, "", "", KeyID(raw), ""},
		{"url-safe unpadded key", urlKey, "", "", KeyID(raw), ""},
		{"key file", "", keyFile, "", KeyID(raw), ""},
		{"both", key, keyFile, "", "", "not both"},
		{"missing file", "", filepath.Join(dir, "nope"), "", "", "no such file"},
		{"oversized file", "", bigFile, "", "", "larger than a key"},
		{"short key", base64.StdEncoding.EncodeToString([]byte("short")), "", "", "", "32 bytes"},
		{"not base64", "not base64!", "", "", "", "not base64"},
		{"previous without current", "", "", key, "", "needs a current key"},
		{"bad previous", key, "", "xx", "", "COLLECTOR_PREVIOUS_SECRET_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := LoadKeyring(tc.keyB64, tc.file, tc.prevB64)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Fatal("error contains the key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kr.CurrentKeyID() != tc.wantID {
				t.Fatalf("key id %q, want %q", kr.CurrentKeyID(), tc.wantID)
			}
		})
	}
}

func TestGenerateKeyMakesDistinctUsableKeys(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	if _, err := LoadKeyring(a, "", b); err != nil {
		t.Fatal(err)
	}
}

type withSecret struct {
	User     string
	Password Secret
	Nested   struct{ Token Secret }
}

func TestSecretNeverPrintsItsValue(t *testing.T) {
	const value = "hunter2-very-secret"
	s := Secret(value)
	v := withSecret{User: "alice", Password: s}
	v.Nested.Token = s

	outputs := map[string]string{}
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%.3s"} {
		outputs["fmt "+verb] = fmt.Sprintf(verb, s)
		outputs["fmt struct "+verb] = fmt.Sprintf(verb, v)
		outputs["fmt pointer "+verb] = fmt.Sprintf(verb, &v)
	}
	outputs["fmt error"] = fmt.Errorf("login with %v failed", s).Error()
	outputs["Sprint"] = fmt.Sprint(s, v)
	j, _ := json.Marshal(v)
	outputs["json"] = string(j)
	jm, _ := json.Marshal(map[string]any{"k": s, "list": []Secret{s}})
	outputs["json map"] = string(jm)
	x, _ := xml.Marshal(v)
	outputs["xml"] = string(x)
	y, _ := yaml.Marshal(v)
	outputs["yaml"] = string(y)
	for _, h := range []string{"json", "text"} {
		var buf bytes.Buffer
		var handler slog.Handler = slog.NewJSONHandler(&buf, nil)
		if h == "text" {
			handler = slog.NewTextHandler(&buf, nil)
		}
		log := slog.New(handler)
		log.Info("connect", "secret", s, "config", v, slog.Any("any", s), slog.Group("g", "s", s))
		log.With("bound", s).Info("again", "ptr", &v)
		outputs["slog "+h] = buf.String()
	}
	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, "hunter") || strings.Contains(out, fmt.Sprintf("%x", value)[:10]) {
			t.Errorf("%s leaked the secret: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s does not say %s: %s", name, Redacted, out)
		}
	}
	if s.Reveal() != value {
		t.Fatal("Reveal lost the value")
	}
}

func TestSecretDecodesFromJSONAndYAML(t *testing.T) {
	var v struct {
		Key Secret `json:"key" yaml:"key"`
	}
	if err := json.Unmarshal([]byte(`{"key":"abc"}`), &v); err != nil || v.Key.Reveal() != "abc" {
		t.Fatalf("json: %q %v", v.Key.Reveal(), err)
	}
	if err := yaml.Unmarshal([]byte("key: def\n"), &v); err != nil || v.Key.Reveal() != "def" {
		t.Fatalf("yaml: %q %v", v.Key.Reveal(), err)
	}
}

func TestOpenDecryptsIntoASecret(t *testing.T) {
	kr := mustKeyring(t, mustKey(t), nil)
	v, _ := kr.Encrypt("pw")
	s, err := kr.Open(v)
	if err != nil || s.Reveal() != "pw" || s.String() != Redacted {
		t.Fatalf("Open = %v (%q), %v", s, s.Reveal(), err)
	}
}

func FuzzDecryptNeverPanicsOrAcceptsForgeries(f *testing.F) {
	key := make([]byte, KeySize)
	kr := mustKeyring(f, key, nil)
	// "x" under the all-zero key, fixed so that every fuzz worker agrees.
	const good = "enc:v1:73e7c964:ur71Tlw4S96WcDM5AhkJMRe3eUfMOy4oAjv5SSE"
	if got, err := kr.Decrypt(good); err != nil || got != "x" {
		f.Fatalf("fixed value: %q, %v", got, err)
	}
	f.Add(good)
	f.Add("enc:v1:")
	f.Add("enc:v1:" + KeyID(key) + ":")
	f.Add("enc:")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := kr.Decrypt(v)
		if !IsEncrypted(v) {
			if err != nil || got != v {
				t.Fatalf("plain %q: %q, %v", v, got, err)
			}
			return
		}
		if err == nil && v != good {
			// Only the value made with the key may authenticate: anything
			// else the fuzzer builds is a forgery (or a re-encoding of the
			// same bytes, which must still be well-formed).
			id, payload, serr := split(v)
			raw, perr := base64.RawURLEncoding.DecodeString(payload)
			_, goodPayload, _ := split(good)
			goodRaw, _ := base64.RawURLEncoding.DecodeString(goodPayload)
			if serr != nil || perr != nil || id != kr.CurrentKeyID() || !bytes.Equal(raw, goodRaw) {
				t.Fatalf("accepted forged %q as %q", v, got)
			}
		}
	})
}
