package bench

import (
	"bytes"

	"github.com/valyala/fastjson"
)

// AckParser reads the collector's answers. The shapes it understands:
//
//   - a single event: {"status":"success","event_id":"<uuid>",...};
//   - a batch: {"results":[{"index":0,"status":"success","event_id":"..."},
//     {"index":1,"status":"error","message":"...","field":"..."}]} — "index"
//     optional (position is used), "status" optional (an event_id means
//     accepted) — or {"event_ids":["...",...]}, or a bare array of either
//     result objects or id strings;
//   - a pixel hit: any 2xx image/gif answer (the collector answers a GIF
//     whatever happens, so a pixel is counted but carries no event id).
//
// It is not safe for concurrent use; the ids it returns alias its buffers and
// the response body and are valid until the next call.
type AckParser struct {
	p   fastjson.Parser
	ids [][]byte
}

// AckResult is what one response acknowledged.
type AckResult struct {
	Accepted int      // events the collector says it stored
	Refused  int      // events it answered for and did not store (n - Accepted when the answer is unreadable)
	IDs      [][]byte // per event position: its event_id, or nil when refused or not given (pixels)
}

var gifType = []byte("image/gif")

// Parse reads the answer to a request that carried n events of kind k.
func (a *AckParser) Parse(k Kind, status int, contentType, body []byte, n int) AckResult {
	a.ids = a.ids[:0]
	for i := 0; i < n; i++ {
		a.ids = append(a.ids, nil)
	}
	res := AckResult{IDs: a.ids}
	if status < 200 || status > 299 {
		res.Refused = n
		return res
	}
	if k == KindPixel {
		if bytes.HasPrefix(contentType, gifType) {
			res.Accepted = n
		} else {
			res.Refused = n
		}
		return res
	}
	v, err := a.p.ParseBytes(body)
	if err != nil {
		res.Refused = n
		return res
	}
	switch v.Type() {
	case fastjson.TypeObject:
		if results := v.Get("results"); results != nil && results.Type() == fastjson.TypeArray {
			a.fromArray(results, &res)
		} else if ids := v.Get("event_ids"); ids != nil && ids.Type() == fastjson.TypeArray {
			a.fromArray(ids, &res)
		} else if n == 1 {
			if id, ok := acceptedID(v); ok {
				res.IDs[0] = id
				res.Accepted = 1
			}
		}
	case fastjson.TypeArray:
		a.fromArray(v, &res)
	}
	res.Refused = n - res.Accepted
	return res
}

func (a *AckParser) fromArray(arr *fastjson.Value, res *AckResult) {
	items, _ := arr.Array()
	for pos, item := range items {
		idx := pos
		var id []byte
		ok := false
		switch item.Type() {
		case fastjson.TypeString:
			id, _ = item.StringBytes()
			ok = len(id) > 0
		case fastjson.TypeObject:
			if iv := item.Get("index"); iv != nil && iv.Type() == fastjson.TypeNumber {
				idx = iv.GetInt()
			}
			id, ok = acceptedID(item)
		}
		if !ok || idx < 0 || idx >= len(res.IDs) || res.IDs[idx] != nil {
			continue
		}
		res.IDs[idx] = id
		res.Accepted++
	}
}

// acceptedID returns the event_id of a result object whose status (if any)
// says success.
func acceptedID(o *fastjson.Value) ([]byte, bool) {
	if st := o.Get("status"); st != nil {
		s, _ := st.StringBytes()
		if !bytes.Equal(s, []byte("success")) && !bytes.Equal(s, []byte("ok")) && !bytes.Equal(s, []byte("accepted")) {
			return nil, false
		}
	}
	idv := o.Get("event_id")
	if idv == nil {
		return nil, false
	}
	id, err := idv.StringBytes()
	if err != nil || len(id) == 0 {
		return nil, false
	}
	return id, true
}
