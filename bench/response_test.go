package bench

import "testing"

func TestAckParserShapes(t *testing.T) {
	cases := []struct {
		name     string
		kind     Kind
		status   int
		ct, body string
		n        int
		accepted int
		ids      []string
	}{
		{"seed single", KindJSON, 200, "application/json", `{"status":"success","message":"Event received and stored","event_id":"550e8400-e29b-41d4-a716-446655440000","timestamp":"2025-06-22T12:00:00.123Z"}`, 1, 1, []string{"550e8400-e29b-41d4-a716-446655440000"}},
		{"error body on 200", KindJSON, 200, "application/json", `{"status":"error","message":"Event processing failed"}`, 1, 0, []string{""}},
		{"400", KindJSON, 400, "application/json", `{"status":"error","message":"eventType is required","field":"eventType"}`, 1, 0, []string{""}},
		{"503", KindBeacon, 503, "application/json", `{"status":"error","message":"WAL full","field":""}`, 1, 0, []string{""}},
		{"batch results with a bad event", KindBatch, 207, "application/json", `{"status":"partial","results":[{"index":0,"status":"success","event_id":"a"},{"index":1,"status":"error","message":"eventType is required","field":"eventType"},{"index":2,"status":"success","event_id":"c"}]}`, 3, 2, []string{"a", "", "c"}},
		{"batch results out of order", KindBatch, 200, "application/json", `{"results":[{"index":1,"event_id":"b"},{"index":0,"event_id":"a"}]}`, 2, 2, []string{"a", "b"}},
		{"batch event_ids", KindBatch, 200, "application/json", `{"status":"success","event_ids":["a","b"]}`, 2, 2, []string{"a", "b"}},
		{"bare array", KindBatch, 200, "application/json", `["a",{"event_id":"b","status":"success"}]`, 2, 2, []string{"a", "b"}},
		{"index out of range ignored", KindBatch, 200, "application/json", `{"results":[{"index":5,"event_id":"x"}]}`, 2, 0, []string{"", ""}},
		{"same index twice counted once", KindBatch, 200, "application/json", `{"results":[{"index":0,"event_id":"x"},{"index":0,"event_id":"y"}]}`, 2, 1, []string{"x", ""}},
		{"single ack for a batch is not n acks", KindBatch, 200, "application/json", `{"status":"success","event_id":"x"}`, 3, 0, []string{"", "", ""}},
		{"garbage", KindJSON, 200, "text/html", `<html>oops</html>`, 1, 0, []string{""}},
		{"pixel gif", KindPixel, 200, "image/gif", "GIF89a", 1, 1, []string{""}},
		{"pixel not a gif", KindPixel, 200, "text/html", "hi", 1, 0, []string{""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p AckParser
			res := p.Parse(c.kind, c.status, []byte(c.ct), []byte(c.body), c.n)
			if res.Accepted != c.accepted || res.Refused != c.n-c.accepted {
				t.Fatalf("accepted %d refused %d, want %d", res.Accepted, res.Refused, c.accepted)
			}
			for i, id := range c.ids {
				if string(res.IDs[i]) != id {
					t.Fatalf("id %d = %q, want %q", i, res.IDs[i], id)
				}
			}
		})
	}
}

func FuzzAckParser(f *testing.F) {
	f.Add(`{"status":"success","event_id":"a"}`, 1)
	f.Add(`{"results":[{"index":0,"event_id":"a"},{"index":-1}]}`, 3)
	f.Add(`["a",1,null,{"event_id":2}]`, 4)
	f.Fuzz(func(t *testing.T, body string, n int) {
		n = ((n % 600) + 600) % 600
		var p AckParser
		for _, k := range []Kind{KindJSON, KindBatch} {
			res := p.Parse(k, 200, []byte("application/json"), []byte(body), n)
			if res.Accepted < 0 || res.Accepted > n || res.Accepted+res.Refused != n || len(res.IDs) != n {
				t.Fatalf("accepted %d refused %d ids %d for n %d", res.Accepted, res.Refused, len(res.IDs), n)
			}
			got := 0
			for _, id := range res.IDs {
				if id != nil {
					got++
				}
			}
			if got != res.Accepted {
				t.Fatalf("%d ids for %d accepted", got, res.Accepted)
			}
		}
	})
}
