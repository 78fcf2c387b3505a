package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Prefix starts every encrypted value.
const Prefix = "enc:"

const v1Prefix = "enc:v1:"

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// maxKeyFileBytes bounds what is read from a key file: a key is 44 bytes of
// base64, and anything much larger is the wrong file.
const maxKeyFileBytes = 4096

var (
	// ErrNoKey: an encrypted value was met but no key is configured.
	ErrNoKey = errors.New("no secret key configured (set COLLECTOR_SECRET_KEY or COLLECTOR_SECRET_KEY_FILE)")
	// ErrUnknownKey: the value was made with a key the keyring does not hold.
	ErrUnknownKey = errors.New("value was encrypted with a key that is neither the current nor the previous key")
	// ErrMalformed: the value is not a well-formed enc:v1 value.
	ErrMalformed = errors.New("malformed encrypted value")
	// ErrDecrypt: authentication failed: the value was altered or truncated.
	ErrDecrypt = errors.New("encrypted value does not authenticate (altered, truncated, or made with another key of the same id)")
	// ErrBadKey: a key is not 32 bytes of base64.
	ErrBadKey = errors.New("secret key must be 32 bytes, base64 encoded (generate one with `collector secret genkey`)")
)

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring holds the current key, which encrypts, and optionally the previous
// key, which still decrypts during a rotation. A nil or empty Keyring passes
// plain values through and refuses encrypted ones with ErrNoKey. It is safe
// for concurrent use.
type Keyring struct {
	current  *key
	previous *key
}

// KeyID returns the id that values made with k carry.
func KeyID(k []byte) string {
	h := sha256.New()
	h.Write([]byte("collector enc:v1 key id\x00"))
	h.Write(k)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

func newKey(k []byte) (*key, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("%w: got %d bytes", ErrBadKey, len(k))
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &key{id: KeyID(k), aead: aead}, nil
}

// NewKeyring builds a keyring from raw 32-byte keys. current may be nil (an
// empty keyring: plain values only); previous may be nil. A previous key
// without a current one is refused: nothing could encrypt.
func NewKeyring(current, previous []byte) (*Keyring, error) {
	kr := &Keyring{}
	if current == nil {
		if previous != nil {
			return nil, errors.New("a previous secret key needs a current key (COLLECTOR_PREVIOUS_SECRET_KEY without COLLECTOR_SECRET_KEY)")
		}
		return kr, nil
	}
	var err error
	if kr.current, err = newKey(current); err != nil {
		return nil, fmt.Errorf("current key: %w", err)
	}
	if previous != nil && !bytes.Equal(previous, current) {
		if kr.previous, err = newKey(previous); err != nil {
			return nil, fmt.Errorf("previous key: %w", err)
		}
	}
	return kr, nil
}

// LoadKeyring builds the keyring from the configuration: the current key in
// base64 (COLLECTOR_SECRET_KEY) or in a file (COLLECTOR_SECRET_KEY_FILE), at
// most one of them, and the previous key in base64
// (COLLECTOR_PREVIOUS_SECRET_KEY). All empty gives an empty keyring.
func LoadKeyring(keyB64, keyFile, previousB64 string) (*Keyring, error) {
	if keyB64 != "" && keyFile != "" {
		return nil, errors.New("set COLLECTOR_SECRET_KEY or COLLECTOR_SECRET_KEY_FILE, not both")
	}
	var current, previous []byte
	var err error
	switch {
	case keyFile != "":
		if current, err = ReadKeyFile(keyFile); err != nil {
			return nil, err
		}
	case keyB64 != "":
		if current, err = ParseKey(keyB64); err != nil {
			return nil, fmt.Errorf("COLLECTOR_SECRET_KEY: %w", err)
		}
	}
	if previousB64 != "" {
		if previous, err = ParseKey(previousB64); err != nil {
			return nil, fmt.Errorf("COLLECTOR_PREVIOUS_SECRET_KEY: %w", err)
		}
	}
	return NewKeyring(current, previous)
}

// ReadKeyFile reads a base64 key from a file.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read secret key file %s: %w", path, err)
	}
	if len(buf) > maxKeyFileBytes {
		return nil, fmt.Errorf("secret key file %s: %w: the file is larger than a key", path, ErrBadKey)
	}
	k, err := ParseKey(string(buf))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return k, nil
}

// ParseKey decodes a base64 key (standard or URL-safe alphabet, padded or
// not, surrounding whitespace ignored) and checks its length.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("%w: got %d bytes", ErrBadKey, len(k))
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: not base64", ErrBadKey)
}

// GenerateKey returns a new random key in standard base64.
func GenerateKey() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("crypto/rand failed: " + err.Error()) // crypto/rand.Read does not fail on supported platforms
	}
	return base64.StdEncoding.EncodeToString(k)
}

// IsEncrypted reports whether v is an encrypted value (of any version: an
// unknown version then fails to decrypt instead of passing as plain text).
func IsEncrypted(v string) bool { return strings.HasPrefix(v, Prefix) }

// CurrentKeyID is the id of the key that encrypts, or "" for an empty keyring.
func (kr *Keyring) CurrentKeyID() string {
	if kr == nil || kr.current == nil {
		return ""
	}
	return kr.current.id
}

// HasKey reports whether the keyring can encrypt.
func (kr *Keyring) HasKey() bool { return kr != nil && kr.current != nil }

// Encrypt returns plaintext as an enc:v1 value under the current key.
func (kr *Keyring) Encrypt(plaintext string) (string, error) {
	if !kr.HasKey() {
		return "", ErrNoKey
	}
	k := kr.current
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt: nonce: %w", err)
	}
	header := v1Prefix + k.id + ":"
	sealed := k.aead.Seal(nonce, nonce, []byte(plaintext), []byte(header))
	return header + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// KeyIDOf returns the key id an encrypted value names.
func KeyIDOf(value string) (string, error) {
	id, _, err := split(value)
	return id, err
}

func split(value string) (id, payload string, err error) {
	if !strings.HasPrefix(value, v1Prefix) {
		if IsEncrypted(value) {
			v, _, _ := strings.Cut(strings.TrimPrefix(value, Prefix), ":")
			return "", "", fmt.Errorf("%w: unsupported version %q (this collector reads enc:v1)", ErrMalformed, v)
		}
		return "", "", fmt.Errorf("%w: no %s prefix", ErrMalformed, v1Prefix)
	}
	id, payload, ok := strings.Cut(strings.TrimPrefix(value, v1Prefix), ":")
	if !ok || len(id) != 8 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("%w: want enc:v1:<8 hex key id>:<data>", ErrMalformed)
	}
	return id, payload, nil
}

// Decrypt returns the plaintext of an encrypted value. A value that is not
// encrypted (IsEncrypted false) is returned unchanged, so configuration may
// hold either. Errors name key ids, never the plaintext.
func (kr *Keyring) Decrypt(value string) (string, error) {
	if !IsEncrypted(value) {
		return value, nil
	}
	id, payload, err := split(value)
	if err != nil {
		return "", err
	}
	if !kr.HasKey() {
		return "", fmt.Errorf("value encrypted with key %s: %w", id, ErrNoKey)
	}
	var k *key
	switch {
	case kr.current.id == id:
		k = kr.current
	case kr.previous != nil && kr.previous.id == id:
		k = kr.previous
	default:
		have := "current key " + kr.current.id
		if kr.previous != nil {
			have += ", previous key " + kr.previous.id
		}
		return "", fmt.Errorf("%w: value has key %s; have %s", ErrUnknownKey, id, have)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("%w: data is not base64url", ErrMalformed)
	}
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return "", fmt.Errorf("%w: too short", ErrMalformed)
	}
	plain, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(v1Prefix+id+":"))
	if err != nil {
		return "", fmt.Errorf("key %s: %w", id, ErrDecrypt)
	}
	return string(plain), nil
}

// NeedsReencrypt reports whether an encrypted value was made with a key other
// than the current one (during a rotation).
func (kr *Keyring) NeedsReencrypt(value string) bool {
	id, err := KeyIDOf(value)
	return err == nil && id != kr.CurrentKeyID()
}

// Reencrypt decrypts value with whichever key made it and encrypts it again
// with the current key. A plain value is encrypted.
func (kr *Keyring) Reencrypt(value string) (string, error) {
	plain, err := kr.Decrypt(value)
	if err != nil {
		return "", err
	}
	return kr.Encrypt(plain)
}

// Open decrypts value (or passes a plain one through) into a Secret.
func (kr *Keyring) Open(value string) (Secret, error) {
	plain, err := kr.Decrypt(value)
	return Secret(plain), err
}
