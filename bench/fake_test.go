package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
)

// fakeCollector mimics the collector's HTTP API in process: it parses what
// the generator sends, keeps each event (as the collector keeps raw_event_data)
// and answers in the collector's shapes. Knobs let tests lose or duplicate
// events behind the answer's back.
type fakeCollector struct {
	mu     sync.Mutex
	events []fakeStored
	// loseEvery > 0: every n-th accepted event is answered but not kept.
	loseEvery int
	// dupEvery > 0: every n-th accepted event is kept twice.
	dupEvery int
	// refuseEvery > 0: every n-th request is answered 503.
	refuseEvery int
	requests    int
	count       int
	bad         int // requests it could not parse
}

type fakeStored struct {
	EventID string
	Raw     map[string]any
}

func (f *fakeCollector) keep(raw map[string]any) string {
	id := uuid.Must(uuid.NewV7()).String()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if f.loseEvery > 0 && f.count%f.loseEvery == 0 {
		return id
	}
	f.events = append(f.events, fakeStored{id, raw})
	if f.dupEvery > 0 && f.count%f.dupEvery == 0 {
		f.events = append(f.events, fakeStored{id, raw})
	}
	return id
}

func (f *fakeCollector) handle(ctx *fasthttp.RequestCtx) {
	f.mu.Lock()
	f.requests++
	refuse := f.refuseEvery > 0 && f.requests%f.refuseEvery == 0
	f.mu.Unlock()
	if refuse {
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetStatusCode(503)
		ctx.SetBodyString(`{"status":"error","message":"WAL full","field":""}`)
		return
	}
	switch string(ctx.Path()) {
	case "/pixel.gif":
		raw := map[string]any{}
		ctx.QueryArgs().VisitAll(func(k, v []byte) { raw[string(k)] = string(v) })
		if raw["eventType"] != nil {
			f.keep(raw)
		}
		ctx.SetContentType("image/gif")
		ctx.SetBody(gif1x1)
	case "/collect":
		body := ctx.PostBody()
		ctx.SetContentType("application/json")
		if bytes.HasPrefix(body, []byte("[")) {
			var evs []map[string]any
			if err := json.Unmarshal(body, &evs); err != nil {
				f.bad++
				ctx.SetStatusCode(400)
				ctx.SetBodyString(`{"status":"error","message":"malformed JSON","field":""}`)
				return
			}
			type result struct {
				Index   int    `json:"index"`
				Status  string `json:"status"`
				EventID string `json:"event_id,omitempty"`
			}
			res := make([]result, len(evs))
			for i, e := range evs {
				res[i] = result{Index: i, Status: "success", EventID: f.keep(e)}
			}
			out, _ := json.Marshal(map[string]any{"status": "success", "results": res})
			ctx.SetBody(out)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			f.bad++
			ctx.SetStatusCode(400)
			ctx.SetBodyString(`{"status":"error","message":"malformed JSON","field":""}`)
			return
		}
		id := f.keep(ev)
		ctx.SetBodyString(`{"status":"success","message":"Event received and stored","event_id":"` + id + `","timestamp":"2025-06-22T12:00:00.123Z"}`)
	default:
		ctx.SetStatusCode(404)
	}
}

// source returns a verification Source over what the fake kept.
func (f *fakeCollector) source() Source { return fakeSource{f} }

type fakeSource struct{ f *fakeCollector }

func (s fakeSource) Name() string { return "fake" }

func (s fakeSource) Events(ctx context.Context, runs []string, fn func(StoredEvent) error) error {
	s.f.mu.Lock()
	evs := append([]fakeStored(nil), s.f.events...)
	s.f.mu.Unlock()
	for i, e := range evs {
		run, _ := e.Raw["bench_run"].(string)
		if !slices.Contains(runs, run) {
			continue
		}
		bench, _ := e.Raw["bench_id"].(string)
		if err := fn(StoredEvent{EventID: e.EventID, BenchID: bench, Where: "#" + strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	return ctx.Err()
}
