package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/evothesis/collector/secrets"
)

// maxSecretInput bounds what `secret encrypt` reads from standard input.
const maxSecretInput = 64 << 10

const secretUsage = `usage: collector secret <command> [flags]

commands:
  encrypt [--key-file F] [VALUE]   print VALUE (or standard input) as an enc:v1: value
  reencrypt [--key-file F] [VALUE...]
                                   re-encrypt enc:v1: values (arguments, or one per line on
                                   standard input) with the current key, during a key rotation
  genkey [--out F]                 print a new key, or write it to a new file F (mode 0600)
  keyid [--key-file F]             print the ids of the current and previous keys, as values name them

The key comes from --key-file, COLLECTOR_SECRET_KEY_FILE or COLLECTOR_SECRET_KEY;
COLLECTOR_PREVIOUS_SECRET_KEY is also accepted by reencrypt.
Prefer standard input to an argument: arguments land in shell history and ps.
There is deliberately no decrypt command: the running collector is the only
reader of these secrets, and rotation needs none (use reencrypt).
`

// runSecret implements `collector secret`.
func runSecret(ctx context.Context, c cli, args []string) error {
	return runSecretWith(ctx, c, os.Stdin, args)
}

func runSecretWith(ctx context.Context, c cli, stdin io.Reader, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, secretUsage)
		return usageError{"missing command"}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(c.stderr, secretUsage)
		return flag.ErrHelp
	case "encrypt":
		return secretEncrypt(c, stdin, args[1:])
	case "reencrypt":
		return secretReencrypt(ctx, c, stdin, args[1:])
	case "genkey":
		return secretGenkey(c, args[1:])
	case "keyid":
		return secretKeyID(c, args[1:])
	case "decrypt":
		return usageError{"there is no decrypt command: the collector is the only reader of these secrets; to rotate keys use reencrypt"}
	}
	fmt.Fprint(c.stderr, secretUsage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func secretFlags(c cli, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("secret "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	keyFile := fs.String("key-file", "", "file holding the base64 key (default: $COLLECTOR_SECRET_KEY_FILE, then $COLLECTOR_SECRET_KEY)")
	return fs, keyFile
}

func parseSecretFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// secretKeyring loads the keyring for a CLI command: --key-file wins over the
// environment, which may name a file or hold the key.
func secretKeyring(c cli, keyFile string) (*secrets.Keyring, error) {
	keyB64 := c.getenv("COLLECTOR_SECRET_KEY")
	if keyFile == "" {
		keyFile = c.getenv("COLLECTOR_SECRET_KEY_FILE")
	}
	if keyFile != "" {
		keyB64 = ""
	}
	kr, err := secrets.LoadKeyring(keyB64, keyFile, c.getenv("COLLECTOR_PREVIOUS_SECRET_KEY"))
	if err != nil {
		return nil, err
	}
	if !kr.HasKey() {
		return nil, errors.New("no key: pass --key-file, or set COLLECTOR_SECRET_KEY_FILE or COLLECTOR_SECRET_KEY (make one with `collector secret genkey`)")
	}
	return kr, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func secretEncrypt(c cli, stdin io.Reader, args []string) error {
	fs, keyFile := secretFlags(c, "encrypt")
	if err := parseSecretFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageError{"encrypt takes at most one value (quote it, or pass it on standard input)"}
	}
	kr, err := secretKeyring(c, *keyFile)
	if err != nil {
		return err
	}
	var plain string
	if fs.NArg() == 1 {
		plain = fs.Arg(0)
		fmt.Fprintln(c.stderr, "note: a secret passed as an argument stays in shell history; prefer standard input")
	} else {
		if isTerminal(stdin) {
			fmt.Fprint(c.stderr, "secret (echoed; end with Enter): ")
			line, err := bufio.NewReader(io.LimitReader(stdin, maxSecretInput)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read secret: %w", err)
			}
			plain = line
		} else {
			data, err := io.ReadAll(io.LimitReader(stdin, maxSecretInput+1))
			if err != nil {
				return fmt.Errorf("read secret from standard input: %w", err)
			}
			if len(data) > maxSecretInput {
				return fmt.Errorf("secret on standard input is larger than %d bytes", maxSecretInput)
			}
			plain = string(data)
		}
		// One trailing newline is the terminal's or echo's, not the secret's.
		plain = strings.TrimSuffix(strings.TrimSuffix(plain, "\n"), "\r")
	}
	if plain == "" {
		return usageError{"empty secret"}
	}
	if secrets.IsEncrypted(plain) {
		return usageError{"the value is already encrypted (to move it to the current key use reencrypt)"}
	}
	value, err := kr.Encrypt(plain)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	_, err = fmt.Fprintln(c.stdout, value)
	return err
}

func secretReencrypt(ctx context.Context, c cli, stdin io.Reader, args []string) error {
	fs, keyFile := secretFlags(c, "reencrypt")
	if err := parseSecretFlags(fs, args); err != nil {
		return err
	}
	kr, err := secretKeyring(c, *keyFile)
	if err != nil {
		return err
	}
	values := fs.Args()
	if len(values) == 0 {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 4096), maxSecretInput)
		for sc.Scan() {
			if v := strings.TrimSpace(sc.Text()); v != "" {
				values = append(values, v)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read values from standard input: %w", err)
		}
	}
	if len(values) == 0 {
		return usageError{"no values to re-encrypt"}
	}
	// Check every value before printing any, so that a failure never leaves
	// half a list on the screen to be pasted.
	out := make([]string, len(values))
	for i, v := range values {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !secrets.IsEncrypted(v) {
			return fmt.Errorf("value %d is not an enc: value (encrypt plain secrets with `collector secret encrypt`)", i+1)
		}
		if out[i], err = kr.Reencrypt(v); err != nil {
			return fmt.Errorf("value %d: %w", i+1, err)
		}
	}
	for _, v := range out {
		if _, err := fmt.Fprintln(c.stdout, v); err != nil {
			return err
		}
	}
	return nil
}

func secretGenkey(c cli, args []string) error {
	fs := flag.NewFlagSet("secret genkey", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	out := fs.String("out", "", "write the key to this new file (mode 0600) instead of standard output")
	if err := parseSecretFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"genkey takes no arguments"}
	}
	key := secrets.GenerateKey()
	raw, _ := secrets.ParseKey(key)
	if *out == "" {
		_, err := fmt.Fprintln(c.stdout, key)
		fmt.Fprintf(c.stderr, "key id %s: set it as COLLECTOR_SECRET_KEY, or save it to a file named by COLLECTOR_SECRET_KEY_FILE; never in the clients file\n", secrets.KeyID(raw))
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := fmt.Fprintln(f, key); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", *out, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close key file %s: %w", *out, err)
	}
	fmt.Fprintf(c.stderr, "wrote key %s to %s: set COLLECTOR_SECRET_KEY_FILE=%s\n", secrets.KeyID(raw), *out, *out)
	return nil
}

func secretKeyID(c cli, args []string) error {
	fs, keyFile := secretFlags(c, "keyid")
	if err := parseSecretFlags(fs, args); err != nil {
		return err
	}
	kr, err := secretKeyring(c, *keyFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "current  %s\n", kr.CurrentKeyID())
	if prev := c.getenv("COLLECTOR_PREVIOUS_SECRET_KEY"); prev != "" {
		if raw, err := secrets.ParseKey(prev); err == nil && secrets.KeyID(raw) != kr.CurrentKeyID() {
			fmt.Fprintf(c.stdout, "previous %s\n", secrets.KeyID(raw))
		}
	}
	return nil
}
