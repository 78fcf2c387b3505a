package httpapi

import "testing"

func TestCORSHeaders(t *testing.T) {
	routes := []Route{{Method: "POST", Path: "/collect", Handler: okHandler}, {Method: "GET", Path: "/collect", Handler: okHandler}}
	dev := serve(t, Options{Environment: "development", CORSAllowedOrigins: []string{"*"}}, routes)
	listed := serve(t, Options{Environment: "production", CORSAllowedOrigins: []string{"https://shop.example", "https://Blog.Example:8443"}}, routes)
	none := serve(t, Options{}, routes)
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
	}
	cases := []struct {
		name       string
		ts         *testServer
		method     string
		headers    map[string]string
		status     int
		wantOrigin string // "" = no Access-Control-Allow-Origin
	}{
		{"dev * echoes any origin", dev, "POST", map[string]string{"Origin": "https://anything.test"}, 200, "https://anything.test"},
		{"dev * without Origin", dev, "POST", nil, 200, ""},
		{"listed origin", listed, "POST", map[string]string{"Origin": "https://shop.example"}, 200, "https://shop.example"},
		{"listed origin, case differs", listed, "GET", map[string]string{"Origin": "https://blog.example:8443"}, 200, "https://blog.example:8443"},
		{"disallowed origin", listed, "POST", map[string]string{"Origin": "https://evil.example"}, 200, ""},
		{"lookalike origin", listed, "POST", map[string]string{"Origin": "https://shop.example.evil"}, 200, ""},
		{"port must match", listed, "POST", map[string]string{"Origin": "https://blog.example"}, 200, ""},
		{"no origins configured", none, "POST", map[string]string{"Origin": "https://shop.example"}, 200, ""},
		{"preflight allowed", listed, "OPTIONS", preflight("https://shop.example"), 204, "https://shop.example"},
		{"preflight dev", dev, "OPTIONS", preflight("http://localhost:3000"), 204, "http://localhost:3000"},
		{"preflight disallowed", listed, "OPTIONS", preflight("https://evil.example"), 403, ""},
		{"error answers carry CORS too", listed, "DELETE", map[string]string{"Origin": "https://shop.example"}, 405, "https://shop.example"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.ts.do(c.method, "/collect", c.headers, "")
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
			}
			if got := a.header["Access-Control-Allow-Origin"]; got != c.wantOrigin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, c.wantOrigin)
			}
			if a.header["Access-Control-Allow-Origin"] == "*" {
				t.Fatal("literal * sent")
			}
			if c.wantOrigin != "" && a.header["Access-Control-Allow-Credentials"] != "true" {
				t.Fatalf("allowed origin without Allow-Credentials: %v", a.header)
			}
			if a.header["Vary"] == "" {
				t.Fatal("no Vary header")
			}
			if c.method == "OPTIONS" && c.status == 204 {
				if a.header["Access-Control-Allow-Methods"] != "POST, GET, OPTIONS" ||
					a.header["Access-Control-Allow-Headers"] != "Content-Type, Authorization" ||
					a.header["Access-Control-Max-Age"] == "" || a.body != "" {
					t.Fatalf("preflight headers %v body %q", a.header, a.body)
				}
			}
			if c.status == 403 && !a.isError(403, "Origin") {
				t.Fatalf("refused preflight answer %s", a.body)
			}
		})
	}
	a := listed.do("OPTIONS", "/collect", map[string]string{"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Private-Network": "true"}, "")
	if a.header["Access-Control-Allow-Private-Network"] != "true" {
		t.Fatalf("private network preflight not allowed: %v", a.header)
	}
}
