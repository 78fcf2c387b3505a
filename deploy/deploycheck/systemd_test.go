package deploycheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func collectorUnit(t *testing.T) systemdUnit {
	t.Helper()
	u, err := parseUnit(strings.NewReader(readRepoFile(t, "deploy/systemd/collector.service")))
	if err != nil {
		t.Fatalf("collector.service: %v", err)
	}
	return u
}

func TestSystemdUnitIsHardenedAndStopsGracefully(t *testing.T) {
	u := collectorUnit(t)
	get := func(key string) string { v, _ := u.Get("Service", key); return v }

	if get("DynamicUser") != "yes" {
		user := get("User")
		if user == "" || user == "root" || user == "0" {
			t.Errorf("User=%q: run as a dedicated user (or DynamicUser=yes)", user)
		}
		sysusers := readRepoFile(t, "deploy/systemd/collector.sysusers")
		if !regexp.MustCompile(`(?m)^u\s+` + regexp.QuoteMeta(user) + `\s`).MatchString(sysusers) {
			t.Errorf("collector.sysusers does not create the user %q the unit runs as", user)
		}
	}
	for key, want := range map[string]string{
		"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
		"RestrictSUIDSGID": "yes", "LockPersonality": "yes", "CapabilityBoundingSet": "",
	} {
		if v, ok := u.Get("Service", key); !ok || v != want {
			t.Errorf("%s=%q, want %q", key, v, want)
		}
	}

	exec := strings.Fields(get("ExecStart"))
	if len(exec) < 2 || !filepath.IsAbs(exec[0]) || filepath.Base(exec[0]) != "collector" || exec[1] != "serve" {
		t.Errorf("ExecStart=%s; want /path/to/collector serve", get("ExecStart"))
	}
	if get("EnvironmentFile") == "" {
		t.Error("no EnvironmentFile=: settings belong in /etc/collector/collector.env, not in the unit")
	}

	// The WAL lives in the StateDirectory, the one place ProtectSystem=strict
	// leaves writable.
	state := get("StateDirectory")
	if state == "" {
		t.Fatal("no StateDirectory=")
	}
	stateDir := "/var/lib/" + strings.Fields(state)[0]
	env, err := u.Environment()
	if err != nil {
		t.Fatal(err)
	}
	fileEnv := systemdEnvFile(t)
	for _, k := range []string{"WAL_DIR", "EXPORT_DIR"} {
		if _, set := fileEnv[k]; set {
			t.Errorf("collector.env sets %s, which the unit ties to its StateDirectory (the file would win)", k)
		}
	}
	merged := map[string]string{}
	for k, v := range env {
		merged[k] = v
	}
	for k, v := range fileEnv {
		merged[k] = v
	}
	cfg, err := loadCollectorConfig(merged)
	if err != nil {
		t.Fatalf("the unit's Environment= with collector.env: %v", err)
	}
	for setting, dir := range map[string]string{"WAL_DIR": cfg.WALDir, "EXPORT_DIR": cfg.ExportDir} {
		if !underPath(dir, stateDir) {
			t.Errorf("%s=%s is outside StateDirectory %s: read-only under ProtectSystem=strict", setting, dir, stateDir)
		}
	}

	stop, err := systemdDuration(get("TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v (the default 90s works, but say it)", err)
	}
	if stop <= cfg.ShutdownTimeout {
		t.Errorf("TimeoutStopSec=%v must exceed SHUTDOWN_TIMEOUT=%v, or systemd SIGKILLs a clean shutdown", stop, cfg.ShutdownTimeout)
	}
	if sig := get("KillSignal"); sig != "" && sig != "SIGTERM" {
		t.Errorf("KillSignal=%s; the collector shuts down gracefully on SIGTERM", sig)
	}
	nofile, err := strconv.Atoi(strings.Split(get("LimitNOFILE"), ":")[0])
	if err != nil {
		t.Fatalf("LimitNOFILE=%q: %v", get("LimitNOFILE"), err)
	}
	if nofile < cfg.MaxConnections+1024 {
		t.Errorf("LimitNOFILE=%d is below MAX_CONNECTIONS=%d plus room for the WAL, the database pool and uploads", nofile, cfg.MaxConnections)
	}
	if r := get("Restart"); r != "on-failure" && r != "always" {
		t.Errorf("Restart=%q", r)
	}
	if _, ok := u.Get("Install", "WantedBy"); !ok {
		t.Error("no [Install] WantedBy=: `systemctl enable` would do nothing")
	}
}

func systemdEnvFile(t *testing.T) map[string]string {
	t.Helper()
	entries, err := parseDotenv(strings.NewReader(readRepoFile(t, "deploy/systemd/collector.env")))
	if err != nil {
		t.Fatalf("collector.env: %v", err)
	}
	m := envMap(entries)
	if unknown := unknownCollectorVars(m); len(unknown) > 0 {
		t.Fatalf("collector.env sets variables the collector does not read: %v", unknown)
	}
	return m
}

func TestSystemdEnvFileIsAValidProductionConfiguration(t *testing.T) {
	cfg, err := loadCollectorConfig(systemdEnvFile(t))
	if err != nil {
		t.Fatalf("collector.env: %v", err)
	}
	if cfg.Environment != "production" {
		t.Errorf("collector.env: ENVIRONMENT=%s", cfg.Environment)
	}
	if cfg.WALSync != "always" {
		t.Errorf("collector.env: WAL_SYNC=%s", cfg.WALSync)
	}
}

// TestSystemdAnalyzeAcceptsTheUnit runs systemd's own checks where systemd
// is installed: `systemd-analyze verify` (unknown keys, bad values) and the
// offline security score. Not required in CI: the structural test above
// covers what matters when systemd is absent.
func TestSystemdAnalyzeAcceptsTheUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists; this test binary does.
	unit := strings.ReplaceAll(readRepoFile(t, "deploy/systemd/collector.service"), "/usr/local/bin/collector", self)
	path := filepath.Join(dir, "collector.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var complaints []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "collector.service") {
			complaints = append(complaints, line)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(complaints, "\n"))
	}

	out, err = exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	if err != nil && strings.Contains(string(out), "unrecognized option") {
		t.Skipf("this systemd-analyze has no offline security check: %s", out)
	}
	m := regexp.MustCompile(`Overall exposure level for collector\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security gave no score: %v\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f (0 = fully locked down, 10 = unprotected)", score)
	if score > 2.5 {
		t.Errorf("systemd exposure score %.1f; the unit should stay at 2.5 or below", score)
	}
}
