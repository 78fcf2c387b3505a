package ingest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/httpapi"
	"github.com/google/uuid"
)

// The seed README's examples, verbatim.
const (
	seedPageview = `{
  "eventType": "pageview",
  "sessionId": "sess_abc123",
  "visitorId": "vis_xyz789", 
  "siteId": "example-com",
  "timestamp": "2025-06-22T12:00:00Z",
  "url": "https://example.com/page",
  "path": "/page",
  "attribution": {
    "utmParams": {
      "utm_source": "google",
      "utm_medium": "cpc"
    }
  }
}`
	seedCurlTest = `{
    "eventType": "test",
    "sessionId": "test_session", 
    "visitorId": "test_visitor",
    "siteId": "localhost"
  }`
)

var answerTimestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// checkSeedSuccess asserts the seed's success answer, exactly: four keys,
// a UUIDv7 event_id and an RFC 3339 millisecond UTC timestamp.
func checkSeedSuccess(t *testing.T, r response) string {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	want := []string{"event_id", "message", "status", "timestamp"}
	if len(r.decoded) != len(want) {
		t.Fatalf("answer has keys %v, want exactly %v: %s", keys(r.decoded), want, r.body)
	}
	if r.decoded["status"] != "success" || r.decoded["message"] != "Event received and stored" {
		t.Fatalf("answer %s", r.body)
	}
	id, err := uuid.Parse(fmt.Sprint(r.decoded["event_id"]))
	if err != nil || id.Version() != 7 {
		t.Fatalf("event_id %v is not a UUIDv7 (%v)", r.decoded["event_id"], err)
	}
	if ts := fmt.Sprint(r.decoded["timestamp"]); !answerTimestamp.MatchString(ts) {
		t.Fatalf("timestamp %q is not RFC 3339 with ms in UTC", ts)
	}
	if !strings.HasPrefix(string(r.body), `{"status":"success","message":"Event received and stored","event_id":"`) {
		t.Fatalf("answer does not keep the seed's key order: %s", r.body)
	}
	return id.String()
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCollectAcceptsSeedExamples(t *testing.T) {
	h := newHarness(t)
	before := time.Now().UTC()
	id := checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: "application/json", body: seedPageview,
		headers: map[string]string{"User-Agent": "Mozilla/5.0 test", "Origin": "https://example.com", "Referer": "https://example.com/page"}}))
	id2 := checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: "application/json", body: seedCurlTest}))

	evs := h.app.events(t)
	if len(evs) != 2 {
		t.Fatalf("stored %d events, want 2", len(evs))
	}
	e := evs[0]
	if e.EventID != id || evs[1].EventID != id2 {
		t.Fatalf("stored ids %s, %s; answered %s, %s", e.EventID, evs[1].EventID, id, id2)
	}
	wantTS := time.Date(2025, 6, 22, 12, 0, 0, 0, time.UTC)
	checks := []struct{ name, got, want string }{
		{"event_type", e.EventType, "pageview"}, {"session_id", e.SessionID, "sess_abc123"},
		{"visitor_id", e.VisitorID, "vis_xyz789"}, {"site_id", e.SiteID, "example-com"},
		{"url", e.URL, "https://example.com/page"}, {"path", e.Path, "/page"},
		{"timestamp", e.Timestamp.String(), wantTS.String()}, {"timestamp_status", e.TimestampStatus, event.TimestampOK},
		{"user_agent", e.UserAgent, "Mozilla/5.0 test"}, {"origin", e.Origin, "https://example.com"},
		{"referrer (from Referer)", e.Referrer, "https://example.com/page"}, {"node_id", e.NodeID, "node-test"},
		{"ip_address", e.IPAddress, "0.0.0.0"}, // the in-memory listener's anonymous peer
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if e.ReceivedAt.Before(before.Add(-time.Second)) || e.ReceivedAt.After(time.Now().Add(time.Second)) || e.ReceivedAt.Nanosecond()%1000 != 0 {
		t.Errorf("received_at %v is not the receive time in µs", e.ReceivedAt)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	_ = json.Unmarshal([]byte(seedPageview), &sent)
	if fmt.Sprint(raw) != fmt.Sprint(sent) {
		t.Errorf("raw event changed:\n got %v\nwant %v", raw, sent)
	}
	if strings.ContainsAny(string(e.Raw), "\n ") && !strings.Contains(string(e.Raw), `"url"`) {
		t.Errorf("raw event not compact: %s", e.Raw)
	}
	if evs[1].TimestampStatus != event.TimestampMissing || !evs[1].Timestamp.Equal(evs[1].ReceivedAt) {
		t.Errorf("event without timestamp: status %q timestamp %v received %v", evs[1].TimestampStatus, evs[1].Timestamp, evs[1].ReceivedAt)
	}
}

func TestCollectAcceptsContentTypes(t *testing.T) {
	h := newHarness(t)
	body := `{"eventType":"pageview","siteId":"example-com"}`
	cases := []struct {
		name, contentType, body string
	}{
		{"application/json", "application/json", body},
		{"json with charset", "application/json; charset=utf-8", body},
		{"text/plain from sendBeacon", "text/plain;charset=UTF-8", body},
		{"no Content-Type", "", body},
		{"unexpected type read as JSON", "application/octet-stream", body},
		{"urlencoded form", "application/x-www-form-urlencoded", "eventType=pageview&siteId=example-com&utm_source=news"},
		{"JSON labelled as a form (curl -d)", "application/x-www-form-urlencoded", body},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: c.contentType, body: c.body}))
			evs := h.app.events(t)
			if len(evs) != i+1 || evs[i].EventType != "pageview" || evs[i].SiteID != "example-com" {
				t.Fatalf("stored %+v", evs)
			}
		})
	}
}

func TestCollectRefusesWithFieldNames(t *testing.T) {
	h := newHarness(t, func(o *Options, ho *httpapi.Options) { o.MaxBodyBytes = 4096; ho.MaxBodyBytes = 4096 })
	long := strings.Repeat("x", 300)
	cases := []struct {
		name        string
		method, uri string
		contentType string
		body        string
		status      int
		field       string
		message     string // substring
	}{
		{"malformed JSON", "", "/collect", "application/json", `{"eventType":"pageview",`, 400, "body", "malformed JSON at byte"},
		{"trailing garbage", "", "/collect", "application/json", `{"eventType":"a","siteId":"b"} x`, 400, "body", "after the JSON value"},
		{"not an object", "", "/collect", "application/json", `"pageview"`, 400, "body", "JSON object"},
		{"empty body", "", "/collect", "application/json", ``, 400, "body", "empty body"},
		{"blank body", "", "/collect", "text/plain", "  \n ", 400, "body", "empty body"},
		{"missing eventType", "", "/collect", "application/json", `{"siteId":"example-com"}`, 400, "eventType", "eventType is required"},
		{"blank eventType", "", "/collect", "application/json", `{"eventType":"  ","siteId":"example-com"}`, 400, "eventType", "required"},
		{"eventType not a string", "", "/collect", "application/json", `{"eventType":{"a":1},"siteId":"example-com"}`, 400, "eventType", "must be a string"},
		{"eventType too long", "", "/collect", "application/json", `{"eventType":"` + long + `","siteId":"s"}`, 400, "eventType", "longer than 128"},
		{"eventType control chars", "", "/collect", "application/json", `{"eventType":"a\u0001b","siteId":"s"}`, 400, "eventType", "control"},
		{"missing siteId", "", "/collect", "application/json", `{"eventType":"pageview"}`, 400, "siteId", "siteId is required"},
		{"null siteId", "", "/collect", "application/json", `{"eventType":"pageview","siteId":null}`, 400, "siteId", "required"},
		{"siteId with slash", "", "/collect", "application/json", `{"eventType":"pageview","siteId":"a/b"}`, 400, "siteId", "A-Z a-z 0-9"},
		{"siteId dot-dot", "", "/collect", "application/json", `{"eventType":"pageview","siteId":".."}`, 400, "siteId", "A-Z"},
		{"siteId too long", "", "/collect", "application/json", `{"eventType":"pageview","siteId":"` + long[:129] + `"}`, 400, "siteId", "1-128"},
		{"siteId a bool", "", "/collect", "application/json", `{"eventType":"pageview","siteId":true}`, 400, "siteId", "must be a string"},
		{"sessionId too long", "", "/collect", "application/json", `{"eventType":"p","siteId":"s","sessionId":"` + long + `"}`, 400, "sessionId", "longer than 256"},
		{"visitorId an array", "", "/collect", "application/json", `{"eventType":"p","siteId":"s","visitorId":[1]}`, 400, "visitorId", "must be a string"},
		{"body over MAX_BODY_BYTES", "", "/collect", "application/json", `{"eventType":"p","siteId":"s","x":"` + strings.Repeat("y", 5000) + `"}`, 413, "body", "MAX_BODY_BYTES"},
		{"batch over MAX_BATCH_EVENTS", "", "/collect", "application/json", "[" + strings.TrimSuffix(strings.Repeat(`{"eventType":"p","siteId":"s"},`, 11), ",") + "]", 413, "events", "MAX_BATCH_EVENTS is 10"},
		{"empty batch", "", "/collect", "application/json", `[]`, 400, "events", "batch is empty"},
		{"events not an array", "", "/collect", "application/json", `{"events":{"eventType":"p"}}`, 400, "events", "must be an array"},
		{"multipart without fields", "", "/collect", "multipart/form-data; boundary=x", "--x--\r\n", 400, "eventType", "required"},
		{"multipart without boundary", "", "/collect", "multipart/form-data", "--x--\r\n", 400, "body", "multipart"},
		{"PUT /collect", "PUT", "/collect", "application/json", `{}`, 405, "method", "not allowed"},
		{"DELETE /pixel.gif", "DELETE", "/pixel.gif", "", "", 405, "method", "not allowed"},
		{"POST /pixel.gif", "POST", "/pixel.gif", "application/json", seedCurlTest, 405, "method", "not allowed"},
		{"unknown path", "GET", "/collectx", "", "", 404, "path", "no such endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(request{method: c.method, uri: c.uri, contentType: c.contentType, body: c.body})
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if r.decoded["status"] != "error" || r.decoded["field"] != c.field || !strings.Contains(fmt.Sprint(r.decoded["message"]), c.message) {
				t.Fatalf("answer %s; want field %q and message containing %q", r.body, c.field, c.message)
			}
			if c.status == 405 && !strings.Contains(r.header["Allow"], "OPTIONS") {
				t.Fatalf("405 without a usable Allow header: %q", r.header["Allow"])
			}
		})
	}
	if n := len(h.app.events(t)); n != 0 {
		t.Fatalf("refused requests stored %d events", n)
	}
}

func TestCollectBatchReportsBadEventsByIndex(t *testing.T) {
	h := newHarness(t)
	body := `[
		{"eventType":"pageview","siteId":"example-com","sessionId":"s1"},
		{"eventType":"pageview"},
		"not an object",
		{"eventType":"click","siteId":"example-com","sessionId":"s2"}
	]`
	r := h.do(request{uri: "/collect", contentType: "application/json", body: body})
	if r.status != 207 || r.decoded["status"] != "partial" || r.decoded["accepted"] != 2.0 || r.decoded["rejected"] != 2.0 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	results := r.decoded["results"].([]any)
	if len(results) != 4 {
		t.Fatalf("results %v", results)
	}
	want := []struct{ status, field, message string }{
		{"success", "", ""}, {"error", "siteId", "siteId is required"}, {"error", "", "must be a JSON object"}, {"success", "", ""},
	}
	var ids []string
	for i, w := range want {
		res := results[i].(map[string]any)
		if res["index"] != float64(i) || res["status"] != w.status {
			t.Fatalf("result %d: %v", i, res)
		}
		if w.status == "success" {
			ids = append(ids, fmt.Sprint(res["event_id"]))
			continue
		}
		if res["field"] != w.field || !strings.Contains(fmt.Sprint(res["message"]), w.message) {
			t.Fatalf("result %d: %v, want field %q message %q", i, res, w.field, w.message)
		}
	}
	if h.app.callCount() != 1 {
		t.Fatalf("%d Append calls for one batch, want 1", h.app.callCount())
	}
	evs := h.app.events(t)
	if len(evs) != 2 || evs[0].EventID != ids[0] || evs[1].EventID != ids[1] || evs[0].SessionID != "s1" || evs[1].SessionID != "s2" {
		t.Fatalf("stored %+v, answered ids %v", evs, ids)
	}
	if got := h.metric("collector_events_rejected_total", map[string]string{"reason": "invalid_event"}); got != 2 {
		t.Fatalf("rejected invalid_event = %v, want 2", got)
	}
}

func TestCollectBatchShapes(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, body       string
		status           int
		label            string
		accepted, stored int
	}{
		{"array all valid", `[{"eventType":"a","siteId":"s"},{"eventType":"b","siteId":"s"}]`, 200, "success", 2, 2},
		{"envelope", `{"events":[{"eventType":"a","siteId":"s"},{"eventType":"b","siteId":"s"},{"eventType":"c","siteId":"s"}]}`, 200, "success", 3, 3},
		{"batch of one", `[{"eventType":"a","siteId":"s"}]`, 200, "success", 1, 1},
		{"none valid", `[{"siteId":"s"},{"eventType":"b"}]`, 400, "error", 0, 0},
		// An object with eventType is one event even if it has an "events" field.
		{"event with an events field", `{"eventType":"a","siteId":"s","events":[1,2]}`, 200, "", 1, 1},
	}
	stored := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(request{uri: "/collect", contentType: "application/json", body: c.body})
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.label == "" {
				checkSeedSuccess(t, r)
			} else if r.decoded["status"] != c.label || r.decoded["accepted"] != float64(c.accepted) {
				t.Fatalf("answer %s", r.body)
			}
			if c.label == "error" && r.decoded["field"] != "events" {
				t.Fatalf("error answer without field: %s", r.body)
			}
			stored += c.stored
			if got := len(h.app.events(t)); got != stored {
				t.Fatalf("stored %d events in total, want %d", got, stored)
			}
		})
	}
}

func TestCollectTakesQueryParameters(t *testing.T) {
	h := newHarness(t)
	checkSeedSuccess(t, h.do(request{
		uri: "/collect?eventType=pageview&siteId=example-com&sessionId=sess_1&visitorId=vis_1&url=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1&timestamp=1750593600000&utm_source=google&utm_medium=cpc&custom=x&custom=y",
	}))
	evs := h.app.events(t)
	if len(evs) != 1 {
		t.Fatalf("stored %d", len(evs))
	}
	e := evs[0]
	if e.EventType != "pageview" || e.SiteID != "example-com" || e.SessionID != "sess_1" || e.VisitorID != "vis_1" ||
		e.URL != "https://example.com/a?b=1" || e.Path != "/a" {
		t.Fatalf("event %+v", e)
	}
	if want := time.UnixMilli(1750593600000).UTC(); !e.Timestamp.Equal(want) || e.TimestampStatus != "" {
		t.Fatalf("timestamp %v (%q), want %v", e.Timestamp, e.TimestampStatus, want)
	}
	var raw struct {
		EventType   string `json:"eventType"`
		Custom      string `json:"custom"`
		UTMSource   string `json:"utm_source"`
		Attribution struct {
			UTMParams map[string]string `json:"utmParams"`
		} `json:"attribution"`
	}
	if err := json.Unmarshal(e.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.EventType != "pageview" || raw.Custom != "x" || raw.UTMSource != "" ||
		raw.Attribution.UTMParams["utm_source"] != "google" || raw.Attribution.UTMParams["utm_medium"] != "cpc" {
		t.Fatalf("raw %s", e.Raw)
	}
}

func TestCollectNormalizesFields(t *testing.T) {
	h := newHarness(t)
	longURL := "https://example.com/" + strings.Repeat("é", 5000) // 10 000 bytes
	body := fmt.Sprintf(`{"eventType":" pageview ","siteId":"s","url":%q,"referrer":"https://google.com/","visitorId":12345,"sessionId":null,"x":"a\u0000b\ud800c"}`, longURL)
	checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: "application/json", body: body,
		headers: map[string]string{"Referer": "https://ignored.example/"}}))
	e := h.app.events(t)[0]
	if e.EventType != "pageview" {
		t.Errorf("event_type %q not trimmed", e.EventType)
	}
	if len(e.URL) > maxURLBytes || !strings.HasPrefix(e.URL, "https://example.com/é") || strings.ContainsRune(e.URL, '\uFFFD') {
		t.Errorf("url not cut at a character boundary within %d bytes: len %d", maxURLBytes, len(e.URL))
	}
	if len(e.Path) > maxPathBytes || !strings.HasPrefix(e.Path, "/é") {
		t.Errorf("path not derived from url and capped: len %d", len(e.Path))
	}
	if e.Referrer != "https://google.com/" {
		t.Errorf("referrer %q: the event's field must win over the header", e.Referrer)
	}
	if e.VisitorID != "12345" || e.SessionID != "" {
		t.Errorf("visitor %q session %q", e.VisitorID, e.SessionID)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["x"] != "ab\uFFFDc" {
		t.Errorf("raw x = %q: NUL must be dropped, a lone surrogate replaced", raw["x"])
	}
	if raw["url"] != longURL {
		t.Error("raw event must keep the whole url")
	}
}
