package export

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// parquetRow is the parquet schema, one field per column, in the order of
// the JSON event object. Timestamps are INT64 microseconds since the epoch
// with the TIMESTAMP(MICROS, isAdjustedToUTC) logical type; low-cardinality
// strings are dictionary encoded.
type parquetRow struct {
	ID           int64  `parquet:"id"`
	EventID      string `parquet:"event_id"`
	EventType    string `parquet:"event_type,dict"`
	SessionID    string `parquet:"session_id"`
	VisitorID    string `parquet:"visitor_id"`
	SiteID       string `parquet:"site_id,dict"`
	Timestamp    int64  `parquet:"timestamp,timestamp(microsecond:utc)"`
	URL          string `parquet:"url"`
	Path         string `parquet:"path,dict"`
	RawEventData []byte `parquet:"raw_event_data,json"`
	ReceivedAt   int64  `parquet:"received_at,timestamp(microsecond:utc)"`
	Referrer     string `parquet:"referrer,dict"`
	IPAddress    string `parquet:"ip_address"`
	UserAgent    string `parquet:"user_agent,dict"`
	NodeID       string `parquet:"node_id,dict"`
}

// parquetBatch rows are handed to parquet-go at a time: one call per row
// costs more than the encoding.
const parquetBatch = 256

// Parquet key/value metadata keys.
const (
	ParquetKeyExportID   = "collector.export_id"
	ParquetKeyExportTime = "collector.export_time"
	ParquetKeyEventCount = "collector.event_count"
	ParquetKeyStart      = "collector.time_range.start"
	ParquetKeyEnd        = "collector.time_range.end"
	ParquetKeyClient     = "collector.client"
	ParquetKeyNodeID     = "collector.node_id"
	ParquetKeyFirstIndex = "collector.first_index"
	ParquetKeyLastIndex  = "collector.last_index"
)

type parquetEncoder struct {
	w             *parquet.GenericWriter[parquetRow]
	meta          *Metadata
	batch         []parquetRow
	raw           [][]byte // per batch slot, reused
	batchBytes    int64
	groupBytes    int64
	rowGroupBytes int64
}

// maxBatchBytes bounds the rows held before they are handed to parquet-go
// (events can be as large as a request body).
const maxBatchBytes = 1 << 20

func parquetCodec(c Compression) parquet.WriterOption {
	if c == CompressionSnappy {
		return parquet.Compression(&parquet.Snappy)
	}
	return parquet.Compression(&parquet.Zstd)
}

func newParquetEncoder(out io.Writer, c Compression, meta *Metadata, rowGroupBytes int64) *parquetEncoder {
	w := parquet.NewGenericWriter[parquetRow](out,
		parquetCodec(c),
		// Version 1 data pages are what parquet-mr and pyarrow write by
		// default, and what every engine (older Athena and Hive included) reads.
		parquet.DataPageVersion(1),
		parquet.CreatedBy("evothesis collector", "", ""),
	)
	return &parquetEncoder{
		w: w, meta: meta,
		batch:         make([]parquetRow, 0, parquetBatch),
		raw:           make([][]byte, parquetBatch),
		rowGroupBytes: rowGroupBytes,
	}
}

func (e *parquetEncoder) write(r *Row) error {
	if r.ID > math.MaxInt64 {
		return fmt.Errorf("id %d does not fit parquet's INT64 id column", r.ID)
	}
	ev := r.Event
	i := len(e.batch)
	e.raw[i] = appendRaw(e.raw[i][:0], ev.Raw)
	row := parquetRow{
		ID:           int64(r.ID),
		EventID:      validUTF8(ev.EventID),
		EventType:    validUTF8(ev.EventType),
		SessionID:    validUTF8(ev.SessionID),
		VisitorID:    validUTF8(ev.VisitorID),
		SiteID:       validUTF8(ev.SiteID),
		Timestamp:    ev.Timestamp.UnixMicro(),
		URL:          validUTF8(ev.URL),
		Path:         validUTF8(ev.Path),
		RawEventData: e.raw[i],
		ReceivedAt:   ev.ReceivedAt.UnixMicro(),
		Referrer:     validUTF8(ev.Referrer),
		IPAddress:    validUTF8(ev.IPAddress),
		UserAgent:    validUTF8(ev.UserAgent),
		NodeID:       validUTF8(ev.NodeID),
	}
	e.batch = append(e.batch, row)
	e.batchBytes += int64(8*3 + len(row.EventID) + len(row.EventType) + len(row.SessionID) + len(row.VisitorID) +
		len(row.SiteID) + len(row.URL) + len(row.Path) + len(row.RawEventData) + len(row.Referrer) +
		len(row.IPAddress) + len(row.UserAgent) + len(row.NodeID))
	if len(e.batch) == cap(e.batch) || e.batchBytes >= min(maxBatchBytes, e.rowGroupBytes) {
		return e.flushBatch()
	}
	return nil
}

func (e *parquetEncoder) flushBatch() error {
	if len(e.batch) > 0 {
		if _, err := e.w.Write(e.batch); err != nil {
			return err
		}
		// Drop references to the caller's strings.
		clear(e.batch)
		e.batch = e.batch[:0]
		e.groupBytes += e.batchBytes
		e.batchBytes = 0
	}
	if e.groupBytes >= e.rowGroupBytes {
		e.groupBytes = 0
		return e.w.Flush()
	}
	return nil
}

func (e *parquetEncoder) close(rows int) error {
	if err := e.flushBatch(); err != nil {
		return err
	}
	m := e.meta
	kv := [][2]string{
		{ParquetKeyExportID, m.ExportID},
		{ParquetKeyExportTime, string(appendTime(nil, m.ExportTime))},
		{ParquetKeyEventCount, strconv.Itoa(rows)},
		{ParquetKeyStart, string(appendTime(nil, m.Start))},
		{ParquetKeyEnd, string(appendTime(nil, m.End))},
		{ParquetKeyClient, m.Client},
		{ParquetKeyNodeID, m.NodeID},
		{ParquetKeyFirstIndex, strconv.FormatUint(m.FirstIndex, 10)},
		{ParquetKeyLastIndex, strconv.FormatUint(m.LastIndex, 10)},
	}
	for _, p := range kv {
		e.w.SetKeyValueMetadata(p[0], p[1])
	}
	return e.w.Close()
}
