package export

import (
	"fmt"
	"path"
	"strings"
)

// Format is the layout of an export object.
type Format string

const (
	FormatJSON    Format = "json"
	FormatNDJSON  Format = "ndjson"
	FormatCSV     Format = "csv"
	FormatParquet Format = "parquet"
)

// Formats lists every format, in the order they are documented.
func Formats() []Format { return []Format{FormatJSON, FormatNDJSON, FormatCSV, FormatParquet} }

// Compression is the stream compression of a json, ndjson or csv object.
// Parquet objects compress their pages instead: CompressionSnappy selects
// snappy pages, anything else zstd pages.
type Compression string

const (
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
	CompressionNone Compression = "none"
	// CompressionSnappy is only meaningful for parquet (snappy pages);
	// NewWriter refuses it for the other formats.
	CompressionSnappy Compression = "snappy"
)

// Compressions lists every stream compression.
func Compressions() []Compression {
	return []Compression{CompressionGzip, CompressionZstd, CompressionNone}
}

// ParseFormat reads a format name (case-insensitive, surrounding spaces ignored).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatJSON, FormatNDJSON, FormatCSV, FormatParquet:
		return f, nil
	case "jsonl":
		return FormatNDJSON, nil
	}
	return "", fmt.Errorf("unknown export format %q: want json, ndjson, csv or parquet", s)
}

// ParseCompression reads a compression name. An empty string means gzip, the
// seed-compatible default every tool reads.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(strings.TrimSpace(s))); c {
	case CompressionGzip, CompressionZstd, CompressionNone, CompressionSnappy:
		return c, nil
	case "":
		return CompressionGzip, nil
	case "gz":
		return CompressionGzip, nil
	case "zst":
		return CompressionZstd, nil
	}
	return "", fmt.Errorf("unknown export compression %q: want gzip, zstd or none (snappy for parquet only)", s)
}

func (f Format) valid() bool {
	switch f {
	case FormatJSON, FormatNDJSON, FormatCSV, FormatParquet:
		return true
	}
	return false
}

// streamCompression is the compression actually applied around the encoder:
// parquet never gets one, since its pages are compressed.
func streamCompression(f Format, c Compression) Compression {
	if f == FormatParquet {
		return CompressionNone
	}
	return c
}

func checkFormat(f Format, c Compression) error {
	if !f.valid() {
		return fmt.Errorf("unknown export format %q", f)
	}
	switch c {
	case CompressionGzip, CompressionZstd, CompressionNone:
		return nil
	case CompressionSnappy:
		if f == FormatParquet {
			return nil
		}
		return fmt.Errorf("compression snappy is only for parquet, not %s", f)
	}
	return fmt.Errorf("unknown export compression %q", c)
}

// Extension is the file name extension of an object, without a leading dot:
// "json.gz", "ndjson.zst", "csv", "parquet".
func Extension(f Format, c Compression) string {
	ext := string(f)
	switch streamCompression(f, c) {
	case CompressionGzip:
		ext += ".gz"
	case CompressionZstd:
		ext += ".zst"
	}
	return ext
}

// ContentType returns the Content-Type and Content-Encoding an object is
// uploaded with. Content-Encoding is empty when the object is not stream
// compressed (parquet, or compression none).
func ContentType(f Format, c Compression) (contentType, contentEncoding string) {
	switch f {
	case FormatJSON:
		contentType = "application/json"
	case FormatNDJSON:
		contentType = "application/x-ndjson"
	case FormatCSV:
		contentType = "text/csv; charset=utf-8; header=present"
	case FormatParquet:
		contentType = "application/vnd.apache.parquet"
	default:
		contentType = "application/octet-stream"
	}
	switch streamCompression(f, c) {
	case CompressionGzip:
		contentEncoding = "gzip"
	case CompressionZstd:
		contentEncoding = "zstd"
	}
	return contentType, contentEncoding
}

// DetectFromKey infers the format and compression of an object from its key
// (or file name). A parquet object reports CompressionNone: its page
// compression is recorded inside the file.
func DetectFromKey(key string) (Format, Compression, error) {
	name := strings.ToLower(path.Base(key))
	c := CompressionNone
	switch {
	case strings.HasSuffix(name, ".gz"):
		c, name = CompressionGzip, strings.TrimSuffix(name, ".gz")
	case strings.HasSuffix(name, ".zst"):
		c, name = CompressionZstd, strings.TrimSuffix(name, ".zst")
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", "", fmt.Errorf("object %q: no format extension", key)
	}
	f, err := ParseFormat(name[i+1:])
	if err != nil {
		return "", "", fmt.Errorf("object %q: %w", key, err)
	}
	if f == FormatParquet && c != CompressionNone {
		return "", "", fmt.Errorf("object %q: parquet is never stream compressed", key)
	}
	return f, c, nil
}
