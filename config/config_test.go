package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Addr != ":8000" || c.WALDir != "./data/wal" || c.WALSync != "always" || c.WALSegmentBytes != 8<<20 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.NodeID == "" {
		t.Fatal("NODE_ID default is empty")
	}
}

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	c, err := Load([]string{"--wal-sync=never"}, env(map[string]string{"WAL_SYNC": "interval", "WAL_SYNC_INTERVAL": "5ms", "MAX_BODY_BYTES": "2048"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.WALSync != "never" || c.WALSyncInterval != 5*time.Millisecond || c.MaxBodyBytes != 2048 {
		t.Fatalf("got %+v", c)
	}
}

func TestInvalidValues(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad sync", map[string]string{"WAL_SYNC": "sometimes"}, "WAL_SYNC"},
		{"bad bytes", map[string]string{"WAL_MAX_BYTES": "lots"}, "WAL_MAX_BYTES"},
		{"bad cidr", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/99"}, "TRUSTED_PROXIES"},
		{"star in production", map[string]string{"ENVIRONMENT": "production"}, "CORS_ALLOWED_ORIGINS"},
		{"max below segment", map[string]string{"WAL_MAX_BYTES": "1MiB"}, "WAL_MAX_BYTES"},
		{"bad environment", map[string]string{"ENVIRONMENT": "staging"}, "ENVIRONMENT"},
		{"elastic floor zero", map[string]string{"ELASTIC_FLOOR_RATE": "0"}, "ELASTIC_FLOOR_RATE"},
		{"elastic floor not a number", map[string]string{"ELASTIC_FLOOR_RATE": "lots"}, "ELASTIC_FLOOR_RATE"},
		{"elastic target negative", map[string]string{"ELASTIC_LATENCY_TARGET": "-1ms"}, "ELASTIC_LATENCY_TARGET"},
		{"elastic target not a duration", map[string]string{"ELASTIC_LATENCY_TARGET": "fast"}, "ELASTIC_LATENCY_TARGET"},
		{"elastic interval zero", map[string]string{"ELASTIC_INTERVAL": "0s"}, "ELASTIC_INTERVAL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(nil, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "16MiB": 16 << 20, "2GiB": 2 << 30, "1GB": 1e9, "512 KiB": 512 << 10} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestTrustedProxiesAcceptBareAddresses(t *testing.T) {
	p, err := ParsePrefixes("10.1.2.3, 2001:db8::/32")
	if err != nil || len(p) != 2 || p[0].Bits() != 32 || p[1].Bits() != 32 {
		t.Fatalf("got %v, %v", p, err)
	}
}

func TestVarsAreUniqueAndKnown(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Vars() {
		if seen[v.Env] {
			t.Fatalf("%s listed twice", v.Env)
		}
		seen[v.Env] = true
		if !Known(v.Env) || v.Help == "" {
			t.Fatalf("%s: not known or no help", v.Env)
		}
	}
	if Known("NOT_A_SETTING") {
		t.Fatal("unknown variable reported as known")
	}
}

func TestElasticLimiterDefaultsAndOff(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ElasticLatencyTarget != time.Millisecond || c.ElasticFloorRate != 1000 || c.ElasticInterval != 100*time.Millisecond {
		t.Fatalf("elastic defaults: target %v, floor %v, interval %v", c.ElasticLatencyTarget, c.ElasticFloorRate, c.ElasticInterval)
	}
	for _, off := range []string{"off", "OFF", "0", "0s"} {
		// Off, the other two settings are not checked.
		c, err := Load([]string{"--elastic-latency-target=" + off}, env(map[string]string{"ELASTIC_FLOOR_RATE": "0"}))
		if err != nil || c.ElasticLatencyTarget != 0 {
			t.Fatalf("ELASTIC_LATENCY_TARGET=%s: %v, %v; want off", off, c.ElasticLatencyTarget, err)
		}
	}
}
