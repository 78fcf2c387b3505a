package clients

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/secrets"
	"github.com/evothesis/collector/shipper/export"
)

// UnclaimedName is the pseudo-client under which the events of sites no
// client claims go to the backup destination.
const UnclaimedName = "_unclaimed"

// Mode says where the configuration came from.
type Mode string

const (
	ModeSingle Mode = "single-client" // the seed's environment variables
	ModeFile   Mode = "clients-file"  // CLIENTS_FILE
)

// Kind is the kind of a destination.
type Kind string

const (
	KindS3   Kind = "s3"
	KindFile Kind = "file" // a local directory, same layout as a bucket
)

// Credentials are static S3 credentials, decrypted. Both empty means the
// default AWS credential chain (environment, shared config, IAM role).
type Credentials struct {
	AccessKey secrets.Secret
	SecretKey secrets.Secret
	// Encrypted is true when both were given as enc:v1 values, made with
	// the key KeyID.
	Encrypted bool
	KeyID     string
}

// Static reports whether static credentials are configured.
func (c Credentials) Static() bool { return !c.AccessKey.IsZero() }

// Destination is where one copy of a client's events goes.
type Destination struct {
	Kind           Kind
	Bucket         string // KindS3
	Dir            string // KindFile: an absolute directory
	Prefix         string // key prefix, no leading or trailing slash; may be empty
	Region         string
	Endpoint       string // S3-compatible endpoint URL; empty: AWS
	ForcePathStyle bool
	Credentials    Credentials
	Formats        []export.Format    // one object per format per unit
	Compression    export.Compression // stream compression of json, ndjson and csv
}

// URL names the destination without any secret: s3://bucket/prefix or
// file:///dir/prefix.
func (d Destination) URL() string {
	var u string
	if d.Kind == KindFile {
		u = (&url.URL{Scheme: "file", Path: filepath.ToSlash(d.Dir)}).String()
	} else {
		u = "s3://" + d.Bucket
	}
	if d.Prefix != "" {
		u += "/" + d.Prefix
	}
	return u
}

// location identifies the store and prefix, to find two clients writing to
// the same place.
func (d Destination) location() string {
	return strings.Join([]string{string(d.Kind), d.Endpoint, d.Bucket, d.Dir, d.Prefix}, "\x00")
}

// Client is one client: the sites it owns and where and when their events go.
type Client struct {
	Name string
	// SiteIDs are the sites the client owns; empty with AllSites.
	SiteIDs []string
	// AllSites: the client owns every site (single-client mode).
	AllSites    bool
	Formats     []export.Format
	Compression export.Compression
	Schedule    Schedule
	// Threshold > 0 also exports as soon as this many events are pending.
	Threshold int
	// WebhookURL receives notifications (paused, dead-lettered, resumed);
	// empty for none. Webhook URLs often carry a token, so it is a Secret
	// (it may also be written as an enc:v1 value); Redacted shows its host.
	WebhookURL secrets.Secret
	// Destination is the client's own bucket or directory; HasDestination
	// is false for the unclaimed pseudo-client, which has only Backup.
	Destination    Destination
	HasDestination bool
	// Backup is this client's share of the backup destination: its prefix
	// is {backup prefix}/client={name}.
	Backup Destination

	sites  map[string]bool
	claims func(site string) bool // the unclaimed pseudo-client's rule
}

// Claims reports whether the events of site belong to the client.
func (c *Client) Claims(site string) bool {
	if c.claims != nil {
		return c.claims(site)
	}
	return c.AllSites || c.sites[site]
}

// Config is every client, the backup destination, and the site index.
type Config struct {
	Mode        Mode
	Source      string // the clients file, or "environment"
	Environment string
	Clients     []*Client
	// Backup is the backup destination as configured (each client's
	// Backup is this with the client's prefix).
	Backup Destination

	bySite    map[string]*Client
	allSites  *Client
	unclaimed *Client
}

// Resolve returns the client that owns site; ok is false for a site no
// client claims (its events go to the backup only: Unclaimed).
func (c *Config) Resolve(site string) (client *Client, ok bool) {
	if c.allSites != nil {
		return c.allSites, true
	}
	client, ok = c.bySite[site]
	return client, ok
}

// Unclaimed is the pseudo-client that sends the events of unclaimed sites to
// the backup destination; nil in single-client mode, where one client owns
// every site.
func (c *Config) Unclaimed() *Client { return c.unclaimed }

// All returns the clients followed by the unclaimed pseudo-client, if any:
// everything the shipper runs.
func (c *Config) All() []*Client {
	all := append([]*Client(nil), c.Clients...)
	if c.unclaimed != nil {
		all = append(all, c.unclaimed)
	}
	return all
}

// Load builds the client configuration from the collector's: the clients
// file when CLIENTS_FILE is set, otherwise single-client mode. kr decrypts
// enc:v1 values; nil accepts plain values only.
func Load(cfg config.Config, kr *secrets.Keyring) (*Config, error) {
	if cfg.ClientsFile != "" {
		return LoadFile(cfg.ClientsFile, cfg, kr)
	}
	return FromConfig(cfg, kr)
}

// FieldError is one problem of the configuration, at Field: a path such as
// clients[acme].credentials.secret_key, or an environment variable name.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every problem found, so that one edit fixes them all.
type ValidationError struct {
	Source   string
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem", e.Source, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteByte('s')
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

type checker struct {
	source     string
	production bool
	kr         *secrets.Keyring
	problems   []FieldError
}

func (c *checker) addf(field, format string, args ...any) {
	c.problems = append(c.problems, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &ValidationError{Source: c.source, Problems: c.problems}
}

var clientNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c *checker) clientName(field, name string) {
	if !clientNameRE.MatchString(name) {
		c.addf(field, "client name %q: want 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit (it names WAL consumers and backup prefixes)", name)
	}
}

func (c *checker) formats(field string, list []string) []export.Format {
	if len(list) == 0 {
		c.addf(field, "at least one format is needed (json, ndjson, csv, parquet)")
		return nil
	}
	var out []export.Format
	seen := map[export.Format]bool{}
	for _, s := range list {
		f, err := export.ParseFormat(s)
		if err != nil {
			c.addf(field, "%v", err)
			continue
		}
		if seen[f] {
			c.addf(field, "format %s is listed twice", f)
			continue
		}
		seen[f] = true
		out = append(out, f)
	}
	return out
}

func (c *checker) compression(field, s string) export.Compression {
	comp, err := export.ParseCompression(s)
	if err != nil {
		c.addf(field, "%v", err)
		return export.CompressionGzip
	}
	if comp == export.CompressionSnappy {
		c.addf(field, "snappy applies to parquet pages only; use gzip, zstd or none (parquet then uses zstd pages)")
		return export.CompressionGzip
	}
	return comp
}

func (c *checker) schedule(field, s string) Schedule {
	sched, err := ParseSchedule(s)
	if err != nil {
		c.addf(field, "%v", err)
	}
	return sched
}

func (c *checker) threshold(field string, n int) int {
	if n < 0 {
		c.addf(field, "must be 0 (off) or a positive number of events, not %d", n)
		return 0
	}
	return n
}

// bucketNameRE is the S3 bucket naming rule (and that of S3-compatible stores).
var bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// location reads a bucket field: a bucket name, s3://bucket, or
// file:///absolute/dir for a local directory.
func (c *checker) location(field, s string, d *Destination) {
	switch {
	case strings.HasPrefix(s, "file:"):
		u, err := url.Parse(s)
		if err != nil || (u.Host != "" && u.Host != "localhost") || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/") {
			c.addf(field, "%q: a local directory is written file:///absolute/path", s)
			return
		}
		d.Kind, d.Dir = KindFile, filepath.Clean(filepath.FromSlash(u.Path))
	case strings.HasPrefix(s, "s3://"):
		rest := strings.TrimPrefix(s, "s3://")
		bucket, path, _ := strings.Cut(rest, "/")
		if path != "" {
			c.addf(field, "%q: put the key prefix in prefix, not in the bucket", s)
		}
		c.bucket(field, bucket, d)
	default:
		c.bucket(field, s, d)
	}
}

func (c *checker) bucket(field, name string, d *Destination) {
	if !bucketNameRE.MatchString(name) || strings.Contains(name, "..") {
		c.addf(field, "bucket %q: want 3-63 lower-case letters, digits, '.' or '-' (or file:///dir for a local directory)", name)
		return
	}
	d.Kind, d.Bucket = KindS3, name
}

func (c *checker) prefix(field, p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	if len(p) > 512 || !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00\r\n\t") {
		c.addf(field, "prefix %q: want at most 512 bytes of UTF-8 without backslashes or control characters", p)
		return p
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			c.addf(field, "prefix %q: empty, \".\" and \"..\" segments are not allowed", p)
			break
		}
	}
	return p
}

func (c *checker) endpoint(field, s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		c.addf(field, "endpoint %q: want an http(s)://host[:port] URL", redactURL(s))
	case u.User != nil:
		c.addf(field, "endpoint: credentials do not belong in the URL; use credentials")
	case u.RawQuery != "" || u.Fragment != "":
		c.addf(field, "endpoint %q: no query or fragment", redactURL(s))
	case c.production && u.Scheme != "https":
		c.addf(field, "endpoint %q: production requires https", redactURL(s))
	}
	return strings.TrimRight(s, "/")
}

func (c *checker) webhook(field, s string) secrets.Secret {
	if s == "" {
		return ""
	}
	if secrets.IsEncrypted(s) {
		plain, err := c.kr.Decrypt(s)
		if err != nil {
			c.addf(field, "cannot decrypt: %v", err)
			return ""
		}
		s = plain
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		c.addf(field, "webhook %q: want an http(s) URL", redactURL(s))
	case c.production && u.Scheme != "https":
		c.addf(field, "webhook %q: production requires https", redactURL(s))
	}
	return secrets.Secret(s)
}

func (c *checker) region(field, s string) string {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t/") {
		c.addf(field, "region %q: want a region name such as us-east-1", s)
	}
	return s
}

// credentials decrypts an access/secret key pair, or reports why not. The
// values themselves never appear in a problem.
func (c *checker) credentials(field, accessKey, secretKey, accessName, secretName string) Credentials {
	if accessKey == "" && secretKey == "" {
		return Credentials{}
	}
	if accessKey == "" || secretKey == "" {
		c.addf(field, "give both %s and %s, or neither (the default AWS credential chain)", accessName, secretName)
		return Credentials{}
	}
	var creds Credentials
	creds.Encrypted = true
	open := func(name, v string) secrets.Secret {
		if !secrets.IsEncrypted(v) {
			creds.Encrypted = false
			if c.production {
				c.addf(name, "plaintext secret refused in production; encrypt it with `collector secret encrypt`")
			}
			return secrets.Secret(v)
		}
		id, _ := secrets.KeyIDOf(v)
		if creds.KeyID == "" {
			creds.KeyID = id
		}
		s, err := c.kr.Open(v)
		if err != nil {
			c.addf(name, "cannot decrypt: %v", err)
		}
		return s
	}
	creds.AccessKey = open(accessName, accessKey)
	creds.SecretKey = open(secretName, secretKey)
	if !creds.Encrypted {
		creds.KeyID = ""
	}
	return creds
}

func (c *checker) siteID(field, site string) {
	switch {
	case site == "":
		c.addf(field, "empty site id")
	case strings.TrimSpace(site) != site:
		c.addf(field, "site id %q has surrounding spaces and would never match", site)
	case len(site) > 256 || !utf8.ValidString(site):
		c.addf(field, "site id %q: want at most 256 bytes of UTF-8", site)
	}
}

// finish indexes sites and builds the unclaimed pseudo-client.
func finish(cfg *Config, unclaimedFormats []export.Format, unclaimedCompression export.Compression) {
	cfg.bySite = map[string]*Client{}
	for _, cl := range cfg.Clients {
		if cl.AllSites {
			cfg.allSites = cl
		}
		for _, s := range cl.SiteIDs {
			cfg.bySite[s] = cl
		}
	}
	if cfg.allSites != nil {
		return
	}
	backup := backupFor(cfg.Backup, UnclaimedName)
	if len(backup.Formats) == 0 {
		backup.Formats = unclaimedFormats
	}
	if backup.Compression == "" {
		backup.Compression = unclaimedCompression
	}
	bySite := cfg.bySite
	cfg.unclaimed = &Client{
		Name: UnclaimedName, Formats: backup.Formats, Compression: backup.Compression,
		Backup: backup,
		claims: func(site string) bool { _, claimed := bySite[site]; return !claimed },
	}
}

// backupFor is a client's share of the backup destination.
func backupFor(base Destination, client string) Destination {
	d := base
	share := "client=" + client
	if d.Prefix == "" {
		d.Prefix = share
	} else {
		d.Prefix += "/" + share
	}
	return d
}

// localDir is a local destination under EXPORT_DIR.
func localDir(c *checker, field, exportDir, sub string) Destination {
	dir, err := filepath.Abs(filepath.Join(exportDir, sub))
	if err != nil {
		c.addf(field, "export directory: %v", err)
	}
	return Destination{Kind: KindFile, Dir: dir}
}

// splitList reads a comma-separated list.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// FromConfig is single-client mode: one client, CLIENT_NAME, owning every
// site, from the seed's environment variables.
func FromConfig(cfg config.Config, kr *secrets.Keyring) (*Config, error) {
	c := &checker{source: "environment", production: cfg.Environment == "production", kr: kr}
	c.clientName("CLIENT_NAME", cfg.ClientName)
	cl := &Client{
		Name:        cfg.ClientName,
		AllSites:    true,
		Formats:     c.formats("EXPORT_FORMAT", splitList(cfg.ExportFormat)),
		Compression: c.compression("EXPORT_COMPRESSION", cfg.ExportCompression),
		Schedule:    c.schedule("EXPORT_SCHEDULE", cfg.ExportSchedule),
		Threshold:   c.threshold("EXPORT_THRESHOLD_EVENTS", cfg.ExportThreshold),
		WebhookURL:  c.webhook("EXPORT_WEBHOOK_URL", cfg.ExportWebhookURL),
	}
	prefix := c.prefix("S3_PREFIX", cfg.S3Prefix)
	endpoint := c.endpoint("S3_ENDPOINT", cfg.S3Endpoint)
	region := c.region("S3_REGION", cfg.S3Region)
	s3 := func(field, bucket string, sub string) Destination {
		if bucket == "" {
			d := localDir(c, "EXPORT_DIR", cfg.ExportDir, sub)
			d.Prefix = prefix
			return d
		}
		d := Destination{Prefix: prefix, Region: region, Endpoint: endpoint, ForcePathStyle: cfg.S3ForcePathStyle}
		c.location(field, bucket, &d)
		return d
	}
	cl.Destination = s3("CLIENT_S3_BUCKET", cfg.ClientS3Bucket, "client")
	cl.HasDestination = true
	cl.Destination.Formats, cl.Destination.Compression = cl.Formats, cl.Compression
	creds := c.credentials("CLIENT_S3_ACCESS_KEY", cfg.ClientS3AccessKey, cfg.ClientS3SecretKey, "CLIENT_S3_ACCESS_KEY", "CLIENT_S3_SECRET_KEY")
	if creds.Static() && cl.Destination.Kind == KindFile {
		c.addf("CLIENT_S3_ACCESS_KEY", "credentials are set but CLIENT_S3_BUCKET is not: set the bucket, or drop the keys")
	}
	cl.Destination.Credentials = creds
	// The backup bucket has no key variables: it uses the default AWS
	// credential chain (an IAM role, as the seed prefers).
	backup := s3("S3_BACKUP_BUCKET", cfg.S3BackupBucket, "backup")
	cl.Backup = backupFor(backup, cl.Name)
	cl.Backup.Formats, cl.Backup.Compression = cl.Formats, cl.Compression
	if err := c.err(); err != nil {
		return nil, err
	}
	out := &Config{Mode: ModeSingle, Source: "environment", Environment: cfg.Environment, Clients: []*Client{cl}, Backup: backup}
	finish(out, cl.Formats, cl.Compression)
	return out, nil
}
