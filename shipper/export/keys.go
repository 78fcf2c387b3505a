package export

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultPartition is the Hive partition value used for an empty site id,
// as Hive, Spark and Athena name a NULL partition.
const DefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// ObjectKey names the object holding the events of WAL indexes first..last
// of one site, received during the hour that contains hour:
//
//	{prefix}/site_id={site}/dt=YYYY-MM-DD/hour=HH/{node}-{first:020}-{last:020}.{ext}
//
// The key depends only on what the object holds, so a retry or a restart
// rewrites the same key instead of adding a duplicate. The date and hour are
// those of hour in UTC (callers pass the receive time, which never changes;
// event time stays a column). Prefix slashes are trimmed and an empty prefix
// gives a key with no leading slash. Site and node are escaped the way Hive
// escapes partition values, so no client-supplied site id can add a path
// segment or climb out of the prefix.
func ObjectKey(prefix, siteID string, hour time.Time, nodeID string, first, last uint64, f Format, c Compression) string {
	h := hour.UTC()
	var b strings.Builder
	b.Grow(len(prefix) + len(siteID) + len(nodeID) + 100)
	if p := strings.Trim(prefix, "/"); p != "" {
		b.WriteString(p)
		b.WriteByte('/')
	}
	b.WriteString("site_id=")
	if siteID == "" {
		b.WriteString(DefaultPartition)
	} else {
		b.WriteString(EscapePartitionValue(siteID))
	}
	b.WriteString("/dt=")
	b.WriteString(h.Format("2006-01-02"))
	b.WriteString("/hour=")
	b.WriteString(h.Format("15"))
	b.WriteByte('/')
	b.WriteString(unitName(nodeID, first, last))
	b.WriteByte('.')
	b.WriteString(Extension(f, c))
	return b.String()
}

// ManifestKey names the manifest of the export run that covered WAL indexes
// first..last: {prefix}/_manifests/{node}-{first:020}-{last:020}.json. Tools
// that read a prefix as a table skip names starting with "_".
func ManifestKey(prefix, nodeID string, first, last uint64) string {
	name := "_manifests/" + unitName(nodeID, first, last) + ".json"
	if p := strings.Trim(prefix, "/"); p != "" {
		return p + "/" + name
	}
	return name
}

func unitName(nodeID string, first, last uint64) string {
	return EscapePartitionValue(nodeID) + "-" + pad20(first) + "-" + pad20(last)
}

func pad20(i uint64) string {
	s := strconv.FormatUint(i, 10)
	return strings.Repeat("0", 20-len(s)) + s
}

// EscapePartitionValue escapes a value for one path segment of an object key:
// letters, digits, '-', '_' and '.' stay, every other byte becomes %XX (as
// Hive escapes partition values). "." and ".." are escaped whole so that a
// segment never means "this" or "parent" directory to a local destination.
func EscapePartitionValue(s string) string {
	if s == "." || s == ".." {
		return strings.ReplaceAll(s, ".", "%2E")
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !keySafe(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keySafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

func keySafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// ManifestVersion is the version of the manifest layout written here.
const ManifestVersion = 1

// ManifestEntry describes one object of an export run.
type ManifestEntry struct {
	Key         string      `json:"key"`
	Format      Format      `json:"format"`
	Compression Compression `json:"compression"`
	Events      int         `json:"events"`
	Bytes       int64       `json:"bytes"`
	SHA256      string      `json:"sha256"` // hex of the object's bytes as stored
	FirstIndex  uint64      `json:"first_index"`
	LastIndex   uint64      `json:"last_index"`
	SiteID      string      `json:"site_id"`
}

// Manifest lists the objects an export run wrote, so a client can check
// that it holds all of them, intact: the seed's "data integrity verification".
type Manifest struct {
	Version    int             `json:"version"`
	ExportID   string          `json:"export_id"`
	Client     string          `json:"client"`
	NodeID     string          `json:"node_id"`
	CreatedAt  time.Time       `json:"created_at"`
	FirstIndex uint64          `json:"first_index"`
	LastIndex  uint64          `json:"last_index"`
	Objects    []ManifestEntry `json:"objects"`
}

// Marshal encodes the manifest as indented JSON (it is small and read by
// people). Version 0 is written as ManifestVersion.
func (m *Manifest) Marshal() ([]byte, error) {
	c := *m
	if c.Version == 0 {
		c.Version = ManifestVersion
	}
	c.CreatedAt = c.CreatedAt.UTC()
	if c.Objects == nil {
		c.Objects = []ManifestEntry{}
	}
	out, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s: %w", m.ExportID, err)
	}
	return append(out, '\n'), nil
}

// ParseManifest decodes a manifest written by Marshal.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("decode manifest: unsupported version %d", m.Version)
	}
	return &m, nil
}
