package shipper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// notification is the JSON body POSTed to a client's webhook.
type notification struct {
	Event       string    `json:"event"` // export.paused, export.dead_lettered
	Client      string    `json:"client"`
	Destination string    `json:"destination"`
	Store       string    `json:"store"`
	Reason      string    `json:"reason,omitempty"`
	Error       string    `json:"error,omitempty"`
	Unit        string    `json:"unit,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	Time        time.Time `json:"time"`
}

type queuedNotification struct {
	url string
	n   notification
}

// notifier delivers webhook notifications in the background, each retried
// with capped exponential backoff, so a slow receiver never holds an export.
type notifier struct {
	client *http.Client
	logger *slog.Logger
	base   time.Duration
	queue  chan queuedNotification
}

const notifyAttempts = 6

func newNotifier(c *http.Client, logger *slog.Logger, base time.Duration) *notifier {
	return &notifier{client: c, logger: logger, base: base, queue: make(chan queuedNotification, 256)}
}

func (n *notifier) send(webhook string, msg notification) {
	if webhook == "" {
		return
	}
	select {
	case n.queue <- queuedNotification{webhook, msg}:
	default:
		n.logger.Warn("webhook queue full; notification dropped", "event", msg.Event, "destination", msg.Destination)
	}
}

func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-n.queue:
			n.deliver(ctx, q)
		}
	}
}

func (n *notifier) deliver(ctx context.Context, q queuedNotification) {
	body, _ := json.Marshal(q.n)
	for attempt := 1; ; attempt++ {
		err := n.post(ctx, q.url, body)
		if err == nil {
			return
		}
		if attempt >= notifyAttempts || ctx.Err() != nil {
			n.logger.Error("webhook notification failed", "webhook", redactURL(q.url), "event", q.n.Event, "attempts", attempt, "error", err)
			return
		}
		t := time.NewTimer(backoff(n.base, 30*time.Second, attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (n *notifier) post(ctx context.Context, webhook string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "evothesis-collector")
	resp, err := n.client.Do(req)
	if err != nil {
		// The url.Error would repeat the URL, which may carry a token.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

// redactURL keeps scheme and host: a webhook's user info, path or query
// often is a token.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(redacted)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// redactError renders an error for status, logs and the audit log. Store
// errors never carry credentials (the SDK signs requests; it does not echo
// keys), but a webhook or endpoint URL may carry a token in its query.
func redactError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "?"); i >= 0 && strings.Contains(msg[i:], "=") {
		end := strings.IndexAny(msg[i:], " \"'")
		if end < 0 {
			end = len(msg) - i
		}
		msg = msg[:i] + "?(redacted)" + msg[i+end:]
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	return msg
}
