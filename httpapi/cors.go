package httpapi

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

const (
	corsAllowMethods = "POST, GET, OPTIONS"
	corsAllowHeaders = "Content-Type, Authorization"
	// Browsers cap this (Chrome at 2 h, Firefox at 24 h); 2 h saves most
	// preflights without pinning a changed configuration for long.
	corsMaxAge = "7200"
)

// cors decides which origins may read our answers. Browsers send Origin in
// lower case, but configuration is typed by people, so matching ignores case.
type cors struct {
	anyOrigin bool
	origins   [][]byte

	// Header names and values as bytes, for ResponseHeader.SetCanonical,
	// which skips the key normalization Set does on every call.
	keyVary, keyAllowOrigin, keyAllowCredentials, keyExposeHeaders []byte
	valOrigin, valTrue, valExpose                                  []byte
}

func newCORS(allowed []string) cors {
	c := cors{
		keyVary: []byte(fasthttp.HeaderVary), keyAllowOrigin: []byte(fasthttp.HeaderAccessControlAllowOrigin),
		keyAllowCredentials: []byte(fasthttp.HeaderAccessControlAllowCredentials),
		keyExposeHeaders:    []byte(fasthttp.HeaderAccessControlExposeHeaders),
		valOrigin:           []byte(fasthttp.HeaderOrigin), valTrue: []byte("true"), valExpose: []byte(fasthttp.HeaderRetryAfter),
	}
	for _, o := range allowed {
		if o == "*" {
			c.anyOrigin = true
			continue
		}
		c.origins = append(c.origins, []byte(o))
	}
	return c
}

func (c *cors) allowed(origin []byte) bool {
	if len(origin) == 0 {
		return false
	}
	if c.anyOrigin {
		return true
	}
	for _, o := range c.origins {
		if bytes.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// apply sets the CORS headers of an actual (non-preflight) response. The
// origin is echoed rather than answered with a literal "*" because
// navigator.sendBeacon always sends credentials, and browsers refuse "*" for
// credentialed requests.
//
// Vary: Origin is set on every response (handlers here set no Vary of their
// own) so that caches never serve one origin's answer to another.
func (c *cors) apply(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetCanonical(c.keyVary, c.valOrigin)
	origin := ctx.Request.Header.Peek(fasthttp.HeaderOrigin)
	if !c.allowed(origin) {
		return
	}
	h.SetCanonical(c.keyAllowOrigin, origin)
	h.SetCanonical(c.keyAllowCredentials, c.valTrue)
	h.SetCanonical(c.keyExposeHeaders, c.valExpose)
}

// isPreflight reports whether an OPTIONS request is a CORS preflight.
func isPreflight(ctx *fasthttp.RequestCtx) bool {
	return len(ctx.Request.Header.Peek(fasthttp.HeaderOrigin)) > 0 &&
		len(ctx.Request.Header.Peek(fasthttp.HeaderAccessControlRequestMethod)) > 0
}

// preflight answers a CORS preflight for a path that exists. allow lists the
// path's methods.
func (c *cors) preflight(ctx *fasthttp.RequestCtx, allow string) {
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderAllow, allow)
	h.Set(fasthttp.HeaderVary, "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	origin := ctx.Request.Header.Peek(fasthttp.HeaderOrigin)
	if !c.allowed(origin) {
		WriteError(ctx, fasthttp.StatusForbidden, "origin not allowed by CORS_ALLOWED_ORIGINS", "Origin")
		return
	}
	h.SetBytesV(fasthttp.HeaderAccessControlAllowOrigin, origin)
	h.Set(fasthttp.HeaderAccessControlAllowCredentials, "true")
	h.Set(fasthttp.HeaderAccessControlAllowMethods, corsAllowMethods)
	h.Set(fasthttp.HeaderAccessControlAllowHeaders, corsAllowHeaders)
	h.Set(fasthttp.HeaderAccessControlMaxAge, corsMaxAge)
	// Chrome's Private Network Access: a public page may beacon to a
	// collector on a private address only if the collector says so.
	if bytes.Equal(ctx.Request.Header.Peek("Access-Control-Request-Private-Network"), []byte("true")) {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
