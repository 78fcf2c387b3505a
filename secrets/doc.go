// Package secrets keeps credentials encrypted at rest and out of logs.
//
// It owns the "enc:v1:" value format, the keyring that encrypts and decrypts
// it, and the Secret type that redacts itself everywhere it could be printed.
//
// # Format
//
//	enc:v1:<key-id>:<base64url(nonce || ciphertext || tag)>
//
// AES-256-GCM (crypto/aes, crypto/cipher) with a random 96-bit nonce per
// value. key-id is 8 hex digits of SHA-256 over a domain-separation label and
// the key, so a value names the key that made it without revealing anything
// about that key; decryption picks the right key by id, and a value made with
// a key we no longer hold fails with an error naming both ids. "enc:v1:" and
// the key id are authenticated as additional data, so neither can be altered
// without decryption failing. The base64 alphabet is URL-safe without padding,
// so values need no quoting in YAML, environment files or shells.
//
// # Keys
//
// A key is 32 random bytes, written in base64 (standard or URL-safe, padded
// or not): COLLECTOR_SECRET_KEY, or a file named by COLLECTOR_SECRET_KEY_FILE
// (its content, surrounding whitespace ignored). `collector secret genkey`
// makes one.
//
// # Rotation
//
//  1. Generate a new key (`collector secret genkey`).
//  2. Deploy with COLLECTOR_SECRET_KEY=<new> and
//     COLLECTOR_PREVIOUS_SECRET_KEY=<old>: every existing value still
//     decrypts, and new values use the new key.
//  3. Re-encrypt each value: `collector secret reencrypt` reads enc:v1 values
//     and prints them re-encrypted with the current key, without ever
//     printing a plaintext. Replace them in the clients file and environment,
//     then reload (SIGHUP) or restart.
//  4. Remove COLLECTOR_PREVIOUS_SECRET_KEY. A value still made with the old
//     key now fails to load with an error naming its key id, not silently.
//
// Promises: Decrypt returns a plaintext only for a value made by one of the
// keyring's keys and not altered since; errors never contain a plaintext or a
// key; a Secret never prints its value through fmt, encoding/json,
// encoding/xml/text marshalling, yaml.v3 or log/slog.
package secrets
