package export

import (
	"io"
	"strconv"
)

// flushBytes is how much encoded text is gathered before it is handed to the
// compressor or the destination: large enough to amortize the call, small
// enough to be irrelevant to memory.
const flushBytes = 64 << 10

type jsonEncoder struct {
	out      io.Writer
	envelope bool
	buf      []byte
	started  bool
}

func newJSONEncoder(out io.Writer, envelope bool, meta *Metadata) *jsonEncoder {
	e := &jsonEncoder{out: out, envelope: envelope, buf: make([]byte, 0, flushBytes+4096)}
	if envelope {
		e.buf = appendEnvelopeHead(e.buf, meta)
	}
	return e
}

// appendEnvelopeHead writes the seed's export_metadata, then opens "events".
func appendEnvelopeHead(dst []byte, m *Metadata) []byte {
	dst = append(dst, `{"export_metadata":{"export_id":`...)
	dst = appendJSONString(dst, m.ExportID)
	dst = append(dst, `,"export_time":"`...)
	dst = appendTime(dst, m.ExportTime)
	dst = append(dst, `","event_count":`...)
	dst = strconv.AppendInt(dst, int64(m.EventCount), 10)
	dst = append(dst, `,"time_range":{"start":"`...)
	dst = appendTime(dst, m.Start)
	dst = append(dst, `","end":"`...)
	dst = appendTime(dst, m.End)
	return append(dst, `"}},"events":[`...)
}

func (e *jsonEncoder) write(r *Row) error {
	e.buf = e.appendSeparator(e.buf)
	e.buf = appendEventObject(e.buf, r)
	return e.finishObject()
}

// writeObject writes an event object a RecordPreparer transcoded.
func (e *jsonEncoder) writeObject(obj []byte) error {
	e.buf = append(e.appendSeparator(e.buf), obj...)
	return e.finishObject()
}

func (e *jsonEncoder) appendSeparator(dst []byte) []byte {
	if !e.envelope {
		return dst
	}
	if e.started {
		return append(dst, ',', '\n')
	}
	return append(dst, '\n')
}

func (e *jsonEncoder) finishObject() error {
	e.started = true
	if !e.envelope {
		e.buf = append(e.buf, '\n')
	}
	if len(e.buf) >= flushBytes {
		return e.flush()
	}
	return nil
}

func (e *jsonEncoder) flush() error {
	if len(e.buf) == 0 {
		return nil
	}
	_, err := e.out.Write(e.buf)
	e.buf = e.buf[:0]
	return err
}

func (e *jsonEncoder) close(int) error {
	if e.envelope {
		if e.started {
			e.buf = append(e.buf, '\n')
		}
		e.buf = append(e.buf, "]}\n"...)
	}
	return e.flush()
}

// appendEventObject appends the export event object of r: every key, always,
// in the documented order, so that consumers see one stable schema.
func appendEventObject(dst []byte, r *Row) []byte {
	ev := r.Event
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, r.ID, 10)
	dst = append(dst, `,"event_id":`...)
	dst = appendJSONString(dst, ev.EventID)
	dst = append(dst, `,"event_type":`...)
	dst = appendJSONString(dst, ev.EventType)
	dst = append(dst, `,"session_id":`...)
	dst = appendJSONString(dst, ev.SessionID)
	dst = append(dst, `,"visitor_id":`...)
	dst = appendJSONString(dst, ev.VisitorID)
	dst = append(dst, `,"site_id":`...)
	dst = appendJSONString(dst, ev.SiteID)
	dst = append(dst, `,"timestamp":"`...)
	dst = appendTime(dst, ev.Timestamp)
	dst = append(dst, `","url":`...)
	dst = appendJSONString(dst, ev.URL)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, ev.Path)
	dst = append(dst, `,"raw_event_data":`...)
	dst = appendRaw(dst, ev.Raw)
	dst = append(dst, `,"received_at":"`...)
	dst = appendTime(dst, ev.ReceivedAt)
	dst = append(dst, `","referrer":`...)
	dst = appendJSONString(dst, ev.Referrer)
	dst = append(dst, `,"ip_address":`...)
	dst = appendJSONString(dst, ev.IPAddress)
	dst = append(dst, `,"user_agent":`...)
	dst = appendJSONString(dst, ev.UserAgent)
	dst = append(dst, `,"node_id":`...)
	dst = appendJSONString(dst, ev.NodeID)
	return append(dst, '}')
}
