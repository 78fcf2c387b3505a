package loader

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/evothesis/collector/httpapi"
)

// Limits of GET /events/recent.
const (
	RecentDefaultLimit = 50
	RecentMaxLimit     = 1000
)

// RecentEvent is one row of GET /events/recent, with the seed's column names.
type RecentEvent struct {
	ID           int64           `json:"id"`
	EventID      string          `json:"event_id"`
	EventType    string          `json:"event_type"`
	SessionID    *string         `json:"session_id"`
	VisitorID    *string         `json:"visitor_id"`
	SiteID       *string         `json:"site_id"`
	Timestamp    time.Time       `json:"timestamp"`
	URL          *string         `json:"url"`
	Path         *string         `json:"path"`
	IPAddress    *string         `json:"ip_address"`
	UserAgent    *string         `json:"user_agent"`
	RawEventData json.RawMessage `json:"raw_event_data"`
	CreatedAt    time.Time       `json:"created_at"`
	ReceivedAt   time.Time       `json:"received_at"`
	Referrer     *string         `json:"referrer"`
	NodeID       string          `json:"node_id"`
}

const recentColumns = `id, event_id::text, event_type, session_id, visitor_id, site_id, "timestamp", url, path,
	ip_address, user_agent, raw_event_data::text, created_at, received_at, referrer, node_id`

// For one site: newest by the client's event time, which is what the
// (site_id, timestamp) index delivers in order.
var recentBySiteSQL = `SELECT ` + recentColumns + ` FROM events WHERE site_id = $1
	ORDER BY "timestamp" DESC, id DESC LIMIT $2`

// Across sites there is no index on event time, so "newest" is by arrival:
// the nodes are found by a skip scan of the primary key (one probe per node),
// the newest ids of each node by a backward scan of it, and those merged.
var recentAllSQL = `WITH RECURSIVE nodes(node_id) AS (
		(SELECT node_id FROM events ORDER BY node_id LIMIT 1)
		UNION ALL
		SELECT (SELECT e.node_id FROM events e WHERE e.node_id > n.node_id ORDER BY e.node_id LIMIT 1)
		FROM nodes n WHERE n.node_id IS NOT NULL)
	SELECT r.* FROM nodes n CROSS JOIN LATERAL (
		SELECT ` + recentColumns + ` FROM events e WHERE e.node_id = n.node_id ORDER BY e.id DESC LIMIT $1) r
	WHERE n.node_id IS NOT NULL
	ORDER BY r.received_at DESC, r.id DESC LIMIT $1`

// RecentEvents returns the newest events, of one site when siteID is not
// empty (by event time) or of all sites (by arrival).
func RecentEvents(ctx context.Context, pool *pgxpool.Pool, siteID string, limit int) ([]RecentEvent, error) {
	var rows pgx.Rows
	var err error
	if siteID != "" {
		rows, err = pool.Query(ctx, recentBySiteSQL, siteID, limit)
	} else {
		rows, err = pool.Query(ctx, recentAllSQL, limit)
	}
	if err != nil {
		return nil, err
	}
	out := make([]RecentEvent, 0, limit)
	for rows.Next() {
		var e RecentEvent
		var raw string
		if err := rows.Scan(&e.ID, &e.EventID, &e.EventType, &e.SessionID, &e.VisitorID, &e.SiteID, &e.Timestamp,
			&e.URL, &e.Path, &e.IPAddress, &e.UserAgent, &raw, &e.CreatedAt, &e.ReceivedAt, &e.Referrer, &e.NodeID); err != nil {
			rows.Close()
			return nil, err
		}
		e.RawEventData = json.RawMessage(raw)
		e.Timestamp, e.CreatedAt, e.ReceivedAt = e.Timestamp.UTC(), e.CreatedAt.UTC(), e.ReceivedAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// RecentHandler serves GET /events/recent?site_id=&limit= from PostgreSQL:
// {"status":"success","count":N,"events":[...]}, newest first, limit 50 by
// default and at most 1000. It returns raw visitor data: mount it as an admin
// route (ADMIN_TOKEN).
func RecentHandler(pool *pgxpool.Pool, timeout time.Duration) fasthttp.RequestHandler {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return func(ctx *fasthttp.RequestCtx) {
		args := ctx.QueryArgs()
		limit := RecentDefaultLimit
		if v := args.Peek("limit"); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 || n > RecentMaxLimit {
				httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "limit must be an integer from 1 to 1000", "limit")
				return
			}
			limit = n
		}
		siteID := string(args.Peek("site_id"))
		if len(siteID) > 512 || !utf8.ValidString(siteID) {
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, "site_id must be valid UTF-8 of at most 512 bytes", "site_id")
			return
		}
		// Not ctx itself: a fasthttp.RequestCtx is a context only while a
		// server runs it, and the timeout bounds the query anyway.
		qctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		events, err := RecentEvents(qctx, pool, siteID, limit)
		if err != nil {
			if isConnectionError(err) {
				httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, "database unavailable", "")
			} else {
				httpapi.WriteError(ctx, fasthttp.StatusInternalServerError, "could not read events", "")
			}
			return
		}
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, struct {
			Status string        `json:"status"`
			Count  int           `json:"count"`
			Events []RecentEvent `json:"events"`
		}{"success", len(events), events})
	}
}
