package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config holds every setting of the collector.
type Config struct {
	// Service
	Addr        string
	Environment string // development | production
	NodeID      string
	LogLevel    string
	LogFormat   string // json | text
	AdminToken  string

	// HTTP server limits
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	MaxHeaderBytes  int
	MaxConnections  int
	ShutdownTimeout time.Duration

	// Ingest
	CORSAllowedOrigins []string
	TrustedProxies     []netip.Prefix
	MaxBodyBytes       int
	MaxBatchEvents     int
	IPAnonymize        bool

	// WAL
	WALDir          string
	WALSync         string // always | interval | never
	WALSyncInterval time.Duration
	WALSegmentBytes int64
	WALMaxBytes     int64
	WALRetention    time.Duration

	// Loader (PostgreSQL)
	DatabaseURL         string
	DBPoolSize          int
	DBMaxOverflow       int
	LoaderBatchEvents   int
	LoaderFlushInterval time.Duration
	EventsRetentionDays int

	// Shipper (exports)
	ExportDir         string
	ExportSchedule    string
	ExportFormat      string
	ExportCompression string
	ExportMaxAttempts int
	ExportConcurrency int
	ExportThreshold   int
	ExportWebhookURL  string
	ExportStateDir    string
	ExportPartBytes   int64
	ExportRetryBase   time.Duration
	ExportRetryMax    time.Duration
	S3CAFile          string
	ClientName        string
	ClientS3Bucket    string
	ClientS3AccessKey string
	ClientS3SecretKey string
	S3BackupBucket    string
	S3Prefix          string
	S3Region          string
	S3Endpoint        string
	S3ForcePathStyle  bool
	ClientsFile       string
	SecretKey         string
	SecretKeyFile     string
	PreviousSecretKey string

	// Elastic limiter (background work yields the CPU to ingest)
	ElasticLatencyTarget time.Duration // 0: off
	ElasticFloorRate     float64
	ElasticInterval      time.Duration
}

// Var describes one setting.
type Var struct {
	Env     string
	Flag    string
	Default string
	Help    string
	Secret  bool
}

type binder struct {
	fs     *flag.FlagSet
	getenv func(string) string
	vars   []Var
	errs   []error
}

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

// initial returns the value a flag starts from: the environment variable if
// set, otherwise the default.
func (b *binder) initial(env, def, help string, secret bool) string {
	b.vars = append(b.vars, Var{Env: env, Flag: flagName(env), Default: def, Help: help, Secret: secret})
	if v, ok := lookup(b.getenv, env); ok {
		return v
	}
	return def
}

func lookup(getenv func(string) string, env string) (string, bool) {
	v := getenv(env)
	return v, v != ""
}

func (b *binder) str(p *string, env, def, help string) {
	b.fs.StringVar(p, flagName(env), b.initial(env, def, help, false), help)
}

func (b *binder) secret(p *string, env, help string) {
	b.fs.StringVar(p, flagName(env), b.initial(env, "", help, true), help)
}

type parsedValue[T any] struct {
	p     *T
	parse func(string) (T, error)
	raw   string
}

func (v *parsedValue[T]) String() string { return v.raw }
func (v *parsedValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	v.raw, *v.p = s, x
	return nil
}

func bind[T any](b *binder, p *T, env, def, help string, parse func(string) (T, error)) {
	init := b.initial(env, def, help, false)
	v := &parsedValue[T]{p: p, parse: parse}
	if err := v.Set(init); err != nil {
		b.errs = append(b.errs, fmt.Errorf("%s=%q: %w", env, init, err))
	}
	b.fs.Var(v, flagName(env), help)
}

func parseInt(s string) (int, error) { return strconv.Atoi(strings.TrimSpace(s)) }

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(strings.TrimSpace(s), 64) }

// parseDurationOrOff reads a duration, or off (0).
func parseDurationOrOff(s string) (time.Duration, error) {
	if s = strings.TrimSpace(s); strings.EqualFold(s, "off") {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// ParseBytes reads a byte size such as 1048576, 512KiB, 16MiB, 2GiB or 1GB.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a byte size")
	}
	return n * mult, nil
}

func parseList(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out, nil
}

// ParsePrefixes reads a comma-separated list of CIDRs or bare addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	parts, _ := parseList(s)
	out := make([]netip.Prefix, 0, len(parts))
	for _, p := range parts {
		if strings.Contains(p, "/") {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, err
			}
			out = append(out, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (c *Config) bindAll(b *binder) {
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "collector"
	}
	b.str(&c.Addr, "COLLECTOR_ADDR", ":8000", "HTTP listen address")
	b.str(&c.Environment, "ENVIRONMENT", "development", "development or production (production requires explicit CORS origins and encrypted secrets)")
	b.str(&c.NodeID, "NODE_ID", hostname, "this node's id; part of every event's key in PostgreSQL and in export object names (default: hostname)")
	b.str(&c.LogLevel, "LOG_LEVEL", "info", "debug, info, warn or error")
	b.str(&c.LogFormat, "LOG_FORMAT", "json", "json or text")
	b.secret(&c.AdminToken, "ADMIN_TOKEN", "Bearer token for admin endpoints (/events/recent, /export/*); empty disables them")

	bind(b, &c.ReadTimeout, "READ_TIMEOUT", "10s", "max time to read a request", time.ParseDuration)
	bind(b, &c.WriteTimeout, "WRITE_TIMEOUT", "10s", "max time to write a response", time.ParseDuration)
	bind(b, &c.IdleTimeout, "IDLE_TIMEOUT", "60s", "keep-alive idle timeout", time.ParseDuration)
	bind(b, &c.MaxHeaderBytes, "MAX_HEADER_BYTES", "8192", "max request header size in bytes", parseInt)
	bind(b, &c.MaxConnections, "MAX_CONNECTIONS", "10000", "max concurrent client connections", parseInt)
	bind(b, &c.ShutdownTimeout, "SHUTDOWN_TIMEOUT", "20s", "on SIGTERM, max time to finish in-flight requests before the final fsync", time.ParseDuration)

	bind(b, &c.CORSAllowedOrigins, "CORS_ALLOWED_ORIGINS", "*", "comma-separated allowed origins; * only in development", parseList)
	bind(b, &c.TrustedProxies, "TRUSTED_PROXIES", "127.0.0.0/8,::1/128", "comma-separated CIDRs whose X-Forwarded-For / X-Real-IP are believed", ParsePrefixes)
	bind(b, &c.MaxBodyBytes, "MAX_BODY_BYTES", "1048576", "max request body in bytes (413 above)", parseInt)
	bind(b, &c.MaxBatchEvents, "MAX_BATCH_EVENTS", "500", "max events in one batch request", parseInt)
	bind(b, &c.IPAnonymize, "IP_ANONYMIZE", "false", "zero the host part of client IPs (/24 for IPv4, /48 for IPv6)", strconv.ParseBool)

	b.str(&c.WALDir, "WAL_DIR", "./data/wal", "directory of the write-ahead log")
	b.str(&c.WALSync, "WAL_SYNC", "always", "always (ack after fsync), interval (fsync on a timer) or never (OS decides)")
	bind(b, &c.WALSyncInterval, "WAL_SYNC_INTERVAL", "50ms", "fsync period when WAL_SYNC=interval (the loss window on power failure)", time.ParseDuration)
	bind(b, &c.WALSegmentBytes, "WAL_SEGMENT_BYTES", "8MiB", "target size of one WAL segment (one export unit)", ParseBytes)
	bind(b, &c.WALMaxBytes, "WAL_MAX_BYTES", "2GiB", "disk high-water: above it ingest answers 503 instead of filling the disk", ParseBytes)
	bind(b, &c.WALRetention, "WAL_RETENTION", "0s", "keep consumed segments at least this long (for replay); 0 removes them once loaded and shipped", time.ParseDuration)

	b.secret(&c.DatabaseURL, "DATABASE_URL", "PostgreSQL URL; empty runs without the loader (database: not configured)")
	bind(b, &c.DBPoolSize, "DB_POOL_SIZE", "10", "connections kept open to PostgreSQL (seed: pool_size)", parseInt)
	bind(b, &c.DBMaxOverflow, "DB_MAX_OVERFLOW", "20", "extra connections allowed above DB_POOL_SIZE (seed: max_overflow)", parseInt)
	bind(b, &c.LoaderBatchEvents, "LOADER_BATCH_EVENTS", "5000", "largest COPY batch (a batch is committed as soon as the previous commit is done; this caps it)", parseInt)
	bind(b, &c.LoaderFlushInterval, "LOADER_FLUSH_INTERVAL", "200ms", "longest a batch gathers before it is committed (sooner whenever the database is free)", time.ParseDuration)
	bind(b, &c.EventsRetentionDays, "EVENTS_RETENTION_DAYS", "0", "drop daily partitions older than this; 0 keeps everything", parseInt)

	b.str(&c.ExportDir, "EXPORT_DIR", "./data/exports", "local export destination used when no S3 bucket is configured")
	b.str(&c.ExportSchedule, "EXPORT_SCHEDULE", "hourly", "hourly, daily, realtime[:SECONDS[:EVENTS]], or a cron expression")
	b.str(&c.ExportFormat, "EXPORT_FORMAT", "json", "json, ndjson, csv or parquet (comma-separated for several)")
	b.str(&c.ExportCompression, "EXPORT_COMPRESSION", "gzip", "gzip, zstd or none (parquet uses its own zstd)")
	bind(b, &c.ExportMaxAttempts, "EXPORT_MAX_ATTEMPTS", "8", "attempts before an export unit is dead-lettered", parseInt)
	bind(b, &c.ExportConcurrency, "EXPORT_CONCURRENCY", "2", "upload slots: concurrent uploads, up to 4 small objects per slot", parseInt)
	bind(b, &c.ExportThreshold, "EXPORT_THRESHOLD_EVENTS", "0", "also export when this many events are pending; 0 disables", parseInt)
	b.str(&c.ExportWebhookURL, "EXPORT_WEBHOOK_URL", "", "client notification webhook (single-client mode)")
	b.str(&c.ExportStateDir, "EXPORT_STATE_DIR", "", "shipper state: unit plans, dead letters, audit log, manual runs (empty: shipper/ beside WAL_DIR)")
	bind(b, &c.ExportPartBytes, "EXPORT_PART_BYTES", "8MiB", "multipart part size and largest single PUT (at least 5MiB)", ParseBytes)
	bind(b, &c.ExportRetryBase, "EXPORT_RETRY_BASE", "1s", "first backoff after a failed export attempt (jittered, doubling)", time.ParseDuration)
	bind(b, &c.ExportRetryMax, "EXPORT_RETRY_MAX", "5m", "cap of the export retry backoff", time.ParseDuration)
	b.str(&c.S3CAFile, "S3_CA_FILE", "", "PEM bundle of trusted CAs for S3 endpoints (empty: system roots or AWS_CA_BUNDLE)")
	b.str(&c.ClientName, "CLIENT_NAME", "default", "client name in single-client mode")
	b.str(&c.ClientS3Bucket, "CLIENT_S3_BUCKET", "", "client's S3 bucket (single-client mode)")
	b.secret(&c.ClientS3AccessKey, "CLIENT_S3_ACCESS_KEY", "client's S3 access key; empty uses the default AWS credential chain")
	b.secret(&c.ClientS3SecretKey, "CLIENT_S3_SECRET_KEY", "client's S3 secret key")
	b.str(&c.S3BackupBucket, "S3_BACKUP_BUCKET", "", "our backup bucket; every event is also exported here")
	b.str(&c.S3Prefix, "S3_PREFIX", "analytics", "object key prefix")
	b.str(&c.S3Region, "S3_REGION", "us-east-1", "S3 region")
	b.str(&c.S3Endpoint, "S3_ENDPOINT", "", "S3-compatible endpoint URL (empty: AWS)")
	bind(b, &c.S3ForcePathStyle, "S3_FORCE_PATH_STYLE", "false", "path-style S3 addressing (most S3-compatible stores)", strconv.ParseBool)
	b.str(&c.ClientsFile, "CLIENTS_FILE", "", "multi-client YAML file (reloaded on SIGHUP); overrides the single-client variables")
	b.secret(&c.SecretKey, "COLLECTOR_SECRET_KEY", "base64 32-byte key that decrypts enc:v1: secrets")
	b.str(&c.SecretKeyFile, "COLLECTOR_SECRET_KEY_FILE", "", "file holding COLLECTOR_SECRET_KEY")
	b.secret(&c.PreviousSecretKey, "COLLECTOR_PREVIOUS_SECRET_KEY", "previous key, still accepted for decryption during rotation")

	bind(b, &c.ElasticLatencyTarget, "ELASTIC_LATENCY_TARGET", "1ms", "exports slow down while ingest runs and the p99 Go scheduler latency is above this; off or 0 lets them run flat out always", parseDurationOrOff)
	bind(b, &c.ElasticFloorRate, "ELASTIC_FLOOR_RATE", "1000", "WAL records per second exports may always read, however busy ingest is (each export pass counts each record it reads)", parseFloat)
	bind(b, &c.ElasticInterval, "ELASTIC_INTERVAL", "100ms", "how often the elastic limiter looks at the scheduler latency and sets the export rate", time.ParseDuration)
}

// Vars returns every setting, sorted by variable name.
func Vars() []Var {
	b := &binder{fs: flag.NewFlagSet("vars", flag.ContinueOnError), getenv: func(string) string { return "" }}
	var c Config
	c.bindAll(b)
	sort.Slice(b.vars, func(i, j int) bool { return b.vars[i].Env < b.vars[j].Env })
	return b.vars
}

// Known reports whether env is a setting of the collector.
func Known(env string) bool {
	for _, v := range Vars() {
		if v.Env == env {
			return true
		}
	}
	return false
}

// Load builds the configuration from getenv and args (flags of `serve`).
func Load(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	b := &binder{fs: fs, getenv: getenv}
	c.bindAll(b)
	if err := errors.Join(b.errs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// FlagSet returns the flag set of `serve` bound to c, for usage output.
func FlagSet(c *Config, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.bindAll(&binder{fs: fs, getenv: getenv})
	return fs
}

// Validate checks values that parse but make no sense together.
func (c *Config) Validate() error {
	var errs []error
	switch c.Environment {
	case "development", "production":
	default:
		errs = append(errs, fmt.Errorf("ENVIRONMENT=%q: want development or production", c.Environment))
	}
	switch c.WALSync {
	case "always", "interval", "never":
	default:
		errs = append(errs, fmt.Errorf("WAL_SYNC=%q: want always, interval or never", c.WALSync))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel))
	}
	if c.Environment == "production" {
		for _, o := range c.CORSAllowedOrigins {
			if o == "*" {
				errs = append(errs, errors.New("CORS_ALLOWED_ORIGINS: * is not allowed in production; list the sites' origins"))
			}
		}
		if len(c.CORSAllowedOrigins) == 0 {
			errs = append(errs, errors.New("CORS_ALLOWED_ORIGINS: production requires an explicit list of origins"))
		}
	}
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, "/\\ \t\n") {
		errs = append(errs, fmt.Errorf("NODE_ID=%q: must be non-empty, without slashes or spaces", c.NodeID))
	}
	positive := map[string]int64{
		"MAX_BODY_BYTES": int64(c.MaxBodyBytes), "MAX_BATCH_EVENTS": int64(c.MaxBatchEvents),
		"WAL_SEGMENT_BYTES": c.WALSegmentBytes, "WAL_MAX_BYTES": c.WALMaxBytes,
		"LOADER_BATCH_EVENTS": int64(c.LoaderBatchEvents), "DB_POOL_SIZE": int64(c.DBPoolSize),
		"EXPORT_MAX_ATTEMPTS": int64(c.ExportMaxAttempts), "EXPORT_CONCURRENCY": int64(c.ExportConcurrency),
		"MAX_CONNECTIONS": int64(c.MaxConnections), "MAX_HEADER_BYTES": int64(c.MaxHeaderBytes),
	}
	names := make([]string, 0, len(positive))
	for k := range positive {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if positive[k] <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", k))
		}
	}
	if c.WALMaxBytes > 0 && c.WALSegmentBytes > 0 && c.WALMaxBytes < 2*c.WALSegmentBytes {
		errs = append(errs, errors.New("WAL_MAX_BYTES must be at least twice WAL_SEGMENT_BYTES"))
	}
	if c.ExportPartBytes < 5<<20 {
		errs = append(errs, errors.New("EXPORT_PART_BYTES must be at least 5MiB (the S3 minimum part size)"))
	}
	if c.ElasticLatencyTarget < 0 {
		errs = append(errs, errors.New("ELASTIC_LATENCY_TARGET must be a positive duration, or off"))
	}
	if c.ElasticLatencyTarget > 0 && (c.ElasticFloorRate <= 0 || math.IsInf(c.ElasticFloorRate, 0) || math.IsNaN(c.ElasticFloorRate)) {
		errs = append(errs, errors.New("ELASTIC_FLOOR_RATE must be a positive number of records per second (set ELASTIC_LATENCY_TARGET=off to disable the limiter)"))
	}
	if c.ElasticLatencyTarget > 0 && c.ElasticInterval <= 0 {
		errs = append(errs, errors.New("ELASTIC_INTERVAL must be positive"))
	}
	if c.WALSync == "interval" && c.WALSyncInterval <= 0 {
		errs = append(errs, errors.New("WAL_SYNC_INTERVAL must be positive with WAL_SYNC=interval"))
	}
	return errors.Join(errs...)
}
