package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"
)

// ExportedEvent is what verification needs from one exported event.
type ExportedEvent struct {
	EventID string
	Raw     []byte // raw_event_data as JSON
}

// ExportDecoder decodes one exported object. The shipper's own decoder
// (shipper/export) can be plugged in by cmd/collector; DecodeExport is an
// independent implementation of the documented formats, so that a bug in
// the shipper's encoder cannot hide behind the same bug in its decoder.
type ExportDecoder func(r io.Reader, key string) ([]ExportedEvent, error)

// dataKey matches the deterministic object names of export units:
// {node}-{firstIndex:020}-{lastIndex:020}.{ext}[.gz|.zst]. Manifests and
// audit files do not match.
var dataKey = regexp.MustCompile(`(?:^|/)([^/]+)-(\d{20})-(\d{20})\.(json|ndjson|jsonl|csv|parquet)(?:\.(gz|gzip|zst|zstd))?$`)

// ExportKey is what an object name says about its content.
type ExportKey struct {
	Node             string
	First, Last      uint64
	Format, Compress string
}

// ParseExportKey reads an export object's name; ok is false for objects that
// are not export units.
func ParseExportKey(key string) (ExportKey, bool) {
	// Names starting with "_" (manifests, audit logs) or "." (a local
	// destination's temporary files) are not data, as table readers agree.
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, "_") || strings.HasPrefix(seg, ".") {
			return ExportKey{}, false
		}
	}
	m := dataKey.FindStringSubmatch(key)
	if m == nil {
		return ExportKey{}, false
	}
	first, _ := strconv.ParseUint(m[2], 10, 64)
	last, _ := strconv.ParseUint(m[3], 10, 64)
	k := ExportKey{Node: m[1], First: first, Last: last, Format: m[4], Compress: m[5]}
	switch k.Format {
	case "jsonl":
		k.Format = "ndjson"
	}
	switch k.Compress {
	case "gzip":
		k.Compress = "gz"
	case "zstd":
		k.Compress = "zst"
	}
	return k, true
}

// DecodeExport decodes an export object in any documented format.
func DecodeExport(r io.Reader, key string) ([]ExportedEvent, error) {
	k, ok := ParseExportKey(key)
	if !ok {
		return nil, fmt.Errorf("%s: not an export object name", key)
	}
	switch k.Compress {
	case "gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", key, err)
		}
		defer zr.Close()
		r = zr
	case "zst":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: zstd: %w", key, err)
		}
		defer zr.Close()
		r = zr
	}
	var (
		evs []ExportedEvent
		err error
	)
	switch k.Format {
	case "json":
		evs, err = decodeJSONEnvelope(r)
	case "ndjson":
		evs, err = decodeNDJSON(r)
	case "csv":
		evs, err = decodeCSV(r)
	case "parquet":
		evs, err = decodeParquet(r)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return evs, nil
}

func exportedFromJSON(v *fastjson.Value) (ExportedEvent, error) {
	idv := v.Get("event_id")
	if idv == nil {
		return ExportedEvent{}, errors.New("event without event_id")
	}
	id, err := idv.StringBytes()
	if err != nil {
		return ExportedEvent{}, errors.New("event without a string event_id")
	}
	ev := ExportedEvent{EventID: string(id)}
	switch raw := v.Get("raw_event_data"); {
	case raw == nil:
	case raw.Type() == fastjson.TypeString:
		b, _ := raw.StringBytes()
		ev.Raw = append([]byte(nil), b...)
	default:
		ev.Raw = raw.MarshalTo(nil)
	}
	return ev, nil
}

func decodeJSONEnvelope(r io.Reader) ([]ExportedEvent, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	arr := v.GetArray("events")
	if arr == nil && v.Get("events") == nil {
		return nil, errors.New("json: no events array")
	}
	out := make([]ExportedEvent, 0, len(arr))
	for i, e := range arr {
		ev, err := exportedFromJSON(e)
		if err != nil {
			return nil, fmt.Errorf("json event %d: %w", i, err)
		}
		out = append(out, ev)
	}
	if n := v.Get("export_metadata", "event_count"); n != nil && n.GetInt() != len(out) {
		return nil, fmt.Errorf("json: export_metadata.event_count %d but %d events", n.GetInt(), len(out))
	}
	return out, nil
}

func decodeNDJSON(r io.Reader) ([]ExportedEvent, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 256<<10), 64<<20)
	var p fastjson.Parser
	var out []ExportedEvent
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		v, err := p.ParseBytes(b)
		if err != nil {
			return nil, fmt.Errorf("ndjson line %d: %w", line, err)
		}
		ev, err := exportedFromJSON(v)
		if err != nil {
			return nil, fmt.Errorf("ndjson line %d: %w", line, err)
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

func decodeCSV(r io.Reader) ([]ExportedEvent, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	idCol, rawCol := -1, -1
	for i, h := range header {
		switch h {
		case "event_id":
			idCol = i
		case "raw_event_data":
			rawCol = i
		}
	}
	if idCol < 0 {
		return nil, errors.New("csv: no event_id column")
	}
	var out []ExportedEvent
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
		ev := ExportedEvent{EventID: rec[idCol]}
		if rawCol >= 0 {
			ev.Raw = []byte(rec[rawCol])
		}
		out = append(out, ev)
	}
}

func decodeParquet(r io.Reader) ([]ExportedEvent, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	idLeaf, ok := f.Schema().Lookup("event_id")
	if !ok {
		return nil, errors.New("parquet: no event_id column")
	}
	rawLeaf, hasRaw := f.Schema().Lookup("raw_event_data")
	pr := parquet.NewReader(f)
	defer pr.Close()
	out := make([]ExportedEvent, 0, f.NumRows())
	rows := make([]parquet.Row, 256)
	for {
		n, err := pr.ReadRows(rows)
		for _, row := range rows[:n] {
			var ev ExportedEvent
			for _, v := range row {
				switch {
				case v.Column() == idLeaf.ColumnIndex && !v.IsNull():
					ev.EventID = string(v.ByteArray())
				case hasRaw && v.Column() == rawLeaf.ColumnIndex && !v.IsNull():
					ev.Raw = append([]byte(nil), v.ByteArray()...)
				}
			}
			out = append(out, ev)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parquet: %w", err)
		}
	}
}

// ObjectLister walks a destination's objects in key order.
type ObjectLister interface {
	Name() string
	Walk(ctx context.Context, fn func(key string, size int64, open func() (io.ReadCloser, error)) error) error
}

// DirLister walks a local export directory (the file:// destination).
type DirLister struct{ Root string }

func (d DirLister) Name() string { return "export dir " + d.Root }

func (d DirLister) Walk(ctx context.Context, fn func(string, int64, func() (io.ReadCloser, error)) error) error {
	type obj struct {
		key  string
		size int64
	}
	var objs []obj
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == d.Root {
				return nil
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(d.Root, p)
		info, err := e.Info()
		if err != nil {
			return nil // removed while walking (a temp file renamed into place)
		}
		objs = append(objs, obj{filepath.ToSlash(rel), info.Size()})
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", d.Root, err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].key < objs[j].key })
	for _, o := range objs {
		p := filepath.Join(d.Root, filepath.FromSlash(o.key))
		if err := fn(o.key, o.size, func() (io.ReadCloser, error) { return os.Open(p) }); err != nil {
			return err
		}
	}
	return nil
}

// S3Options address an S3 (or S3-compatible) prefix.
type S3Options struct {
	Endpoint  string // empty: AWS
	Region    string
	Bucket    string
	Prefix    string
	AccessKey string
	SecretKey string
	PathStyle bool
	Insecure  bool // skip TLS verification (a test server's self-signed certificate)
}

// S3Lister walks objects under a bucket prefix.
type S3Lister struct {
	opts   S3Options
	client *s3.Client
}

// NewS3Lister builds a client from explicit options (no shared AWS config).
func NewS3Lister(o S3Options) *S3Lister {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	so := s3.Options{Region: o.Region, UsePathStyle: o.PathStyle}
	if o.Endpoint != "" {
		so.BaseEndpoint = aws.String(o.Endpoint)
	}
	if o.AccessKey != "" {
		so.Credentials = credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")
	}
	if o.Insecure {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test servers only, by explicit flag
		so.HTTPClient = &http.Client{Transport: tr}
	}
	return &S3Lister{opts: o, client: s3.New(so)}
}

func (l *S3Lister) Name() string { return "s3://" + l.opts.Bucket + "/" + l.opts.Prefix }

func (l *S3Lister) Walk(ctx context.Context, fn func(string, int64, func() (io.ReadCloser, error)) error) error {
	p := s3.NewListObjectsV2Paginator(l.client, &s3.ListObjectsV2Input{Bucket: aws.String(l.opts.Bucket), Prefix: aws.String(l.opts.Prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", l.Name(), err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			open := func() (io.ReadCloser, error) {
				out, err := l.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(l.opts.Bucket), Key: aws.String(key)})
				if err != nil {
					return nil, fmt.Errorf("get %s: %w", key, err)
				}
				return out.Body, nil
			}
			if err := fn(key, aws.ToInt64(o.Size), open); err != nil {
				return err
			}
		}
	}
	return nil
}

// ExportSource verifies against the export units of one destination.
type ExportSource struct {
	Lister ObjectLister
	Decode ExportDecoder // nil: DecodeExport
	// Objects and Bytes are filled in by Events: how many data objects were read.
	Objects int
	Bytes   int64
}

func (s *ExportSource) Name() string { return s.Lister.Name() }

func (s *ExportSource) Events(ctx context.Context, runs []string, fn func(StoredEvent) error) error {
	decode := s.Decode
	if decode == nil {
		decode = DecodeExport
	}
	want := map[string]bool{}
	for _, r := range runs {
		want[r] = true
	}
	s.Objects, s.Bytes = 0, 0
	var p fastjson.Parser
	return s.Lister.Walk(ctx, func(key string, size int64, open func() (io.ReadCloser, error)) error {
		if _, ok := ParseExportKey(key); !ok {
			return nil
		}
		rc, err := open()
		if err != nil {
			return err
		}
		evs, err := decode(rc, key)
		rc.Close()
		if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		s.Objects++
		s.Bytes += size
		for _, ev := range evs {
			run, bench := benchFields(&p, ev.Raw)
			if !want[run] {
				continue
			}
			if err := fn(StoredEvent{EventID: ev.EventID, BenchID: bench, Where: key}); err != nil {
				return err
			}
		}
		return nil
	})
}

// benchFields reads bench_run and bench_id from a raw event.
func benchFields(p *fastjson.Parser, raw []byte) (run, id string) {
	if len(raw) == 0 {
		return "", ""
	}
	v, err := p.ParseBytes(raw)
	if err != nil {
		return "", ""
	}
	return string(v.GetStringBytes("bench_run")), string(v.GetStringBytes("bench_id"))
}

// ExportedIndexes returns how many distinct WAL indexes of node the objects
// under l cover (the union of their key ranges), without reading them: the
// shipper's progress as a reader of the bucket sees it.
func ExportedIndexes(ctx context.Context, l ObjectLister, node string) (covered uint64, objects int, bytes int64, err error) {
	type span struct{ a, b uint64 }
	var spans []span
	err = l.Walk(ctx, func(key string, size int64, _ func() (io.ReadCloser, error)) error {
		k, ok := ParseExportKey(key)
		if !ok || (node != "" && k.Node != node) || k.Last < k.First {
			return nil
		}
		spans = append(spans, span{k.First, k.Last})
		objects++
		bytes += size
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].a < spans[j].a })
	var end uint64 // last index covered so far
	for _, s := range spans {
		if s.b <= end {
			continue
		}
		start := max(s.a, end+1)
		covered += s.b - start + 1
		end = s.b
	}
	return covered, objects, bytes, nil
}
