package ingest

import (
	"testing"
	"time"

	"github.com/evothesis/collector/event"
)

func TestClientTimestamps(t *testing.T) {
	received := time.Date(2025, 6, 22, 12, 30, 0, 0, time.UTC)
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t.UTC()
	}
	cases := []struct {
		name    string
		raw     string
		numeric bool
		want    time.Time // zero: the receive time
		status  string
	}{
		{"RFC 3339 Z", "2025-06-22T12:00:00Z", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"milliseconds", "2025-06-22T12:00:00.123Z", false, utc("2025-06-22T12:00:00.123Z"), event.TimestampOK},
		{"nanoseconds cut to µs", "2025-06-22T12:00:00.123456789Z", false, utc("2025-06-22T12:00:00.123456Z"), event.TimestampOK},
		{"offset", "2025-06-22T14:00:00+02:00", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"negative offset with fraction", "2025-06-22T07:00:00.5-05:00", false, utc("2025-06-22T12:00:00.5Z"), event.TimestampOK},
		{"offset without colon", "2025-06-22T14:00:00+0200", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"hour offset", "2025-06-22T14:00:00+02", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"no zone means UTC", "2025-06-22T12:00:00", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"no zone with fraction", "2025-06-22T12:00:00.250", false, utc("2025-06-22T12:00:00.25Z"), event.TimestampOK},
		{"space separator", "2025-06-22 12:00:00", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"lower-case t and z", "2025-06-22t12:00:00z", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"no seconds", "2025-06-22T12:00Z", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"comma fraction", "2025-06-22T12:00:00,5Z", false, utc("2025-06-22T12:00:00.5Z"), event.TimestampOK},
		{"date only", "2025-06-22", false, utc("2025-06-22T00:00:00Z"), event.TimestampOK},
		{"surrounding space", "  2025-06-22T12:00:00Z ", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"RFC 1123 (toUTCString)", "Sun, 22 Jun 2025 12:00:00 GMT", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"Date.toString", "Sun Jun 22 2025 14:00:00 GMT+0200 (Central European Summer Time)", false, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"unix seconds number", "1750593600", true, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"unix seconds fraction", "1750593600.25", true, utc("2025-06-22T12:00:00.25Z"), event.TimestampOK},
		{"unix ms number", "1750593600123", true, utc("2025-06-22T12:00:00.123Z"), event.TimestampOK},
		{"unix ms string", "1750593600123", false, utc("2025-06-22T12:00:00.123Z"), event.TimestampOK},
		{"unix ms fraction", "1750593600123.5", true, utc("2025-06-22T12:00:00.1235Z"), event.TimestampOK},
		{"unix µs", "1750593600123456", true, utc("2025-06-22T12:00:00.123456Z"), event.TimestampOK},
		{"unix ns", "1750593600123456789", true, utc("2025-06-22T12:00:00.123456Z"), event.TimestampOK},
		{"exponent", "1.7505936e9", true, utc("2025-06-22T12:00:00Z"), event.TimestampOK},
		{"missing", "", false, time.Time{}, event.TimestampMissing},
		{"words", "yesterday", false, time.Time{}, event.TimestampUnparseable},
		{"month 13", "2025-13-01T00:00:00Z", false, time.Time{}, event.TimestampUnparseable},
		{"February 30", "2025-02-30T00:00:00Z", false, time.Time{}, event.TimestampUnparseable},
		{"hour 24", "2025-06-22T24:00:00Z", false, time.Time{}, event.TimestampUnparseable},
		{"bad zone", "2025-06-22T12:00:00+2", false, time.Time{}, event.TimestampUnparseable},
		{"empty fraction", "2025-06-22T12:00:00.Z", false, time.Time{}, event.TimestampUnparseable},
		{"two dots", "1750593600.1.2", false, time.Time{}, event.TimestampUnparseable},
		{"too many digits", "17505936001234567890123", true, time.Time{}, event.TimestampUnparseable},
		{"a JSON bool", "true", false, time.Time{}, event.TimestampUnparseable},
		{"before 2000", "1999-12-31T23:59:59Z", false, time.Time{}, event.TimestampOutOfRange},
		{"zero", "0", true, time.Time{}, event.TimestampOutOfRange},
		{"negative", "-1750593600", true, time.Time{}, event.TimestampOutOfRange},
		{"seconds mistaken for ms", "1750593", true, time.Time{}, event.TimestampOutOfRange},
		{"two days ahead", "2025-06-24T13:00:00Z", false, time.Time{}, event.TimestampOutOfRange},
		{"23 hours ahead is a skewed clock", "2025-06-23T11:30:00Z", false, utc("2025-06-23T11:30:00Z"), event.TimestampOK},
		{"year 9999", "9999-01-01T00:00:00Z", false, time.Time{}, event.TimestampOutOfRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e event.Event
			resolveTimestamp(&e, c.raw, c.numeric, received)
			want := c.want
			if want.IsZero() {
				want = received
			}
			if !e.Timestamp.Equal(want) || e.TimestampStatus != c.status {
				t.Fatalf("got %v (%q), want %v (%q)", e.Timestamp, e.TimestampStatus, want, c.status)
			}
			keepsRaw := c.status == event.TimestampUnparseable || c.status == event.TimestampOutOfRange
			if keepsRaw != (e.TimestampRaw != "") || (keepsRaw && e.TimestampRaw != c.raw) {
				t.Fatalf("timestamp_raw %q for status %q", e.TimestampRaw, c.status)
			}
			if e.Timestamp.Location() != time.UTC {
				t.Fatalf("timestamp not UTC: %v", e.Timestamp.Location())
			}
		})
	}
}
