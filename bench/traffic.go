package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Kind is the shape of one request the generator sends.
type Kind uint8

const (
	KindJSON   Kind = iota // POST /collect, application/json, one event
	KindBeacon             // POST /collect, text/plain (navigator.sendBeacon), one event
	KindPixel              // GET /pixel.gif?..., one event from query parameters
	KindBatch              // POST /collect, a JSON array of events
	numKinds
)

var kindNames = [numKinds]string{"json", "beacon", "pixel", "batch"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Mix is the relative weight of each request kind.
type Mix [numKinds]int

// DefaultMix is what a typical site sends: mostly single JSON events, a fair
// share of beacons (page unloads) and pixels (no-JS, e-mail), some batches.
var DefaultMix = Mix{KindJSON: 60, KindBeacon: 15, KindPixel: 15, KindBatch: 10}

// ParseMix reads "json=60,beacon=15,pixel=15,batch=10". Kinds left out weigh 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	total := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("mix %q: want kind=weight", part)
		}
		k := -1
		for i, n := range kindNames {
			if n == strings.TrimSpace(name) {
				k = i
			}
		}
		if k < 0 {
			return m, fmt.Errorf("mix %q: unknown kind (want json, beacon, pixel or batch)", name)
		}
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 {
			return m, fmt.Errorf("mix %q: weight must be a non-negative integer", part)
		}
		m[k] = w
		total += w
	}
	if total == 0 {
		return m, errors.New("mix: all weights are zero")
	}
	return m, nil
}

func (m Mix) String() string {
	var b strings.Builder
	for k, w := range m {
		if w == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", kindNames[k], w)
	}
	return b.String()
}

// TrafficOptions shape the simulated population. Zero values take defaults.
type TrafficOptions struct {
	Sites           int           // distinct sites (200)
	SiteSkew        float64       // Zipf exponent of site popularity, > 1 (1.1)
	VisitorsPerSite int           // visitor population of each site (5000)
	VisitorSkew     float64       // Zipf exponent of visitor activity, > 1 (1.05)
	PagesPerSite    int           // distinct pages per site (60)
	SessionLength   time.Duration // a visitor's session changes this often (30s), so a run sees several sessions per visitor
	CustomShare     float64       // share of non-pixel events that are custom events rather than pageviews (0.3)
	BatchSize       int           // events per batch request (20)
	Mix             Mix           // request kinds (DefaultMix)
	RunID           string        // written into every event as bench_run; required
	Seed            uint64        // for reproducible traffic
}

func (o *TrafficOptions) withDefaults() {
	if o.Sites <= 0 {
		o.Sites = 200
	}
	if o.SiteSkew <= 1 {
		o.SiteSkew = 1.1
	}
	if o.VisitorsPerSite <= 0 {
		o.VisitorsPerSite = 5000
	}
	if o.VisitorSkew <= 1 {
		o.VisitorSkew = 1.05
	}
	if o.PagesPerSite <= 0 {
		o.PagesPerSite = 60
	}
	if o.SessionLength <= 0 {
		o.SessionLength = 30 * time.Second
	}
	if o.CustomShare < 0 || o.CustomShare > 1 {
		o.CustomShare = 0.3
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 20
	}
	if o.Mix == (Mix{}) {
		o.Mix = DefaultMix
	}
}

type page struct {
	path, title string
}

type site struct {
	id, host string
	pages    []page
}

// Traffic is the simulated population: immutable once built, shared by every
// generator.
type Traffic struct {
	opts     TrafficOptions
	sites    []site
	kindCum  [numKinds]int
	kindSum  int
	target   []byte // "http://127.0.0.1:8000"
	collect  []byte // target + "/collect"
	pixelURI []byte // target + "/pixel.gif?"
}

// NewTraffic builds the population for a collector at target (scheme://host:port).
func NewTraffic(target string, opts TrafficOptions) (*Traffic, error) {
	opts.withDefaults()
	if opts.RunID == "" {
		return nil, errors.New("traffic: RunID is required")
	}
	if strings.ContainsAny(opts.RunID, "\"\\&=?# \t\n") {
		return nil, fmt.Errorf("traffic: RunID %q must be a plain token", opts.RunID)
	}
	target = strings.TrimRight(target, "/")
	t := &Traffic{opts: opts, target: []byte(target)}
	t.collect = []byte(target + "/collect")
	t.pixelURI = []byte(target + "/pixel.gif?")
	for k, w := range opts.Mix {
		t.kindSum += w
		t.kindCum[k] = t.kindSum
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	t.sites = make([]site, opts.Sites)
	for i := range t.sites {
		word := siteWords[i%len(siteWords)]
		tld := siteTLDs[(i/len(siteWords))%len(siteTLDs)]
		id := word
		if i >= len(siteWords) {
			id = word + "-" + strconv.Itoa(i/len(siteWords))
		}
		s := site{id: id + strings.ReplaceAll(tld, ".", "-"), host: "www." + id + tld}
		s.pages = make([]page, opts.PagesPerSite)
		s.pages[0] = page{"/", titleWords[0]}
		for p := 1; p < len(s.pages); p++ {
			sec := sectionWords[r.IntN(len(sectionWords))]
			path := "/" + sec + "/"
			switch r.IntN(3) {
			case 0:
				path += slugWords[r.IntN(len(slugWords))]
			case 1:
				path += slugWords[r.IntN(len(slugWords))] + "-" + strconv.Itoa(r.IntN(9000)+100)
			default:
				path += strconv.Itoa(r.IntN(90000) + 10000)
			}
			s.pages[p] = page{path, titleWords[r.IntN(len(titleWords))]}
		}
		t.sites[i] = s
	}
	return t, nil
}

// Options returns the options with defaults filled in.
func (t *Traffic) Options() TrafficOptions { return t.opts }

// Sent describes the request a Generator just built.
type Sent struct {
	Kind      Kind
	FirstSeq  uint64 // bench sequence of the first event; the others follow consecutively
	Events    int
	SessionID []byte // session of every event in the request; valid until the next call
}

// Generator builds requests. One per worker goroutine: it is not safe for
// concurrent use, and it reuses its buffers so that building a request does
// not allocate.
type Generator struct {
	t           *Traffic
	rng         *rand.Rand
	siteZipf    *rand.Zipf
	visitorZipf *rand.Zipf
	pageZipf    *rand.Zipf
	seq         *atomic.Uint64

	body    []byte
	uri     []byte
	scratch []byte
	xff     []byte
	origin  []byte
	pageURL []byte
	session []byte

	// current visitor, chosen per request
	site      *site
	visitor   uint64
	sessionNo uint64
	uaIndex   int
}

// NewGenerator returns a generator whose random stream is derived from the
// traffic seed and worker, and whose events take sequence numbers from seq
// (shared by all generators of a run, so bench ids are unique).
func (t *Traffic) NewGenerator(worker int, seq *atomic.Uint64) *Generator {
	r := rand.New(rand.NewPCG(t.opts.Seed, uint64(worker)+1))
	return &Generator{
		t:           t,
		rng:         r,
		siteZipf:    rand.NewZipf(r, t.opts.SiteSkew, 1, uint64(len(t.sites)-1)),
		visitorZipf: rand.NewZipf(r, t.opts.VisitorSkew, 1, uint64(t.opts.VisitorsPerSite-1)),
		pageZipf:    rand.NewZipf(r, 1.2, 1, uint64(t.opts.PagesPerSite-1)),
		seq:         seq,
		body:        make([]byte, 0, 4096),
		uri:         make([]byte, 0, 1024),
	}
}

// pickKind draws a request kind according to the mix.
func (g *Generator) pickKind() Kind {
	n := g.rng.IntN(g.t.kindSum)
	for k, c := range g.t.kindCum {
		if n < c {
			return Kind(k)
		}
	}
	return KindJSON
}

// SiteIndex draws a site index with Zipf popularity (exposed for tests).
func (g *Generator) SiteIndex() int { return int(g.siteZipf.Uint64()) }

// splitmix64 turns structured integers into well-spread ids.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func appendHex16(dst []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xf])
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// chooseVisitor picks the site, visitor and session of the next request.
func (g *Generator) chooseVisitor(now time.Time) {
	si := int(g.siteZipf.Uint64())
	g.site = &g.t.sites[si]
	g.visitor = uint64(si)<<32 | g.visitorZipf.Uint64()
	vh := splitmix64(g.visitor)
	// Each visitor's sessions start at its own phase, so sessions do not all
	// roll over at the same instant.
	length := uint64(g.t.opts.SessionLength)
	g.sessionNo = (uint64(now.UnixNano()) + vh%length) / length
	g.uaIndex = int(vh % uint64(len(userAgents)))
	g.session = append(g.session[:0], "sess_"...)
	g.session = appendHex16(g.session, splitmix64(vh^g.sessionNo))
	g.origin = append(append(g.origin[:0], "https://"...), g.site.host...)
	g.xff = appendClientIP(g.xff[:0], vh)
	if vh%7 == 0 { // behind a CDN edge as well
		g.xff = append(g.xff, ", 104.16."...)
		g.xff = strconv.AppendUint(g.xff, (vh>>8)%256, 10)
		g.xff = append(g.xff, '.')
		g.xff = strconv.AppendUint(g.xff, (vh>>16)%256, 10)
	}
}

func appendClientIP(dst []byte, h uint64) []byte {
	if h%10 == 0 {
		dst = append(dst, "2a02:"...)
		for i := 0; i < 3; i++ {
			dst = strconv.AppendUint(dst, (h>>(16*uint(i)))&0xffff, 16)
			dst = append(dst, ':')
		}
		return append(dst, ":1"...)
	}
	first := 1 + (h>>24)%222
	if first == 10 || first == 127 {
		first++
	}
	dst = strconv.AppendUint(dst, first, 10)
	for i := 0; i < 3; i++ {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, (h>>(8*uint(i)))&0xff, 10)
	}
	return dst
}

// sessionSource says where the current session came from: 0 direct,
// 1 external referrer, 2 campaign (UTM parameters).
func (g *Generator) sessionSource() (int, uint64) {
	h := splitmix64(g.visitor ^ g.sessionNo ^ 0xabcdef)
	switch p := h % 100; {
	case p < 40:
		return 0, h
	case p < 75:
		return 1, h
	default:
		return 2, h
	}
}

// Next builds the next request into req (which it resets) and returns what it
// carries. now is the intended send time; it goes into the event timestamps.
func (g *Generator) Next(req *fasthttp.Request, now time.Time) Sent {
	kind := g.pickKind()
	g.chooseVisitor(now)
	n := 1
	if kind == KindBatch {
		n = g.t.opts.BatchSize
	}
	first := g.seq.Add(uint64(n)) - uint64(n) + 1
	req.Reset()
	h := &req.Header
	h.Set("User-Agent", userAgents[g.uaIndex])
	h.SetBytesV("X-Forwarded-For", g.xff)
	if kind == KindPixel {
		pg := g.pickPage()
		g.uri = append(g.uri[:0], g.t.pixelURI...)
		g.uri = g.appendPixelQuery(g.uri, pg, first, now)
		h.SetMethod(fasthttp.MethodGet)
		h.SetBytesV("Referer", g.pageURL)
		h.Set("Accept", "image/avif,image/webp,image/apng,image/*,*/*;q=0.8")
		req.SetRequestURIBytes(g.uri)
		return Sent{Kind: kind, FirstSeq: first, Events: 1, SessionID: g.session}
	}
	h.SetMethod(fasthttp.MethodPost)
	req.SetRequestURIBytes(g.t.collect)
	h.SetBytesV("Origin", g.origin)
	switch kind {
	case KindBeacon:
		h.SetContentType("text/plain;charset=UTF-8")
	default:
		h.SetContentType("application/json")
	}
	g.body = g.body[:0]
	if kind == KindBatch {
		g.body = append(g.body, '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				g.body = append(g.body, ',')
			}
			g.body = g.appendEvent(g.body, g.pickPage(), first+uint64(i), now.Add(-time.Duration(n-i)*time.Second))
		}
		g.body = append(g.body, ']')
	} else {
		g.body = g.appendEvent(g.body, g.pickPage(), first, now)
	}
	h.SetBytesV("Referer", g.pageURL)
	req.SetBodyRaw(g.body)
	return Sent{Kind: kind, FirstSeq: first, Events: n, SessionID: g.session}
}

func (g *Generator) pickPage() *page {
	return &g.site.pages[g.pageZipf.Uint64()]
}

// buildPageURL sets g.pageURL to the page's URL, with UTM parameters when the
// session came from a campaign and this is (plausibly) its landing page.
func (g *Generator) buildPageURL(pg *page, src int, h uint64) *utmSet {
	g.pageURL = append(append(g.pageURL[:0], g.origin...), pg.path...)
	if src != 2 {
		return nil
	}
	u := &utmSets[h%uint64(len(utmSets))]
	if g.rng.IntN(4) == 0 {
		g.pageURL = append(g.pageURL, "?utm_source="...)
		g.pageURL = append(g.pageURL, u.source...)
		g.pageURL = append(g.pageURL, "&utm_medium="...)
		g.pageURL = append(g.pageURL, u.medium...)
		g.pageURL = append(g.pageURL, "&utm_campaign="...)
		g.pageURL = append(g.pageURL, u.campaign...)
	}
	return u
}

func (g *Generator) referrer(src int, h uint64) []byte {
	g.scratch = g.scratch[:0]
	switch {
	case src == 1 && g.rng.IntN(3) == 0:
		g.scratch = append(g.scratch, externalReferrers[h%uint64(len(externalReferrers))]...)
	case src == 0 && g.rng.IntN(3) == 0:
		// direct: no referrer
	default: // an earlier page of the same site
		g.scratch = append(g.scratch, g.origin...)
		g.scratch = append(g.scratch, g.site.pages[g.rng.IntN(len(g.site.pages))].path...)
	}
	return g.scratch
}

func appendTimestamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}

func (g *Generator) appendIDs(dst []byte) []byte {
	dst = append(dst, `"sessionId":"`...)
	dst = append(dst, g.session...)
	dst = append(dst, `","visitorId":"vis_`...)
	dst = appendHex16(dst, splitmix64(g.visitor^0x76697369746f72))
	dst = append(dst, `","siteId":"`...)
	dst = append(dst, g.site.id...)
	return append(dst, '"')
}

// appendEvent appends one event as a JSON object: the seed's fields plus what
// a real tracker sends beside them, and bench_id/bench_run for verification.
func (g *Generator) appendEvent(dst []byte, pg *page, seq uint64, now time.Time) []byte {
	src, h := g.sessionSource()
	utm := g.buildPageURL(pg, src, h)
	custom := g.rng.Float64() < g.t.opts.CustomShare
	dst = append(dst, `{"eventType":"`...)
	if custom {
		dst = append(dst, customEvents[g.rng.IntN(len(customEvents))]...)
	} else {
		dst = append(dst, "pageview"...)
	}
	dst = append(dst, `",`...)
	dst = g.appendIDs(dst)
	dst = append(dst, `,"timestamp":"`...)
	dst = appendTimestamp(dst, now.Add(-time.Duration(g.rng.IntN(1500))*time.Millisecond))
	dst = append(dst, `","url":`...)
	dst = appendJSONString(dst, g.pageURL)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, []byte(pg.path))
	dst = append(dst, `,"referrer":`...)
	dst = appendJSONString(dst, g.referrer(src, h))
	dst = append(dst, `,"title":`...)
	dst = appendJSONString(dst, []byte(pg.title))
	vh := splitmix64(g.visitor)
	scr := screens[vh%uint64(len(screens))]
	dst = append(dst, `,"language":"`...)
	dst = append(dst, languages[(vh>>8)%uint64(len(languages))]...)
	dst = append(dst, `","timezone":"`...)
	dst = append(dst, timezones[(vh>>16)%uint64(len(timezones))]...)
	dst = append(dst, `","screen":{"width":`...)
	dst = strconv.AppendInt(dst, int64(scr[0]), 10)
	dst = append(dst, `,"height":`...)
	dst = strconv.AppendInt(dst, int64(scr[1]), 10)
	dst = append(dst, `},"viewport":{"width":`...)
	dst = strconv.AppendInt(dst, int64(scr[0]-g.rng.IntN(40)), 10)
	dst = append(dst, `,"height":`...)
	dst = strconv.AppendInt(dst, int64(scr[1]-80-g.rng.IntN(120)), 10)
	dst = append(dst, '}')
	if custom {
		dst = append(dst, `,"properties":{"element":"button.cta-`...)
		dst = strconv.AppendInt(dst, int64(g.rng.IntN(12)), 10)
		dst = append(dst, `","label":`...)
		dst = appendJSONString(dst, []byte(titleWords[g.rng.IntN(len(titleWords))]))
		dst = append(dst, `,"value":`...)
		dst = strconv.AppendFloat(dst, float64(g.rng.IntN(20000))/100, 'f', 2, 64)
		dst = append(dst, `,"currency":"EUR","scrollDepth":`...)
		dst = strconv.AppendInt(dst, int64(g.rng.IntN(101)), 10)
		dst = append(dst, '}')
	} else {
		dst = append(dst, `,"performance":{"ttfb":`...)
		dst = strconv.AppendInt(dst, int64(40+g.rng.IntN(400)), 10)
		dst = append(dst, `,"domContentLoaded":`...)
		dst = strconv.AppendInt(dst, int64(300+g.rng.IntN(1500)), 10)
		dst = append(dst, `,"loadTime":`...)
		dst = strconv.AppendInt(dst, int64(800+g.rng.IntN(3000)), 10)
		dst = append(dst, '}')
	}
	if utm != nil {
		dst = append(dst, `,"attribution":{"utmParams":{"utm_source":"`...)
		dst = append(dst, utm.source...)
		dst = append(dst, `","utm_medium":"`...)
		dst = append(dst, utm.medium...)
		dst = append(dst, `","utm_campaign":"`...)
		dst = append(dst, utm.campaign...)
		if utm.term != "" {
			dst = append(dst, `","utm_term":"`...)
			dst = append(dst, utm.term...)
		}
		if utm.content != "" {
			dst = append(dst, `","utm_content":"`...)
			dst = append(dst, utm.content...)
		}
		dst = append(dst, `"}}`...)
	} else if src == 1 {
		dst = append(dst, `,"attribution":{"utmParams":{},"referrerSource":"external"}`...)
	}
	dst = append(dst, `,"bench_run":"`...)
	dst = append(dst, g.t.opts.RunID...)
	dst = append(dst, `","bench_id":"`...)
	dst = appendBenchID(dst, g.t.opts.RunID, seq)
	return append(dst, `"}`...)
}

// appendBenchID appends the id a bench event carries: "<run>-<seq>".
func appendBenchID(dst []byte, run string, seq uint64) []byte {
	dst = append(dst, run...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, seq, 10)
}

// BenchID is the bench_id of event seq of run.
func BenchID(run string, seq uint64) string { return string(appendBenchID(nil, run, seq)) }

func (g *Generator) appendPixelQuery(dst []byte, pg *page, seq uint64, now time.Time) []byte {
	src, h := g.sessionSource()
	utm := g.buildPageURL(pg, src, h)
	dst = append(dst, "eventType=pageview&siteId="...)
	dst = fasthttp.AppendQuotedArg(dst, []byte(g.site.id))
	dst = append(dst, "&sessionId="...)
	dst = append(dst, g.session...)
	dst = append(dst, "&visitorId=vis_"...)
	dst = appendHex16(dst, splitmix64(g.visitor^0x76697369746f72))
	dst = append(dst, "&timestamp="...)
	g.scratch = appendTimestamp(g.scratch[:0], now)
	dst = fasthttp.AppendQuotedArg(dst, g.scratch)
	dst = append(dst, "&url="...)
	dst = fasthttp.AppendQuotedArg(dst, g.pageURL)
	dst = append(dst, "&path="...)
	dst = fasthttp.AppendQuotedArg(dst, []byte(pg.path))
	if ref := g.referrer(src, h); len(ref) > 0 {
		dst = append(dst, "&referrer="...)
		dst = fasthttp.AppendQuotedArg(dst, ref)
	}
	if utm != nil {
		dst = append(dst, "&utm_source="...)
		dst = append(dst, utm.source...)
		dst = append(dst, "&utm_medium="...)
		dst = append(dst, utm.medium...)
		dst = append(dst, "&utm_campaign="...)
		dst = append(dst, utm.campaign...)
	}
	dst = append(dst, "&bench_run="...)
	dst = append(dst, g.t.opts.RunID...)
	dst = append(dst, "&bench_id="...)
	return appendBenchID(dst, g.t.opts.RunID, seq)
}

// appendJSONString appends s as a JSON string; the inputs here are our own
// word lists and URLs, so only quote, backslash and control bytes need care.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// MeanEventsPerRequest is the expected number of events per request of a mix.
func MeanEventsPerRequest(m Mix, batchSize int) float64 {
	if batchSize <= 0 {
		batchSize = 20
	}
	total, events := 0, 0
	for k, w := range m {
		total += w
		if Kind(k) == KindBatch {
			events += w * batchSize
		} else {
			events += w
		}
	}
	if total == 0 {
		return 1
	}
	return float64(events) / float64(total)
}
