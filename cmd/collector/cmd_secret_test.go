package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evothesis/collector/secrets"
)

type secretRun struct {
	stdout, stderr string
	err            error
}

func runSecretTest(t *testing.T, env map[string]string, stdin string, args ...string) secretRun {
	t.Helper()
	var out, errOut bytes.Buffer
	c := cli{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	err := runSecretWith(context.Background(), c, strings.NewReader(stdin), args)
	return secretRun{out.String(), errOut.String(), err}
}

func TestSecretEncryptReadsStdinAndPrintsAnEncryptedValue(t *testing.T) {
	key := secrets.GenerateKey()
	env := map[string]string{"COLLECTOR_SECRET_KEY": key}
	kr, _ := secrets.LoadKeyring(key, "", "")
	for _, tc := range []struct{ name, stdin, want string }{
		{"trailing newline dropped", "wJalrXUtnFEMI/K7MDENG\n", "wJalrXUtnFEMI/K7MDENG"},
		{"crlf dropped", "abc\r\n", "abc"},
		{"no newline", "abc", "abc"},
		{"inner newlines kept", "a\nb\n", "a\nb"},
		{"spaces kept", " pass word ", " pass word "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runSecretTest(t, env, tc.stdin, "encrypt")
			if r.err != nil {
				t.Fatal(r.err)
			}
			value := strings.TrimSuffix(r.stdout, "\n")
			if !strings.HasPrefix(value, "enc:v1:") || strings.Contains(r.stdout+r.stderr, tc.want) && len(tc.want) > 3 {
				t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
			}
			if got, err := kr.Decrypt(value); err != nil || got != tc.want {
				t.Fatalf("decrypts to %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSecretEncryptAcceptsAnArgumentWithAWarning(t *testing.T) {
	key := secrets.GenerateKey()
	r := runSecretTest(t, map[string]string{"COLLECTOR_SECRET_KEY": key}, "", "encrypt", "s3cret")
	if r.err != nil || !strings.HasPrefix(r.stdout, "enc:v1:") || !strings.Contains(r.stderr, "shell history") {
		t.Fatalf("%+v", r)
	}
}

func TestSecretEncryptUsesTheKeyFileFlag(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if r := runSecretTest(t, nil, "", "genkey", "--out", keyFile); r.err != nil || r.stdout != "" {
		t.Fatalf("genkey --out: %+v", r)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	// The flag wins over a (different) key in the environment.
	env := map[string]string{"COLLECTOR_SECRET_KEY": secrets.GenerateKey()}
	r := runSecretTest(t, env, "pw\n", "encrypt", "--key-file", keyFile)
	if r.err != nil {
		t.Fatal(r.err)
	}
	raw, _ := secrets.ReadKeyFile(keyFile)
	kr, _ := secrets.NewKeyring(raw, nil)
	if got, err := kr.Decrypt(strings.TrimSpace(r.stdout)); err != nil || got != "pw" {
		t.Fatalf("%q, %v", got, err)
	}
	// --out never overwrites.
	if r := runSecretTest(t, nil, "", "genkey", "--out", keyFile); r.err == nil {
		t.Fatal("genkey overwrote an existing key file")
	}
}

func TestSecretCommandsRefuseClearly(t *testing.T) {
	key := secrets.GenerateKey()
	env := map[string]string{"COLLECTOR_SECRET_KEY": key}
	kr, _ := secrets.LoadKeyring(key, "", "")
	enc, _ := kr.Encrypt("x")
	cases := []struct {
		name  string
		env   map[string]string
		stdin string
		args  []string
		want  string
		usage bool
	}{
		{"no command", env, "", nil, "missing command", true},
		{"unknown command", env, "", []string{"frobnicate"}, "unknown command", true},
		{"decrypt does not exist", env, "", []string{"decrypt", enc}, "no decrypt command", true},
		{"no key", nil, "x", []string{"encrypt"}, "no key", false},
		{"empty secret", env, "\n", []string{"encrypt"}, "empty secret", true},
		{"already encrypted", env, enc, []string{"encrypt"}, "already encrypted", true},
		{"two values", env, "", []string{"encrypt", "a", "b"}, "at most one", true},
		{"bad flag", env, "", []string{"encrypt", "--nope"}, "not defined", true},
		{"reencrypt a plain value", env, "plain\n", []string{"reencrypt"}, "not an enc: value", false},
		{"reencrypt nothing", env, "\n\n", []string{"reencrypt"}, "no values", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runSecretTest(t, tc.env, tc.stdin, tc.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", r.err, tc.want)
			}
			if isUsage := errors.As(r.err, new(usageError)); isUsage != tc.usage {
				t.Fatalf("usage error %v, want %v (%v)", isUsage, tc.usage, r.err)
			}
			if r.stdout != "" {
				t.Fatalf("printed %q on failure", r.stdout)
			}
		})
	}
}

func TestSecretReencryptMovesValuesToTheCurrentKey(t *testing.T) {
	oldKey, newKey := secrets.GenerateKey(), secrets.GenerateKey()
	oldRing, _ := secrets.LoadKeyring(oldKey, "", "")
	a, _ := oldRing.Encrypt("alpha")
	b, _ := oldRing.Encrypt("beta")
	env := map[string]string{"COLLECTOR_SECRET_KEY": newKey, "COLLECTOR_PREVIOUS_SECRET_KEY": oldKey}
	r := runSecretTest(t, env, a+"\n\n  "+b+"\n", "reencrypt")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if strings.Contains(r.stdout+r.stderr, "alpha") || strings.Contains(r.stdout+r.stderr, "beta") {
		t.Fatal("reencrypt printed a plaintext")
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	newRing, _ := secrets.LoadKeyring(newKey, "", "")
	for i, want := range []string{"alpha", "beta"} {
		if got, err := newRing.Decrypt(lines[i]); err != nil || got != want {
			t.Fatalf("line %d: %q, %v", i, got, err)
		}
	}
	// Without the previous key the old values cannot move, and nothing is printed.
	r = runSecretTest(t, map[string]string{"COLLECTOR_SECRET_KEY": newKey}, "", "reencrypt", a)
	if r.err == nil || r.stdout != "" || !errors.Is(r.err, secrets.ErrUnknownKey) {
		t.Fatalf("%+v", r)
	}
}

func TestSecretGenkeyAndKeyID(t *testing.T) {
	r := runSecretTest(t, nil, "", "genkey")
	if r.err != nil {
		t.Fatal(r.err)
	}
	key := strings.TrimSpace(r.stdout)
	raw, err := secrets.ParseKey(key)
	if err != nil {
		t.Fatalf("genkey printed %q: %v", key, err)
	}
	prev := secrets.GenerateKey()
	prevRaw, _ := secrets.ParseKey(prev)
	r = runSecretTest(t, map[string]string{"COLLECTOR_SECRET_KEY": key, "COLLECTOR_PREVIOUS_SECRET_KEY": prev}, "", "keyid")
	want := "current  " + secrets.KeyID(raw) + "\nprevious " + secrets.KeyID(prevRaw) + "\n"
	if r.err != nil || r.stdout != want {
		t.Fatalf("keyid: %q (%v), want %q", r.stdout, r.err, want)
	}
	if r := runSecretTest(t, nil, "", "--help"); !errors.Is(r.err, flag.ErrHelp) || !strings.Contains(r.stderr, "reencrypt") {
		t.Fatalf("help: %+v", r)
	}
}
