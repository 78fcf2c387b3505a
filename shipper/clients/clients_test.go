package clients

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/secrets"
	"github.com/evothesis/collector/shipper/export"
)

// loadConfig builds a config.Config the way cmd/collector does, from
// environment variables over the defaults.
func loadConfig(t testing.TB, env map[string]string) config.Config {
	t.Helper()
	full := map[string]string{"EXPORT_DIR": t.TempDir(), "NODE_ID": "node-1"}
	if env["ENVIRONMENT"] == "production" {
		full["CORS_ALLOWED_ORIGINS"] = "https://example.com"
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := config.Load(nil, func(k string) string { return full[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func keyring(t testing.TB) *secrets.Keyring {
	t.Helper()
	k, _ := secrets.ParseKey(secrets.GenerateKey())
	kr, err := secrets.NewKeyring(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func encrypt(t testing.TB, kr *secrets.Keyring, s string) string {
	t.Helper()
	v, err := kr.Encrypt(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantProblem checks that err is a ValidationError naming field with a
// message containing msg.
func wantProblem(t *testing.T, err error, field, msg string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError (want %s: %s)", err, field, msg)
	}
	for _, p := range ve.Problems {
		if p.Field == field && strings.Contains(p.Message, msg) {
			return
		}
	}
	t.Fatalf("no problem %s: %q in\n%v", field, msg, err)
}

func TestSingleClientModeWithoutBucketsExportsToLocalDirectories(t *testing.T) {
	cfg := loadConfig(t, nil)
	cc, err := Load(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Mode != ModeSingle || len(cc.Clients) != 1 || cc.Unclaimed() != nil {
		t.Fatalf("mode %s, %d clients, unclaimed %v", cc.Mode, len(cc.Clients), cc.Unclaimed())
	}
	cl := cc.Clients[0]
	wantClient, _ := filepath.Abs(filepath.Join(cfg.ExportDir, "client"))
	wantBackup, _ := filepath.Abs(filepath.Join(cfg.ExportDir, "backup"))
	if cl.Name != "default" || !cl.AllSites || !cl.HasDestination ||
		cl.Destination.Kind != KindFile || cl.Destination.Dir != wantClient || cl.Destination.Prefix != "analytics" ||
		cl.Backup.Kind != KindFile || cl.Backup.Dir != wantBackup || cl.Backup.Prefix != "analytics/client=default" {
		t.Fatalf("client %+v", cl)
	}
	if !slices.Equal(cl.Formats, []export.Format{export.FormatJSON}) || cl.Compression != export.CompressionGzip ||
		cl.Schedule.String() != "hourly" || cl.Threshold != 0 || cl.Destination.Credentials.Static() {
		t.Fatalf("seed defaults not applied: %+v", cl)
	}
	if !slices.Equal(cl.Destination.Formats, cl.Formats) || !slices.Equal(cl.Backup.Formats, cl.Formats) {
		t.Fatal("destinations do not carry the client's formats")
	}
	for _, site := range []string{"example-com", "", "anything"} {
		if got, ok := cc.Resolve(site); !ok || got != cl || !cl.Claims(site) {
			t.Fatalf("Resolve(%q) = %v, %v", site, got, ok)
		}
	}
	if got := cl.Destination.URL(); got != "file://"+filepath.ToSlash(wantClient)+"/analytics" {
		t.Fatalf("URL %q", got)
	}
}

func TestSingleClientModeFromTheSeedVariables(t *testing.T) {
	kr := keyring(t)
	encAccess, encSecret := encrypt(t, kr, "AKIAEXAMPLE"), encrypt(t, kr, "wJalrXUtnFEMI/K7MDENG")
	base := map[string]string{
		"CLIENT_NAME": "acme", "CLIENT_S3_BUCKET": "acme-analytics", "S3_BACKUP_BUCKET": "evothesis-backup",
		"EXPORT_SCHEDULE": "daily", "EXPORT_FORMAT": "json, parquet", "EXPORT_COMPRESSION": "zstd",
		"S3_REGION": "eu-west-1", "S3_ENDPOINT": "https://s3.example.net", "S3_FORCE_PATH_STYLE": "true",
		"S3_PREFIX": "/raw/events/", "EXPORT_THRESHOLD_EVENTS": "5000", "EXPORT_WEBHOOK_URL": "https://hooks.example/x?token=t0k",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	t.Run("everything set", func(t *testing.T) {
		cc, err := FromConfig(loadConfig(t, with("CLIENT_S3_ACCESS_KEY", encAccess, "CLIENT_S3_SECRET_KEY", encSecret, "ENVIRONMENT", "production")), kr)
		if err != nil {
			t.Fatal(err)
		}
		cl := cc.Clients[0]
		d := cl.Destination
		if d.Kind != KindS3 || d.Bucket != "acme-analytics" || d.Prefix != "raw/events" || d.Region != "eu-west-1" ||
			d.Endpoint != "https://s3.example.net" || !d.ForcePathStyle {
			t.Fatalf("destination %+v", d)
		}
		if d.Credentials.AccessKey.Reveal() != "AKIAEXAMPLE" || d.Credentials.SecretKey.Reveal() != "wJalrXUtnFEMI/K7MDENG" ||
			!d.Credentials.Encrypted || d.Credentials.KeyID != kr.CurrentKeyID() {
			t.Fatalf("credentials not decrypted: %+v", d.Credentials)
		}
		b := cl.Backup
		if b.Kind != KindS3 || b.Bucket != "evothesis-backup" || b.Prefix != "raw/events/client=acme" || b.Credentials.Static() || b.Region != "eu-west-1" {
			t.Fatalf("backup %+v", b)
		}
		if !slices.Equal(cl.Formats, []export.Format{export.FormatJSON, export.FormatParquet}) || cl.Compression != export.CompressionZstd ||
			cl.Schedule.String() != "daily" || cl.Threshold != 5000 || cl.WebhookURL.Reveal() != base["EXPORT_WEBHOOK_URL"] {
			t.Fatalf("client %+v", cl)
		}
	})
	t.Run("plaintext keys in development", func(t *testing.T) {
		cc, err := FromConfig(loadConfig(t, with("CLIENT_S3_ACCESS_KEY", "AKIA", "CLIENT_S3_SECRET_KEY", "plain")), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := cc.Clients[0].Destination.Credentials; c.Encrypted || c.SecretKey.Reveal() != "plain" {
			t.Fatalf("%+v", c)
		}
	})
	cases := []struct {
		name, field, msg string
		env              map[string]string
		kr               *secrets.Keyring
	}{
		{"plaintext secret in production", "CLIENT_S3_SECRET_KEY", "plaintext secret refused in production",
			with("ENVIRONMENT", "production", "CLIENT_S3_ACCESS_KEY", encAccess, "CLIENT_S3_SECRET_KEY", "plain-secret"), kr},
		{"half the credentials", "CLIENT_S3_ACCESS_KEY", "give both", with("CLIENT_S3_ACCESS_KEY", "AKIA"), kr},
		{"encrypted without a key", "CLIENT_S3_SECRET_KEY", "no secret key configured",
			with("CLIENT_S3_ACCESS_KEY", "AKIA", "CLIENT_S3_SECRET_KEY", encSecret), nil},
		{"encrypted with another key", "CLIENT_S3_SECRET_KEY", "neither the current nor the previous key",
			with("CLIENT_S3_ACCESS_KEY", "AKIA", "CLIENT_S3_SECRET_KEY", encSecret), keyring(t)},
		{"keys without a bucket", "CLIENT_S3_ACCESS_KEY", "CLIENT_S3_BUCKET is not",
			with("CLIENT_S3_BUCKET", "", "CLIENT_S3_ACCESS_KEY", "a", "CLIENT_S3_SECRET_KEY", "b"), kr},
		{"unknown format", "EXPORT_FORMAT", "unknown export format", with("EXPORT_FORMAT", "xml"), kr},
		{"format twice", "EXPORT_FORMAT", "listed twice", with("EXPORT_FORMAT", "json,JSON"), kr},
		{"no format", "EXPORT_FORMAT", "at least one", with("EXPORT_FORMAT", " , "), kr},
		{"unknown compression", "EXPORT_COMPRESSION", "unknown export compression", with("EXPORT_COMPRESSION", "lz4"), kr},
		{"snappy", "EXPORT_COMPRESSION", "parquet pages only", with("EXPORT_COMPRESSION", "snappy"), kr},
		{"bad schedule", "EXPORT_SCHEDULE", "want hourly", with("EXPORT_SCHEDULE", "weekly"), kr},
		{"negative threshold", "EXPORT_THRESHOLD_EVENTS", "positive", with("EXPORT_THRESHOLD_EVENTS", "-1"), kr},
		{"bad bucket", "CLIENT_S3_BUCKET", "bucket", with("CLIENT_S3_BUCKET", "Not_A_Bucket"), kr},
		{"bucket with a path", "S3_BACKUP_BUCKET", "prefix", with("S3_BACKUP_BUCKET", "s3://backup/raw"), kr},
		{"http endpoint in production", "S3_ENDPOINT", "production requires https",
			with("ENVIRONMENT", "production", "S3_ENDPOINT", "http://minio:9000"), kr},
		{"endpoint with credentials", "S3_ENDPOINT", "credentials do not belong", with("S3_ENDPOINT", "https://u:p@minio"), kr},
		{"not an endpoint", "S3_ENDPOINT", "http(s)", with("S3_ENDPOINT", "minio:9000"), kr},
		{"http webhook in production", "EXPORT_WEBHOOK_URL", "production requires https",
			with("ENVIRONMENT", "production", "EXPORT_WEBHOOK_URL", "http://hooks/x"), kr},
		{"bad client name", "CLIENT_NAME", "client name", with("CLIENT_NAME", "Acme Corp"), kr},
		{"client name with a colon", "CLIENT_NAME", "client name", with("CLIENT_NAME", "a:b"), kr},
		{"dot-dot prefix", "S3_PREFIX", "segments", with("S3_PREFIX", "a/../b"), kr},
		{"blank region", "S3_REGION", "region", with("S3_REGION", " "), kr},
		{"region with a slash", "S3_REGION", "region", with("S3_REGION", "eu/west"), kr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromConfig(loadConfig(t, tc.env), tc.kr)
			wantProblem(t, err, tc.field, tc.msg)
			for _, secret := range []string{"wJalrXUtnFEMI", "plain-secret", encSecret} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

const validFile = `
version: 1
defaults:
  formats: [json]
  compression: gzip
  schedule: hourly
  prefix: analytics
backup:
  bucket: evothesis-backup
  prefix: raw
  formats: ndjson
  compression: zstd
clients:
  - name: acme
    site_ids: [acme-com, shop-acme-com]
    bucket: acme-analytics
    region: eu-west-1
    credentials:
      access_key: %s
      secret_key: %s
    formats: [json, parquet]
    threshold: 100000
    webhook_url: https://hooks.acme.example/c?token=hooktoken
  - name: globex
    site_ids: globex-io
    bucket: s3://globex-raw
    prefix: ""
    endpoint: https://minio.globex.example:9000
    force_path_style: true
    schedule: "realtime:30:50000"
  - name: initech
    site_ids: [initech-com]
    bucket: file:///var/lib/collector/initech
    formats: csv
    schedule: "0 2 * * *"
`

func parseValid(t *testing.T, env map[string]string) (*Config, *secrets.Keyring, string, string) {
	t.Helper()
	kr := keyring(t)
	access, secret := encrypt(t, kr, "AKIAACME"), encrypt(t, kr, "acme-secret-key-value")
	cc, err := Parse([]byte(fmt.Sprintf(validFile, access, secret)), "clients.yaml", loadConfig(t, env), kr)
	if err != nil {
		t.Fatal(err)
	}
	return cc, kr, access, secret
}

func TestClientsFileResolvesEachSiteToItsClient(t *testing.T) {
	cc, _, _, _ := parseValid(t, map[string]string{"ENVIRONMENT": "production"})
	if cc.Mode != ModeFile || len(cc.Clients) != 3 {
		t.Fatalf("mode %s, %d clients", cc.Mode, len(cc.Clients))
	}
	for site, want := range map[string]string{"acme-com": "acme", "shop-acme-com": "acme", "globex-io": "globex", "initech-com": "initech"} {
		cl, ok := cc.Resolve(site)
		if !ok || cl.Name != want || !cl.Claims(site) {
			t.Errorf("Resolve(%q) = %v, %v; want %s", site, cl, ok, want)
		}
		if cc.Unclaimed().Claims(site) {
			t.Errorf("unclaimed pseudo-client claims %q", site)
		}
	}
	for _, site := range []string{"unknown-site", "", "ACME-COM", " acme-com"} {
		if cl, ok := cc.Resolve(site); ok || cl != nil {
			t.Errorf("Resolve(%q) = %v, %v; want unclaimed", site, cl, ok)
		}
		if !cc.Unclaimed().Claims(site) {
			t.Errorf("unclaimed pseudo-client does not claim %q", site)
		}
		for _, cl := range cc.Clients {
			if cl.Claims(site) {
				t.Errorf("client %s claims %q", cl.Name, site)
			}
		}
	}
	u := cc.Unclaimed()
	if u.Name != UnclaimedName || u.HasDestination || u.Backup.Prefix != "raw/client=_unclaimed" || u.Backup.Bucket != "evothesis-backup" {
		t.Fatalf("unclaimed %+v", u)
	}
	if all := cc.All(); len(all) != 4 || all[3] != u {
		t.Fatalf("All() = %v", all)
	}
}

func TestClientsFileAppliesDefaultsAndOverrides(t *testing.T) {
	cc, kr, _, _ := parseValid(t, map[string]string{"S3_ENDPOINT": "https://our-store.example", "S3_REGION": "us-east-2"})
	acme, globex, initech := cc.Clients[0], cc.Clients[1], cc.Clients[2]

	if !slices.Equal(acme.Formats, []export.Format{export.FormatJSON, export.FormatParquet}) || acme.Compression != export.CompressionGzip ||
		acme.Schedule.String() != "hourly" || acme.Threshold != 100000 {
		t.Fatalf("acme %+v", acme)
	}
	d := acme.Destination
	if d.Bucket != "acme-analytics" || d.Prefix != "analytics" || d.Region != "eu-west-1" || d.Endpoint != "" ||
		d.Credentials.SecretKey.Reveal() != "acme-secret-key-value" || d.Credentials.KeyID != kr.CurrentKeyID() {
		t.Fatalf("acme destination %+v: S3_ENDPOINT must not leak into a client's store", d)
	}
	// The backup has its own formats, and each client a prefix of its own.
	if b := acme.Backup; b.Bucket != "evothesis-backup" || b.Prefix != "raw/client=acme" || b.Endpoint != "https://our-store.example" ||
		b.Region != "us-east-2" || !slices.Equal(b.Formats, []export.Format{export.FormatNDJSON}) || b.Compression != export.CompressionZstd {
		t.Fatalf("acme backup %+v", b)
	}
	if g := globex.Destination; g.Bucket != "globex-raw" || g.Prefix != "" || g.Endpoint != "https://minio.globex.example:9000" ||
		!g.ForcePathStyle || g.Region != "us-east-2" || g.Credentials.Static() {
		t.Fatalf("globex destination %+v", g)
	}
	if iv, ev, ok := globex.Schedule.Realtime(); !ok || iv.Seconds() != 30 || ev != 50000 {
		t.Fatalf("globex schedule %v", globex.Schedule)
	}
	if !slices.Equal(globex.SiteIDs, []string{"globex-io"}) {
		t.Fatalf("scalar site_ids: %v", globex.SiteIDs)
	}
	if i := initech.Destination; i.Kind != KindFile || i.Dir != "/var/lib/collector/initech" || i.Region != "" ||
		!slices.Equal(initech.Formats, []export.Format{export.FormatCSV}) || initech.Schedule.String() != "0 2 * * *" {
		t.Fatalf("initech %+v", initech)
	}
}

func TestClientsFileRefusesMistakes(t *testing.T) {
	kr := keyring(t)
	enc := encrypt(t, kr, "the-secret")
	other := encrypt(t, keyring(t), "the-secret")
	client := func(extra string) string {
		return "clients:\n  - name: acme\n    site_ids: [acme-com]\n    bucket: acme-bucket\n" + extra
	}
	cases := []struct {
		name, yaml, field, msg string
		production             bool
	}{
		{"unknown key", client("    bukcet: x\n"), "", "field bukcet not found", false},
		{"unknown top-level key", "clientz: []\n", "", "field clientz not found", false},
		{"site claimed twice", client("  - name: beta\n    site_ids: [beta-com, acme-com]\n    bucket: beta-bucket\n"),
			"clients[beta].site_ids[1]", `already claimed by client "acme"`, false},
		{"site listed twice", "clients:\n  - name: acme\n    site_ids: [a, a]\n    bucket: acme-bucket\n", "clients[acme].site_ids[1]", "listed twice", false},
		{"client listed twice", client("  - name: acme\n    site_ids: [other]\n    bucket: other-bucket\n"), "clients[acme].name", "listed twice", false},
		{"no sites", "clients:\n  - name: acme\n    bucket: acme-bucket\n", "clients[acme].site_ids", "at least one site", false},
		{"empty site", "clients:\n  - name: acme\n    site_ids: ['']\n    bucket: acme-bucket\n", "clients[acme].site_ids[0]", "empty site id", false},
		{"padded site", "clients:\n  - name: acme\n    site_ids: [' a']\n    bucket: acme-bucket\n", "clients[acme].site_ids[0]", "surrounding spaces", false},
		{"no bucket", "clients:\n  - name: acme\n    site_ids: [a]\n", "clients[acme].bucket", "needs a bucket", false},
		{"nameless client", "clients:\n  - site_ids: [a]\n    bucket: acme-bucket\n", "clients[0].name", "client name", false},
		{"relative local dir", "clients:\n  - name: acme\n    site_ids: [a]\n    bucket: file://./exports\n", "clients[acme].bucket", "file:///absolute/path", false},
		{"credentials on a local dir", "clients:\n  - name: acme\n    site_ids: [a]\n    bucket: file:///tmp/x\n    credentials: {access_key: a, secret_key: b}\n",
			"clients[acme].credentials", "no credentials", false},
		{"plaintext secret in production", client("    credentials: {access_key: " + enc + ", secret_key: plain-secret}\n"),
			"clients[acme].credentials.secret_key", "plaintext secret refused in production", true},
		{"plaintext backup secret in production", client("backup:\n  bucket: b-bucket\n  credentials: {access_key: " + enc + ", secret_key: plain-secret}\n"),
			"backup.credentials.secret_key", "plaintext secret refused in production", true},
		{"wrong key", client("    credentials: {access_key: " + other + ", secret_key: " + enc + "}\n"),
			"clients[acme].credentials.access_key", "cannot decrypt", false},
		{"half the credentials", client("    credentials: {secret_key: " + enc + "}\n"), "clients[acme].credentials", "give both", false},
		{"bad cron", client("    schedule: \"61 * * * *\"\n"), "clients[acme].schedule", "schedule", false},
		{"bad default schedule", "defaults: {schedule: sometimes}\n" + client(""), "defaults.schedule", "want hourly", false},
		{"bad format", client("    formats: [json, xml]\n"), "clients[acme].formats", "unknown export format", false},
		{"empty formats", client("    formats: []\n"), "clients[acme].formats", "at least one", false},
		{"negative threshold", client("    threshold: -5\n"), "clients[acme].threshold", "positive", false},
		{"http webhook in production", client("    webhook_url: http://hooks.example/x\n"), "clients[acme].webhook_url", "production requires https", true},
		{"http endpoint in production", client("    endpoint: http://minio:9000\n"), "clients[acme].endpoint", "production requires https", true},
		{"two clients in one place", client("  - name: beta\n    site_ids: [beta-com]\n    bucket: acme-bucket\n"), "clients[beta].bucket", `client "acme" already exports`, false},
		{"no clients", "clients: []\n", "clients", "no clients", false},
		{"future version", "version: 2\n" + client(""), "version", "version 1", false},
		{"two documents", client("") + "---\nclients: []\n", "", "more than one YAML document", false},
		{"empty file", "", "", "is empty", false},
		{"not yaml", "clients: [\n", "", "clients.yaml", false},
		{"site_ids of maps", "clients:\n  - name: acme\n    site_ids: [{a: b}]\n    bucket: acme-bucket\n", "", "list of strings", false},
		{"duplicate key", "clients:\n  - name: acme\n    name: beta\n    site_ids: [a]\n    bucket: acme-bucket\n", "", "already defined", false},
		{"bad backup bucket", "backup: {bucket: UPPER}\n" + client(""), "backup.bucket", "bucket", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			if tc.production {
				env["ENVIRONMENT"] = "production"
			}
			_, err := Parse([]byte(tc.yaml), "clients.yaml", loadConfig(t, env), kr)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.field == "" {
				if !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %q, want %q", err, tc.msg)
				}
			} else {
				wantProblem(t, err, tc.field, tc.msg)
			}
			if strings.Contains(err.Error(), "the-secret") || strings.Contains(err.Error(), "plain-secret") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestClientsFileReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse([]byte("clients:\n  - name: A\n    site_ids: [x]\n    bucket: ok-bucket\n    formats: [xml]\n    schedule: never\n"), "f.yaml", loadConfig(t, nil), nil)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 || !strings.HasPrefix(err.Error(), "f.yaml: 3 problems") {
		t.Fatalf("%v", err)
	}
}

func TestBackupDefaultsToTheEnvironmentThenToALocalDirectory(t *testing.T) {
	file := []byte("clients:\n  - name: acme\n    site_ids: [a]\n    bucket: acme-bucket\n")
	cfg := loadConfig(t, map[string]string{"S3_BACKUP_BUCKET": "env-backup", "S3_PREFIX": "p"})
	cc, err := Parse(file, "f", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := cc.Clients[0].Backup; b.Kind != KindS3 || b.Bucket != "env-backup" || b.Prefix != "p/client=acme" {
		t.Fatalf("backup from S3_BACKUP_BUCKET: %+v", b)
	}
	cfg = loadConfig(t, nil)
	cc, err = Parse(file, "f", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs(filepath.Join(cfg.ExportDir, "backup"))
	if b := cc.Clients[0].Backup; b.Kind != KindFile || b.Dir != want || b.Prefix != "analytics/client=acme" {
		t.Fatalf("local backup: %+v", b)
	}
}

func TestLoadReadsTheClientsFileWhenSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte("clients:\n  - name: acme\n    site_ids: [a]\n    bucket: acme-bucket\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cc, err := Load(loadConfig(t, map[string]string{"CLIENTS_FILE": path, "CLIENT_S3_BUCKET": "ignored-bucket"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Mode != ModeFile || cc.Source != path || cc.Clients[0].Name != "acme" {
		t.Fatalf("%+v", cc)
	}
	if _, err := Load(loadConfig(t, map[string]string{"CLIENTS_FILE": path + ".missing"}), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExampleClientsFileIsValidInProduction(t *testing.T) {
	data, err := os.ReadFile("../../deploy/clients.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kr := keyring(t)
	const placeholder = "enc:v1:00000000:REPLACE-WITH-OUTPUT-OF-collector-secret-encrypt"
	if !bytes.Contains(data, []byte(placeholder)) {
		t.Fatal("the example no longer has credential placeholders; update this test")
	}
	// The placeholders themselves must be refused, not taken for secrets.
	if _, err := Parse(data, "example", loadConfig(t, map[string]string{"ENVIRONMENT": "production"}), kr); err == nil {
		t.Fatal("placeholder credentials accepted")
	}
	data = bytes.ReplaceAll(data, []byte(placeholder), []byte(encrypt(t, kr, "value")))
	cc, err := Parse(data, "example", loadConfig(t, map[string]string{"ENVIRONMENT": "production"}), kr)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Clients) != 3 || cc.Unclaimed() == nil {
		t.Fatalf("%d clients", len(cc.Clients))
	}
}

func TestRedactedViewHoldsNoSecret(t *testing.T) {
	cc, kr, access, secret := parseValid(t, nil)
	single, err := FromConfig(loadConfig(t, map[string]string{
		"CLIENT_S3_BUCKET": "b-bucket", "CLIENT_S3_ACCESS_KEY": "AKIAPLAIN", "CLIENT_S3_SECRET_KEY": "plain-secret-value",
		"S3_ENDPOINT": "https://user:pw@store.example/path?sig=abc", "EXPORT_WEBHOOK_URL": "https://hooks.example/T000/B000/XXXXSECRET",
	}), kr)
	if err == nil {
		t.Fatal("endpoint with user info accepted")
	}
	single, err = FromConfig(loadConfig(t, map[string]string{
		"CLIENT_S3_BUCKET": "b-bucket", "CLIENT_S3_ACCESS_KEY": "AKIAPLAIN", "CLIENT_S3_SECRET_KEY": "plain-secret-value",
		"EXPORT_WEBHOOK_URL": "https://hooks.example/T000/B000/XXXXSECRET",
	}), kr)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"AKIAACME", "acme-secret-key-value", access, secret, "hooktoken", "AKIAPLAIN", "plain-secret-value", "XXXXSECRET"}
	for name, cfg := range map[string]*Config{"file": cc, "single": single} {
		out, err := json.MarshalIndent(cfg.Redacted(), "", " ")
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "clients", cfg, "first", cfg.Clients[0])
		slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "clients", cfg, "first", *cfg.Clients[0])
		dumps := map[string]string{
			"redacted json": string(out), "fmt": fmt.Sprintf("%+v %v %#v", cfg, *cfg.Clients[0], cfg.Clients[0].Destination), "slog": logs.String(),
		}
		for what, text := range dumps {
			for _, f := range forbidden {
				if strings.Contains(text, f) {
					t.Errorf("%s %s shows %q", name, what, f)
				}
			}
		}
		if !strings.Contains(string(out), `"credentials": "static`) {
			t.Errorf("%s: redacted view does not describe the credentials:\n%s", name, out)
		}
	}
	red := cc.Redacted().(RedactedConfig)
	if red.Clients[0].Webhook != "https://hooks.acme.example/[REDACTED]" || red.Clients[0].Destination.Credentials != "static, encrypted (key "+kr.CurrentKeyID()+")" ||
		red.Unclaimed == nil || red.Unclaimed.Destination != nil || red.Clients[1].Destination.Credentials != "default AWS credential chain" ||
		red.Clients[2].Destination.Credentials != "none (local directory)" || red.Clients[0].Schedule != "hourly" {
		t.Fatalf("redacted view %+v", red)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(validFile, "a", "b")))
	f.Add([]byte("clients:\n  - name: a\n    site_ids: x\n    bucket: file:///x\n"))
	f.Add([]byte("defaults: {formats: 'json,csv', schedule: '@every 5m'}\nclients: [{name: a, site_ids: [b], bucket: s3://cc-c}]\n"))
	cfg := loadConfig(f, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		cc, err := Parse(data, "fuzz", cfg, nil)
		if err != nil {
			return
		}
		// Whatever parses is coherent: every listed site resolves to its
		// client, and the view marshals.
		for _, cl := range cc.Clients {
			for _, s := range cl.SiteIDs {
				if got, ok := cc.Resolve(s); !ok || got != cl {
					t.Fatalf("site %q of %s resolves to %v", s, cl.Name, got)
				}
			}
			if !cl.HasDestination || len(cl.Formats) == 0 {
				t.Fatalf("client %s incomplete", cl.Name)
			}
		}
		if _, err := json.Marshal(cc.Redacted()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWebhookMayBeEncrypted(t *testing.T) {
	kr := keyring(t)
	hook := "https://hooks.slack.example/services/T0/B0/SECRETPART"
	file := "clients:\n  - name: acme\n    site_ids: [a]\n    bucket: acme-bucket\n    webhook_url: " + encrypt(t, kr, hook) + "\n"
	cc, err := Parse([]byte(file), "f", loadConfig(t, nil), kr)
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.Clients[0].WebhookURL.Reveal(); got != hook {
		t.Fatalf("webhook %q", got)
	}
	if got := cc.Clients[0].Redacted().Webhook; got != "https://hooks.slack.example/[REDACTED]" {
		t.Fatalf("redacted webhook %q", got)
	}
	if _, err := Parse([]byte(file), "f", loadConfig(t, nil), keyring(t)); err == nil {
		t.Fatal("webhook under an unknown key accepted")
	}
}
