package secrets

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, everywhere.
const Redacted = "[REDACTED]"

// Secret is a credential in memory. Every way of printing or marshalling it
// (fmt with any verb, encoding/json, encoding.TextMarshaler users, yaml.v3,
// log/slog) gives Redacted; only Reveal returns the value, so a use of the
// real value is always explicit and easy to find.
type Secret string

// Reveal returns the secret's value, for the one place that needs it
// (signing a request, opening a connection).
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `secrets.Secret("` + Redacted + `")` }

// Format implements fmt.Formatter, so that no verb (%s, %v, %q, %x, %d...)
// reaches the underlying string.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	fmt.Fprint(f, Redacted)
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (encoding/xml, map keys,
// and encoders that fall back to it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalYAML implements yaml.v3's Marshaler.
func (s Secret) MarshalYAML() (any, error) { return Redacted, nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
