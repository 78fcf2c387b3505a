package clients

import (
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduleNext(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	cases := []struct {
		spec, after, want string
	}{
		{"hourly", "2025-06-22T11:30:15Z", "2025-06-22T12:00:00Z"},
		{"", "2025-06-22T11:30:15Z", "2025-06-22T12:00:00Z"},
		{"HOURLY", "2025-06-22T12:00:00Z", "2025-06-22T13:00:00Z"}, // strictly after
		{"hourly", "2025-12-31T23:59:59.999Z", "2026-01-01T00:00:00Z"},
		{"daily", "2025-06-22T11:30:15Z", "2025-06-23T00:00:00Z"},
		{"daily", "2025-06-23T00:00:00Z", "2025-06-24T00:00:00Z"},
		{"realtime", "2025-06-22T11:30:15Z", "2025-06-22T11:30:25Z"},
		{"realtime:60", "2025-06-22T11:30:15Z", "2025-06-22T11:31:15Z"},
		{"realtime:5:1000", "2025-06-22T11:30:15Z", "2025-06-22T11:30:20Z"},
		{"*/15 * * * *", "2025-06-22T11:30:15Z", "2025-06-22T11:45:00Z"},
		{"30 2 * * *", "2025-06-22T11:30:15Z", "2025-06-23T02:30:00Z"},
		{"0 0 * * 1", "2025-06-22T11:30:15Z", "2025-06-23T00:00:00Z"}, // Monday
		{"0 0 29 2 *", "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"@daily", "2025-06-22T11:30:15Z", "2025-06-23T00:00:00Z"},
		{"@every 15m", "2025-06-22T11:30:15Z", "2025-06-22T11:45:15Z"},
	}
	for _, tc := range cases {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		for _, loc := range []*time.Location{time.UTC, paris} {
			got := s.Next(utc(tc.after).In(loc))
			if !got.Equal(utc(tc.want)) || got.Location() != time.UTC {
				t.Errorf("%q.Next(%s in %s) = %s, want %s UTC", tc.spec, tc.after, loc, got, tc.want)
			}
		}
	}
}

func TestZeroScheduleIsHourly(t *testing.T) {
	var s Schedule
	if got := s.Next(utc("2025-06-22T11:30:00Z")); !got.Equal(utc("2025-06-22T12:00:00Z")) || s.String() != "hourly" {
		t.Fatalf("zero schedule: next %s, %q", got, s)
	}
}

func TestScheduleRealtime(t *testing.T) {
	cases := []struct {
		spec     string
		interval time.Duration
		events   int
		ok       bool
		canon    string
	}{
		{"realtime", 10 * time.Second, 0, true, "realtime:10"},
		{"Realtime:30", 30 * time.Second, 0, true, "realtime:30"},
		{"realtime:5:1000", 5 * time.Second, 1000, true, "realtime:5:1000"},
		{"hourly", 0, 0, false, "hourly"},
		{"*/5 * * * *", 0, 0, false, "*/5 * * * *"},
	}
	for _, tc := range cases {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		interval, events, ok := s.Realtime()
		if interval != tc.interval || events != tc.events || ok != tc.ok || s.String() != tc.canon {
			t.Errorf("%q: Realtime() = %v, %d, %v; String %q", tc.spec, interval, events, ok, s)
		}
	}
}

func TestParseScheduleRefusesNonsense(t *testing.T) {
	cases := map[string]string{
		"weekly":                    "want hourly",
		"realtime:0":                "SECONDS",
		"realtime:-5":               "SECONDS",
		"realtime:+5":               "SECONDS",
		"realtime:5s":               "SECONDS",
		"realtime:86401":            "SECONDS",
		"realtime:10:0":             "EVENTS",
		"realtime:10:x":             "EVENTS",
		"realtime:1:2:3":            "realtime[:SECONDS[:EVENTS]]",
		"0 * * * * *":               "5-field",
		"* * *":                     "5-field",
		"61 * * * *":                "schedule",
		"0 0 31 4 *":                "never fires",
		"0 0 30 2 *":                "never fires",
		"TZ=Europe/Paris 0 0 * * *": "UTC",
		"CRON_TZ=UTC":               "UTC",
		"TZ=":                       "UTC",
		"@yearly-ish":               "schedule",
		"@every":                    "schedule",
	}
	for spec, want := range cases {
		if _, err := ParseSchedule(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSchedule(%q) = %v, want an error about %q", spec, err, want)
		}
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"hourly", "daily", "realtime:5:10", "*/5 * * * *", "@every 1h", "TZ=", "0 0 30 2 *", "@every -1s", "1-70 * * * *", "*/0 * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSchedule(spec)
		if err != nil {
			return
		}
		again, err := ParseSchedule(s.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", s, spec, err)
		}
		from := utc("2025-06-22T11:30:15Z")
		next := s.Next(from)
		if !next.After(from) && !next.IsZero() {
			t.Fatalf("%q: Next(%s) = %s is not after", spec, from, next)
		}
		if !again.Next(from).Equal(next) {
			t.Fatalf("%q and its canonical form %q disagree", spec, s)
		}
	})
}
