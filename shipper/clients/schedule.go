package clients

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Real-time schedule bounds and default.
const (
	DefaultRealtimeInterval = 10 * time.Second
	MaxRealtimeInterval     = 24 * time.Hour
	MaxRealtimeEvents       = 1_000_000_000
)

type scheduleKind uint8

const (
	scheduleHourly scheduleKind = iota // the zero Schedule: the seed's default
	scheduleDaily
	scheduleRealtime
	scheduleCron
)

// Schedule says when a client's exports run. All schedules are in UTC.
//
//	hourly                      every hour at minute 0 (the default; the zero Schedule)
//	daily                       every day at midnight UTC
//	realtime                    every 10 seconds
//	realtime:SECONDS[:EVENTS]   every SECONDS seconds, or as soon as EVENTS are pending
//	a cron expression           standard 5 fields (minute hour day-of-month month day-of-week)
//	                            or a descriptor (@hourly, @daily, @weekly, @every 15m), in UTC
//
// The threshold trigger (export when N events are pending) is separate:
// Client.Threshold.
type Schedule struct {
	kind     scheduleKind
	spec     string
	cron     cron.Schedule
	interval time.Duration
	events   int
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a schedule (see Schedule). Empty means hourly.
func ParseSchedule(s string) (sched Schedule, err error) {
	spec := strings.TrimSpace(s)
	switch lower := strings.ToLower(spec); {
	case lower == "" || lower == "hourly":
		return Schedule{kind: scheduleHourly, spec: "hourly"}, nil
	case lower == "daily":
		return Schedule{kind: scheduleDaily, spec: "daily"}, nil
	case lower == "realtime" || strings.HasPrefix(lower, "realtime:"):
		return parseRealtime(lower)
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return Schedule{}, fmt.Errorf("schedule %q: time zones are not accepted; schedules are in UTC", s)
	}
	// robfig/cron panics on some malformed specs; a configuration mistake must
	// be an error, never a crash.
	defer func() {
		if r := recover(); r != nil {
			sched, err = Schedule{}, fmt.Errorf("schedule %q: not a valid cron expression", s)
		}
	}()
	if !strings.HasPrefix(spec, "@") && len(strings.Fields(spec)) != 5 {
		return Schedule{}, fmt.Errorf("schedule %q: want hourly, daily, realtime[:SECONDS[:EVENTS]] or a 5-field cron expression (minute hour day-of-month month day-of-week)", s)
	}
	c, err := cronParser.Parse("CRON_TZ=UTC " + spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", s, err)
	}
	// A schedule that never fires (30 February) would silently export nothing.
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if c.Next(ref).IsZero() {
		return Schedule{}, fmt.Errorf("schedule %q never fires", s)
	}
	return Schedule{kind: scheduleCron, spec: strings.Join(strings.Fields(spec), " "), cron: c}, nil
}

func parseRealtime(lower string) (Schedule, error) {
	parts := strings.Split(lower, ":")
	sched := Schedule{kind: scheduleRealtime, interval: DefaultRealtimeInterval}
	if len(parts) > 3 {
		return Schedule{}, fmt.Errorf("schedule %q: want realtime[:SECONDS[:EVENTS]]", lower)
	}
	if len(parts) >= 2 {
		secs, err := strictUint(parts[1])
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > MaxRealtimeInterval {
			return Schedule{}, fmt.Errorf("schedule %q: SECONDS must be a whole number from 1 to %d", lower, int(MaxRealtimeInterval/time.Second))
		}
		sched.interval = time.Duration(secs) * time.Second
	}
	if len(parts) == 3 {
		events, err := strictUint(parts[2])
		if err != nil || events < 1 || events > MaxRealtimeEvents {
			return Schedule{}, fmt.Errorf("schedule %q: EVENTS must be a whole number from 1 to %d", lower, MaxRealtimeEvents)
		}
		sched.events = int(events)
	}
	sched.spec = "realtime:" + strconv.Itoa(int(sched.interval/time.Second))
	if sched.events > 0 {
		sched.spec += ":" + strconv.Itoa(sched.events)
	}
	return sched, nil
}

// strictUint accepts only decimal digits (no sign, no spaces).
func strictUint(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a number")
	}
	return strconv.ParseUint(s, 10, 64)
}

// Next returns the first run strictly after after, in UTC.
func (s Schedule) Next(after time.Time) time.Time {
	t := after.UTC()
	switch s.kind {
	case scheduleDaily:
		return t.Truncate(24 * time.Hour).Add(24 * time.Hour)
	case scheduleRealtime:
		return t.Add(s.interval)
	case scheduleCron:
		return s.cron.Next(t).UTC()
	default:
		return t.Truncate(time.Hour).Add(time.Hour)
	}
}

// Realtime reports a real-time schedule: export every interval, or as soon
// as events are pending when events > 0.
func (s Schedule) Realtime() (interval time.Duration, events int, ok bool) {
	if s.kind != scheduleRealtime {
		return 0, 0, false
	}
	return s.interval, s.events, true
}

// String is the schedule in canonical form; ParseSchedule reads it back.
func (s Schedule) String() string {
	if s.spec == "" {
		return "hourly"
	}
	return s.spec
}

// MarshalText shows the schedule in configuration output.
func (s Schedule) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
