package export

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestObjectKey(t *testing.T) {
	hour := time.Date(2025, 6, 22, 11, 59, 59, 0, time.UTC)
	paris := time.FixedZone("CEST", 2*3600)
	cases := []struct {
		name        string
		prefix      string
		site        string
		hour        time.Time
		node        string
		first, last uint64
		f           Format
		c           Compression
		want        string
	}{
		{"seed layout", "analytics", "example-com", hour, "node-1", 1, 5000, FormatJSON, CompressionGzip,
			"analytics/site_id=example-com/dt=2025-06-22/hour=11/node-1-00000000000000000001-00000000000000005000.json.gz"},
		{"empty prefix has no leading slash", "", "example-com", hour, "n", 7, 7, FormatNDJSON, CompressionZstd,
			"site_id=example-com/dt=2025-06-22/hour=11/n-00000000000000000007-00000000000000000007.ndjson.zst"},
		{"prefix slashes trimmed", "/a/b/", "s", hour, "n", 1, 2, FormatCSV, CompressionNone,
			"a/b/site_id=s/dt=2025-06-22/hour=11/n-00000000000000000001-00000000000000000002.csv"},
		{"hour taken in UTC", "p", "s", time.Date(2025, 6, 23, 1, 30, 0, 0, paris), "n", 1, 2, FormatParquet, CompressionGzip,
			"p/site_id=s/dt=2025-06-22/hour=23/n-00000000000000000001-00000000000000000002.parquet"},
		{"largest index", "p", "s", hour, "n", 0, ^uint64(0), FormatParquet, CompressionSnappy,
			"p/site_id=s/dt=2025-06-22/hour=11/n-00000000000000000000-18446744073709551615.parquet"},
		{"site cannot add segments", "p", "../../etc/x", hour, "n", 1, 2, FormatCSV, CompressionNone,
			"p/site_id=..%2F..%2Fetc%2Fx/dt=2025-06-22/hour=11/n-00000000000000000001-00000000000000000002.csv"},
		{"dot-dot site", "p", "..", hour, "n", 1, 2, FormatCSV, CompressionNone,
			"p/site_id=%2E%2E/dt=2025-06-22/hour=11/n-00000000000000000001-00000000000000000002.csv"},
		{"unicode and specials escaped", "p", "café =x", hour, "n", 1, 2, FormatCSV, CompressionNone,
			"p/site_id=caf%C3%A9%20%3Dx/dt=2025-06-22/hour=11/n-00000000000000000001-00000000000000000002.csv"},
		{"empty site is Hive's null partition", "p", "", hour, "n", 1, 2, FormatCSV, CompressionNone,
			"p/site_id=__HIVE_DEFAULT_PARTITION__/dt=2025-06-22/hour=11/n-00000000000000000001-00000000000000000002.csv"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ObjectKey(tc.prefix, tc.site, tc.hour, tc.node, tc.first, tc.last, tc.f, tc.c)
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestObjectKeysSortByIndexAndDistinguishUnits(t *testing.T) {
	hour := time.Date(2025, 6, 22, 11, 0, 0, 0, time.UTC)
	a := ObjectKey("p", "s", hour, "n", 9, 99, FormatJSON, CompressionGzip)
	b := ObjectKey("p", "s", hour, "n", 100, 1000, FormatJSON, CompressionGzip)
	if !(a < b) {
		t.Fatalf("%s sorts after %s: indexes must be zero padded", a, b)
	}
	if ObjectKey("p", "s", hour, "n", 1, 2, FormatJSON, CompressionGzip) == ObjectKey("p", "s", hour, "n", 1, 3, FormatJSON, CompressionGzip) {
		t.Fatal("different units, same key")
	}
}

func TestManifestKey(t *testing.T) {
	cases := map[[2]string]string{
		{"analytics", "node-1"}: "analytics/_manifests/node-1-00000000000000000001-00000000000000000009.json",
		{"", "node-1"}:          "_manifests/node-1-00000000000000000001-00000000000000000009.json",
		{"/a/", "n/x"}:          "a/_manifests/n%2Fx-00000000000000000001-00000000000000000009.json",
	}
	for in, want := range cases {
		if got := ManifestKey(in[0], in[1], 1, 9); got != want {
			t.Errorf("ManifestKey(%q, %q) = %s, want %s", in[0], in[1], got, want)
		}
	}
}

func TestExtensionAndContentType(t *testing.T) {
	cases := []struct {
		f             Format
		c             Compression
		ext, ct, cenc string
	}{
		{FormatJSON, CompressionGzip, "json.gz", "application/json", "gzip"},
		{FormatJSON, CompressionZstd, "json.zst", "application/json", "zstd"},
		{FormatJSON, CompressionNone, "json", "application/json", ""},
		{FormatNDJSON, CompressionGzip, "ndjson.gz", "application/x-ndjson", "gzip"},
		{FormatNDJSON, CompressionZstd, "ndjson.zst", "application/x-ndjson", "zstd"},
		{FormatCSV, CompressionNone, "csv", "text/csv; charset=utf-8; header=present", ""},
		{FormatCSV, CompressionGzip, "csv.gz", "text/csv; charset=utf-8; header=present", "gzip"},
		{FormatParquet, CompressionGzip, "parquet", "application/vnd.apache.parquet", ""},
		{FormatParquet, CompressionZstd, "parquet", "application/vnd.apache.parquet", ""},
		{FormatParquet, CompressionSnappy, "parquet", "application/vnd.apache.parquet", ""},
	}
	for _, tc := range cases {
		ct, cenc := ContentType(tc.f, tc.c)
		if got := Extension(tc.f, tc.c); got != tc.ext || ct != tc.ct || cenc != tc.cenc {
			t.Errorf("%s/%s: extension %q, content type %q, encoding %q", tc.f, tc.c, got, ct, cenc)
		}
	}
}

func TestDetectFromKey(t *testing.T) {
	cases := []struct {
		key string
		f   Format
		c   Compression
		ok  bool
	}{
		{"a/b/n-1-2.json.gz", FormatJSON, CompressionGzip, true},
		{"n-1-2.NDJSON.ZST", FormatNDJSON, CompressionZstd, true},
		{"x.csv", FormatCSV, CompressionNone, true},
		{"x.parquet", FormatParquet, CompressionNone, true},
		{"x.jsonl.gz", FormatNDJSON, CompressionGzip, true},
		{"x.parquet.gz", "", "", false},
		{"x.gz", "", "", false},
		{"x.xml", "", "", false},
		{"noext", "", "", false},
		{"dir.json/file", "", "", false},
	}
	for _, tc := range cases {
		f, c, err := DetectFromKey(tc.key)
		if (err == nil) != tc.ok || f != tc.f || c != tc.c {
			t.Errorf("DetectFromKey(%q) = %q, %q, %v", tc.key, f, c, err)
		}
	}
}

func TestParseFormatAndCompression(t *testing.T) {
	formats := map[string]Format{"json": FormatJSON, " NDJSON ": FormatNDJSON, "jsonl": FormatNDJSON, "Csv": FormatCSV, "parquet": FormatParquet}
	for in, want := range formats {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "xml", "json.gz", "avro"} {
		if _, err := ParseFormat(bad); err == nil || !strings.Contains(err.Error(), "want json, ndjson, csv or parquet") {
			t.Errorf("ParseFormat(%q): %v", bad, err)
		}
	}
	comps := map[string]Compression{"": CompressionGzip, "gzip": CompressionGzip, "GZ": CompressionGzip, "zstd": CompressionZstd,
		"zst": CompressionZstd, "none": CompressionNone, "snappy": CompressionSnappy}
	for in, want := range comps {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"lz4", "brotli", "gzip9"} {
		if _, err := ParseCompression(bad); err == nil {
			t.Errorf("ParseCompression(%q) accepted", bad)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := Manifest{
		ExportID: "exp_1", Client: "acme", NodeID: "node-1", CreatedAt: time.Date(2025, 6, 22, 12, 0, 0, 0, time.FixedZone("X", 3600)),
		FirstIndex: 1, LastIndex: 9,
		Objects: []ManifestEntry{{Key: "k", Format: FormatParquet, Compression: CompressionZstd, Events: 9, Bytes: 1234,
			SHA256: strings.Repeat("ab", 32), FirstIndex: 1, LastIndex: 9, SiteID: "s"}},
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"version": 1`, `"export_id": "exp_1"`, `"sha256": "abab`, `"site_id": "s"`, `"created_at": "2025-06-22T11:00:00Z"`} {
		if !strings.Contains(string(data), key) {
			t.Fatalf("manifest lacks %s:\n%s", key, data)
		}
	}
	got, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	want := m
	want.Version, want.CreatedAt = ManifestVersion, m.CreatedAt.UTC()
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("got %+v\nwant %+v", *got, want)
	}
	if _, err := ParseManifest([]byte(`{"version":2}`)); err == nil {
		t.Fatal("accepted an unknown manifest version")
	}
	empty, _ := (&Manifest{}).Marshal()
	if !strings.Contains(string(empty), `"objects": []`) {
		t.Fatalf("empty manifest lists objects as null: %s", empty)
	}
}
