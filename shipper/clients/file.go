package clients

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/secrets"
	"github.com/evothesis/collector/shipper/export"
	"gopkg.in/yaml.v3"
)

// FileVersion is the clients file layout this collector reads.
const FileVersion = 1

// maxFileBytes bounds the clients file: thousands of clients fit in far less.
const maxFileBytes = 16 << 20

// The YAML layout. Pointers tell "not given" (inherit) from a zero value.
type fileConfig struct {
	Version  int              `yaml:"version"`
	Defaults fileDefaults     `yaml:"defaults"`
	Backup   *fileDestination `yaml:"backup"`
	Clients  []fileClient     `yaml:"clients"`
}

type fileDefaults struct {
	Formats        stringList `yaml:"formats"`
	Compression    string     `yaml:"compression"`
	Schedule       string     `yaml:"schedule"`
	Threshold      *int       `yaml:"threshold"`
	Prefix         *string    `yaml:"prefix"`
	Region         string     `yaml:"region"`
	Endpoint       string     `yaml:"endpoint"`
	ForcePathStyle *bool      `yaml:"force_path_style"`
	WebhookURL     string     `yaml:"webhook_url"`
}

type fileCredentials struct {
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
}

type fileDestination struct {
	Bucket         string           `yaml:"bucket"`
	Prefix         *string          `yaml:"prefix"`
	Region         string           `yaml:"region"`
	Endpoint       string           `yaml:"endpoint"`
	ForcePathStyle *bool            `yaml:"force_path_style"`
	Credentials    *fileCredentials `yaml:"credentials"`
	Formats        stringList       `yaml:"formats"`
	Compression    string           `yaml:"compression"`
}

type fileClient struct {
	Name            string     `yaml:"name"`
	SiteIDs         stringList `yaml:"site_ids"`
	fileDestination `yaml:",inline"`
	Schedule        string `yaml:"schedule"`
	Threshold       *int   `yaml:"threshold"`
	WebhookURL      string `yaml:"webhook_url"`
}

// stringList accepts a YAML sequence of strings or one comma-separated string.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = splitList(n.Value)
		if *l == nil {
			*l = stringList{}
		}
		return nil
	case yaml.SequenceNode:
		out := make(stringList, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a list of strings", item.Line)
			}
			out = append(out, item.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// LoadFile reads a clients file (multi-client mode).
func LoadFile(path string, cfg config.Config, kr *secrets.Keyring) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clients file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read clients file %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("clients file %s is larger than %d bytes", path, maxFileBytes)
	}
	return Parse(data, path, cfg, kr)
}

// Parse reads clients file content; source names it in errors. cfg supplies
// the environment (production rules), EXPORT_DIR, and the defaults for what
// neither a client nor the file's defaults set (EXPORT_FORMAT, S3_REGION...).
func Parse(data []byte, source string, cfg config.Config, kr *secrets.Keyring) (*Config, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("clients file %s is empty", source)
		}
		return nil, fmt.Errorf("clients file %s: %w", source, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("clients file %s: holds more than one YAML document", source)
	}
	c := &checker{source: source, production: cfg.Environment == "production", kr: kr}
	out := build(c, &fc, cfg)
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func build(c *checker, fc *fileConfig, cfg config.Config) *Config {
	if fc.Version != 0 && fc.Version != FileVersion {
		c.addf("version", "this collector reads version %d, not %d", FileVersion, fc.Version)
	}
	out := &Config{Mode: ModeFile, Source: c.source, Environment: cfg.Environment}
	d := fc.Defaults

	// Client defaults: the file's defaults section, else the export
	// variables (EXPORT_FORMAT, EXPORT_COMPRESSION, EXPORT_SCHEDULE,
	// EXPORT_THRESHOLD_EVENTS, S3_PREFIX, S3_REGION). Where a client's store
	// is (endpoint, path style) is never inherited from S3_ENDPOINT, which
	// describes our own store.
	var defaultFormats []export.Format
	if d.Formats != nil {
		defaultFormats = c.formats("defaults.formats", d.Formats)
	} else {
		defaultFormats = c.formats("EXPORT_FORMAT", splitList(cfg.ExportFormat))
	}
	defaultCompression := c.compression(fieldOr("defaults.compression", d.Compression, "EXPORT_COMPRESSION"), or(d.Compression, cfg.ExportCompression))
	defaultSchedule := c.schedule(fieldOr("defaults.schedule", d.Schedule, "EXPORT_SCHEDULE"), or(d.Schedule, cfg.ExportSchedule))
	defaultThreshold := cfg.ExportThreshold
	if d.Threshold != nil {
		defaultThreshold = c.threshold("defaults.threshold", *d.Threshold)
	}
	defaultPrefix := cfg.S3Prefix
	if d.Prefix != nil {
		defaultPrefix = *d.Prefix
	}
	defaultRegion := or(d.Region, cfg.S3Region)
	defaultEndpoint := c.endpoint("defaults.endpoint", d.Endpoint)
	defaultPathStyle := d.ForcePathStyle != nil && *d.ForcePathStyle
	defaultWebhook := c.webhook("defaults.webhook_url", d.WebhookURL)

	out.Backup = buildBackup(c, fc.Backup, cfg)

	if len(fc.Clients) == 0 {
		c.addf("clients", "no clients: list at least one (events of unlisted sites go to the backup only)")
	}
	names := map[string]int{}
	claimedBy := map[string]string{}
	locations := map[string]string{}
	for i, fcl := range fc.Clients {
		field := fmt.Sprintf("clients[%d]", i)
		if fcl.Name != "" {
			field = fmt.Sprintf("clients[%s]", fcl.Name)
		}
		c.clientName(field+".name", fcl.Name)
		if prev, dup := names[fcl.Name]; dup && fcl.Name != "" {
			c.addf(field+".name", "client %q is listed twice (entries %d and %d)", fcl.Name, prev, i)
		}
		names[fcl.Name] = i

		cl := &Client{Name: fcl.Name, sites: map[string]bool{}}
		if len(fcl.SiteIDs) == 0 {
			c.addf(field+".site_ids", "a client needs at least one site id")
		}
		for j, site := range fcl.SiteIDs {
			sf := fmt.Sprintf("%s.site_ids[%d]", field, j)
			c.siteID(sf, site)
			if owner, taken := claimedBy[site]; taken {
				if owner == fcl.Name {
					c.addf(sf, "site %q is listed twice", site)
				} else {
					c.addf(sf, "site %q is already claimed by client %q: a site belongs to exactly one client", site, owner)
				}
				continue
			}
			claimedBy[site] = fcl.Name
			cl.sites[site] = true
			cl.SiteIDs = append(cl.SiteIDs, site)
		}

		cl.Formats, cl.Compression, cl.Schedule, cl.Threshold, cl.WebhookURL =
			defaultFormats, defaultCompression, defaultSchedule, defaultThreshold, defaultWebhook
		if fcl.Formats != nil {
			cl.Formats = c.formats(field+".formats", fcl.Formats)
		}
		if fcl.Compression != "" {
			cl.Compression = c.compression(field+".compression", fcl.Compression)
		}
		if fcl.Schedule != "" {
			cl.Schedule = c.schedule(field+".schedule", fcl.Schedule)
		}
		if fcl.Threshold != nil {
			cl.Threshold = c.threshold(field+".threshold", *fcl.Threshold)
		}
		if fcl.WebhookURL != "" {
			cl.WebhookURL = c.webhook(field+".webhook_url", fcl.WebhookURL)
		}

		// The client's own destination is explicit in a clients file: a
		// forgotten bucket must not quietly become a local directory.
		dest := Destination{}
		if fcl.Bucket == "" {
			c.addf(field+".bucket", "every client needs a bucket (or file:///dir for a local directory)")
		} else {
			c.location(field+".bucket", fcl.Bucket, &dest)
		}
		dest.Prefix = defaultPrefix
		if fcl.Prefix != nil {
			dest.Prefix = *fcl.Prefix
		}
		dest.Prefix = c.prefix(field+".prefix", dest.Prefix)
		if dest.Kind == KindS3 {
			dest.Region = c.region(field+".region", or(fcl.Region, defaultRegion))
			dest.Endpoint = defaultEndpoint
			if fcl.Endpoint != "" {
				dest.Endpoint = c.endpoint(field+".endpoint", fcl.Endpoint)
			}
			dest.ForcePathStyle = defaultPathStyle
			if fcl.ForcePathStyle != nil {
				dest.ForcePathStyle = *fcl.ForcePathStyle
			}
		}
		if fcl.Credentials != nil {
			if dest.Kind == KindFile {
				c.addf(field+".credentials", "a local directory takes no credentials")
			}
			dest.Credentials = c.credentials(field+".credentials", fcl.Credentials.AccessKey, fcl.Credentials.SecretKey,
				field+".credentials.access_key", field+".credentials.secret_key")
		}
		dest.Formats, dest.Compression = cl.Formats, cl.Compression
		if dest.Kind != "" {
			if other, dup := locations[dest.location()]; dup {
				c.addf(field+".bucket", "client %q already exports to %s: two clients in one place would overwrite each other's manifests (give each its own prefix)", other, dest.URL())
			}
			locations[dest.location()] = fcl.Name
		}
		cl.Destination, cl.HasDestination = dest, true

		cl.Backup = backupFor(out.Backup, cl.Name)
		if len(cl.Backup.Formats) == 0 {
			cl.Backup.Formats = cl.Formats
		}
		if cl.Backup.Compression == "" {
			cl.Backup.Compression = cl.Compression
		}
		out.Clients = append(out.Clients, cl)
	}
	finish(out, defaultFormats, defaultCompression)
	return out
}

// buildBackup reads the backup section: ours, so it falls back to our own
// variables (S3_BACKUP_BUCKET, S3_REGION, S3_ENDPOINT, S3_FORCE_PATH_STYLE,
// S3_PREFIX) and, with no bucket anywhere, to EXPORT_DIR/backup.
func buildBackup(c *checker, b *fileDestination, cfg config.Config) Destination {
	if b == nil {
		b = &fileDestination{}
	}
	var backup Destination
	bucketField := fieldOr("backup.bucket", b.Bucket, "S3_BACKUP_BUCKET")
	if bucket := or(b.Bucket, cfg.S3BackupBucket); bucket == "" {
		backup = localDir(c, "EXPORT_DIR", cfg.ExportDir, "backup")
	} else {
		c.location(bucketField, bucket, &backup)
	}
	if backup.Kind == KindS3 {
		backup.Region = c.region(fieldOr("backup.region", b.Region, "S3_REGION"), or(b.Region, cfg.S3Region))
		backup.Endpoint = c.endpoint(fieldOr("backup.endpoint", b.Endpoint, "S3_ENDPOINT"), or(b.Endpoint, cfg.S3Endpoint))
		backup.ForcePathStyle = cfg.S3ForcePathStyle
		if b.ForcePathStyle != nil {
			backup.ForcePathStyle = *b.ForcePathStyle
		}
	}
	if b.Credentials != nil {
		if backup.Kind == KindFile {
			c.addf("backup.credentials", "a local directory takes no credentials")
		}
		backup.Credentials = c.credentials("backup.credentials", b.Credentials.AccessKey, b.Credentials.SecretKey,
			"backup.credentials.access_key", "backup.credentials.secret_key")
	}
	prefix, prefixField := cfg.S3Prefix, "S3_PREFIX"
	if b.Prefix != nil {
		prefix, prefixField = *b.Prefix, "backup.prefix"
	}
	backup.Prefix = c.prefix(prefixField, prefix)
	if b.Formats != nil {
		backup.Formats = c.formats("backup.formats", b.Formats)
	}
	if b.Compression != "" {
		backup.Compression = c.compression("backup.compression", b.Compression)
	}
	return backup
}

func or(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// fieldOr names where a value came from: the file's field when it is set
// there, otherwise the environment variable it fell back to.
func fieldOr(fileField, fileValue, envVar string) string {
	if fileValue != "" {
		return fileField
	}
	return envVar
}

// formatNames is for the redacted view.
func formatNames(fs []export.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}
