package export

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// ExportedEvent is one event read back from an export object. Fields a
// format does not carry (csv has only the seed's ten columns) are zero.
type ExportedEvent struct {
	ID           uint64          `json:"id"`
	EventID      string          `json:"event_id"`
	EventType    string          `json:"event_type"`
	SessionID    string          `json:"session_id"`
	VisitorID    string          `json:"visitor_id"`
	SiteID       string          `json:"site_id"`
	Timestamp    time.Time       `json:"timestamp"`
	URL          string          `json:"url"`
	Path         string          `json:"path"`
	RawEventData json.RawMessage `json:"raw_event_data"`
	ReceivedAt   time.Time       `json:"received_at"`
	Referrer     string          `json:"referrer"`
	IPAddress    string          `json:"ip_address"`
	UserAgent    string          `json:"user_agent"`
	NodeID       string          `json:"node_id"`
}

// maxDecodeWindow bounds the memory a zstd stream may ask the decoder for.
const maxDecodeWindow = 64 << 20

// Decode reads every event of an exported object. It is meant for tests and
// verification (`collector bench verify`), not for the hot path: it holds
// the whole result in memory, and buffers a parquet object to read its
// footer.
func Decode(r io.Reader, f Format, c Compression) ([]ExportedEvent, error) {
	events, _, err := DecodeWithMetadata(r, f, c)
	return events, err
}

// DecodeWithMetadata is Decode that also returns the object's metadata where
// the format carries it (json: export_metadata; parquet: its key/value
// metadata); nil for ndjson and csv.
func DecodeWithMetadata(r io.Reader, f Format, c Compression) ([]ExportedEvent, *Metadata, error) {
	if !f.valid() {
		return nil, nil, fmt.Errorf("decode: unknown format %q", f)
	}
	in, closeIn, err := decompress(r, streamCompression(f, c))
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", f, err)
	}
	defer closeIn()
	var events []ExportedEvent
	var meta *Metadata
	switch f {
	case FormatJSON:
		events, meta, err = decodeJSON(in)
	case FormatNDJSON:
		events, err = decodeNDJSON(in)
	case FormatCSV:
		events, err = decodeCSV(in)
	case FormatParquet:
		events, meta, err = decodeParquet(in)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", f, err)
	}
	return events, meta, nil
}

func decompress(r io.Reader, c Compression) (io.Reader, func(), error) {
	switch c {
	case CompressionGzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("open gzip stream: %w", err)
		}
		return g, func() { g.Close() }, nil
	case CompressionZstd:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxDecodeWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("open zstd stream: %w", err)
		}
		return z, z.Close, nil
	case CompressionNone, CompressionSnappy:
		return r, func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %q", c)
}

type jsonEnvelope struct {
	ExportMetadata *struct {
		ExportID   string    `json:"export_id"`
		ExportTime time.Time `json:"export_time"`
		EventCount *int      `json:"event_count"`
		TimeRange  *struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"time_range"`
	} `json:"export_metadata"`
	Events *[]ExportedEvent `json:"events"`
}

func decodeJSON(r io.Reader) ([]ExportedEvent, *Metadata, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var env jsonEnvelope
	if err := dec.Decode(&env); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data after the envelope")
	}
	md := env.ExportMetadata
	if md == nil || md.EventCount == nil || md.TimeRange == nil || env.Events == nil {
		return nil, nil, errors.New("envelope lacks export_metadata (with event_count and time_range) or events")
	}
	events := *env.Events
	if *md.EventCount != len(events) {
		return nil, nil, fmt.Errorf("export_metadata.event_count is %d but the object holds %d events", *md.EventCount, len(events))
	}
	normalizeTimes(events)
	return events, &Metadata{
		ExportID: md.ExportID, ExportTime: md.ExportTime.UTC(), EventCount: *md.EventCount,
		Start: md.TimeRange.Start.UTC(), End: md.TimeRange.End.UTC(),
	}, nil
}

func normalizeTimes(events []ExportedEvent) {
	for i := range events {
		events[i].Timestamp = events[i].Timestamp.UTC()
		events[i].ReceivedAt = events[i].ReceivedAt.UTC()
	}
}

func decodeNDJSON(r io.Reader) ([]ExportedEvent, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var events []ExportedEvent
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			if b[len(b)-1] != '\n' {
				return nil, fmt.Errorf("line %d: not terminated by a newline", line)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			var e ExportedEvent
			if derr := dec.Decode(&e); derr != nil {
				return nil, fmt.Errorf("line %d: %w", line, derr)
			}
			if dec.More() {
				return nil, fmt.Errorf("line %d: more than one value", line)
			}
			events = append(events, e)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	normalizeTimes(events)
	return events, nil
}

func decodeCSV(r io.Reader) ([]ExportedEvent, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(CSVHeader)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if !slices.Equal(header, CSVHeader) {
		return nil, fmt.Errorf("header %q is not the export header", header)
	}
	var events []ExportedEvent
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return events, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		id, err := strconv.ParseUint(rec[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: id: %w", line, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, rec[6])
		if err != nil {
			return nil, fmt.Errorf("line %d: timestamp: %w", line, err)
		}
		if !json.Valid([]byte(rec[9])) {
			return nil, fmt.Errorf("line %d: raw_event_data is not JSON", line)
		}
		events = append(events, ExportedEvent{
			ID: id, EventID: rec[1], EventType: rec[2], SessionID: rec[3], VisitorID: rec[4], SiteID: rec[5],
			Timestamp: ts.UTC(), URL: rec[7], Path: rec[8], RawEventData: json.RawMessage(rec[9]),
		})
	}
}

func decodeParquet(r io.Reader) ([]ExportedEvent, *Metadata, error) {
	var ra io.ReaderAt
	var size int64
	switch v := r.(type) {
	case *bytes.Reader:
		ra, size = v, v.Size()
	default:
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, nil, err
		}
		ra, size = bytes.NewReader(data), int64(len(data))
	}
	file, err := parquet.OpenFile(ra, size)
	if err != nil {
		return nil, nil, err
	}
	pr := parquet.NewGenericReader[parquetRow](file)
	defer pr.Close()
	events := make([]ExportedEvent, 0, pr.NumRows())
	buf := make([]parquetRow, 512)
	for {
		n, err := pr.Read(buf)
		for _, row := range buf[:n] {
			events = append(events, ExportedEvent{
				ID: uint64(row.ID), EventID: row.EventID, EventType: row.EventType, SessionID: row.SessionID,
				VisitorID: row.VisitorID, SiteID: row.SiteID, Timestamp: time.UnixMicro(row.Timestamp).UTC(),
				URL: row.URL, Path: row.Path, RawEventData: json.RawMessage(bytes.Clone(row.RawEventData)),
				ReceivedAt: time.UnixMicro(row.ReceivedAt).UTC(), Referrer: row.Referrer, IPAddress: row.IPAddress,
				UserAgent: row.UserAgent, NodeID: row.NodeID,
			})
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
	}
	meta, err := parquetMetadata(file)
	if err != nil {
		return nil, nil, err
	}
	return events, meta, nil
}

func parquetMetadata(file *parquet.File) (*Metadata, error) {
	get := func(k string) string { v, _ := file.Lookup(k); return v }
	var m Metadata
	var err error
	parseTime := func(k string) time.Time {
		t, perr := time.Parse(time.RFC3339Nano, get(k))
		if perr != nil && err == nil {
			err = fmt.Errorf("metadata %s: %w", k, perr)
		}
		return t.UTC()
	}
	parseUint := func(k string) uint64 {
		v, perr := strconv.ParseUint(get(k), 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("metadata %s: %w", k, perr)
		}
		return v
	}
	m.ExportID = get(ParquetKeyExportID)
	m.ExportTime = parseTime(ParquetKeyExportTime)
	m.EventCount = int(parseUint(ParquetKeyEventCount))
	m.Start = parseTime(ParquetKeyStart)
	m.End = parseTime(ParquetKeyEnd)
	m.Client = get(ParquetKeyClient)
	m.NodeID = get(ParquetKeyNodeID)
	m.FirstIndex = parseUint(ParquetKeyFirstIndex)
	m.LastIndex = parseUint(ParquetKeyLastIndex)
	if err != nil {
		return nil, err
	}
	if int64(m.EventCount) != file.NumRows() {
		return nil, fmt.Errorf("metadata event_count %d but the file holds %d rows", m.EventCount, file.NumRows())
	}
	return &m, nil
}
