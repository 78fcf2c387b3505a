package ingest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"slices"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/valyala/fasthttp"
)

// reqState is the memory one request works in, pooled so that the accept
// path allocates (almost) nothing.
type reqState struct {
	start time.Time
	info  requestInfo

	canon      []byte      // canonical JSON of the body (or the object built from query parameters)
	valueSpans []valueSpan // the places of canon's values near its top
	spans      []eventSpan // the events' places in canon
	scratch    []byte      // text of numeric fields
	ipBuf      []byte
	kvs        []keyValue // query parameters, first occurrence of each key
	form       fasthttp.Args

	ev       event.Event
	items    []item // one per event in the request, in order
	accepted int
	rec      []byte   // the accepted events' WAL records, back to back
	recEnds  []int    // where each record ends in rec
	records  [][]byte // slices of rec handed to Append
	resp     []byte

	// Random bits for event ids, read from crypto/rand a few hundred at a
	// time instead of one syscall per id; idBits holds one id's.
	random  *bufio.Reader
	idBits  [8]byte
	eventID *eventIDs // the Handler's id generator, shared by every request
}

// item is the outcome for one event of the request.
type item struct {
	ok      bool
	id      [36]byte // event_id when ok
	field   string
	message string
}

type keyValue struct{ key, value []byte }

func newReqState(ids *eventIDs) *reqState {
	return &reqState{random: bufio.NewReaderSize(rand.Reader, 1024), eventID: ids}
}

// maxPooledBytes: a state that grew beyond this for one huge batch is not
// kept, so the pool does not pin that memory.
const maxPooledBytes = 4 << 20

func (st *reqState) reset() {
	st.info = requestInfo{}
	st.ev = event.Event{}
	st.spans = st.spans[:0]
	st.valueSpans = st.valueSpans[:0]
	st.scratch = st.scratch[:0]
	clear(st.kvs)
	st.kvs = st.kvs[:0]
	st.form.Reset()
	clear(st.items)
	st.items = st.items[:0]
	st.accepted = 0
	st.rec = st.rec[:0]
	st.recEnds = st.recEnds[:0]
	clear(st.records)
	st.records = st.records[:0]
}

func (st *reqState) tooBigToPool() bool {
	return cap(st.canon)+cap(st.rec)+cap(st.resp) > maxPooledBytes || cap(st.items) > 4096
}

// addEvent normalizes one event of canon and, if it is valid, encodes its
// WAL record.
func (st *reqState) addEvent(canon []byte, ev eventSpan) {
	st.items = append(st.items, item{})
	it := &st.items[len(st.items)-1]
	elem := canon[ev.val.start:ev.val.end]
	if len(elem) == 0 || elem[0] != '{' {
		it.message = "event must be a JSON object"
		return
	}
	st.scratch = st.scratch[:0]
	if fe := st.normalize(canon, membersOf(canon, ev), &st.ev, &st.info); fe.message != "" {
		it.field, it.message = fe.field, fe.message
		return
	}
	id, err := st.eventID.newID(st.info.received, st.random, &st.idBits)
	if err != nil {
		it.message = "cannot generate an event id"
		return
	}
	encodeUUID(&it.id, id)
	st.ev.EventID = bytesAsString(it.id[:])
	st.ev.Raw = elem
	st.rec = event.AppendRecord(st.rec, &st.ev)
	st.recEnds = append(st.recEnds, len(st.rec))
	st.ev = event.Event{}
	it.ok = true
	st.accepted++
}

// buildRecords slices rec into the records for Append. Capacity is capped so
// that an Appender appending to one record cannot overwrite the next.
func (st *reqState) buildRecords() [][]byte {
	prev := 0
	for _, end := range st.recEnds {
		st.records = append(st.records, st.rec[prev:end:end])
		prev = end
	}
	return st.records
}

// addArgsEvent builds one event from query (or urlencoded form) parameters.
func (st *reqState) addArgsEvent(args *fasthttp.Args) {
	args.VisitAll(st.addKeyValue)
	st.addKeyValuesEvent()
}

// addFormValuesEvent builds one event from multipart form fields (files are
// ignored), in key order since a map has none.
func (st *reqState) addFormValuesEvent(values map[string][]string) {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v := values[k]; len(v) > 0 {
			st.addKeyValue([]byte(k), []byte(v[0]))
		}
	}
	st.addKeyValuesEvent()
}

// addKeyValue keeps the first occurrence of each non-empty key.
func (st *reqState) addKeyValue(k, v []byte) {
	if len(k) == 0 {
		return
	}
	for _, kv := range st.kvs {
		if bytes.Equal(kv.key, k) {
			return
		}
	}
	st.kvs = append(st.kvs, keyValue{k, v})
}

// addKeyValuesEvent builds the event of st.kvs. Its raw object holds every
// parameter as a string, except utm_* parameters, which go to
// attribution.utmParams as the seed's JSON events carry them.
func (st *reqState) addKeyValuesEvent() {
	hasUTM := false
	for _, kv := range st.kvs {
		if isUTMParam(kv.key) {
			hasUTM = true
			break
		}
	}
	b := append(st.canon[:0], '{')
	n := 0
	for _, kv := range st.kvs {
		if isUTMParam(kv.key) || (hasUTM && string(kv.key) == "attribution") {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendCanonicalText(b, kv.key)
		b = append(b, ':')
		b = appendCanonicalText(b, kv.value)
		n++
	}
	if hasUTM {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `"attribution":{"utmParams":{`...)
		m := 0
		for _, kv := range st.kvs {
			if !isUTMParam(kv.key) {
				continue
			}
			if m > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalText(b, kv.key)
			b = append(b, ':')
			b = appendCanonicalText(b, kv.value)
			m++
		}
		b = append(b, "}}"...)
	}
	b = append(b, '}')
	st.canon = b
	st.addEvent(b, eventSpan{val: span{0, len(b)}, level: 0, scan: true})
}

func isUTMParam(k []byte) bool { return len(k) > 4 && string(k[:4]) == "utm_" }

func encodeUUID(dst *[36]byte, u [16]byte) {
	const hex = "0123456789abcdef"
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
}
