package clients

import (
	"net/url"
	"strings"
)

// RedactedDestination is a destination as GET /export/config shows it.
type RedactedDestination struct {
	URL            string   `json:"url"`
	Kind           Kind     `json:"kind"`
	Bucket         string   `json:"bucket,omitempty"`
	Dir            string   `json:"dir,omitempty"`
	Prefix         string   `json:"prefix"`
	Region         string   `json:"region,omitempty"`
	Endpoint       string   `json:"endpoint,omitempty"`
	ForcePathStyle bool     `json:"force_path_style,omitempty"`
	Credentials    string   `json:"credentials"`
	Formats        []string `json:"formats"`
	Compression    string   `json:"compression"`
}

// RedactedClient is a client as GET /export/config shows it.
type RedactedClient struct {
	Name        string               `json:"name"`
	SiteIDs     []string             `json:"site_ids"`
	AllSites    bool                 `json:"all_sites,omitempty"`
	Formats     []string             `json:"formats"`
	Compression string               `json:"compression"`
	Schedule    string               `json:"schedule"`
	Threshold   int                  `json:"threshold"`
	Webhook     string               `json:"webhook,omitempty"`
	Destination *RedactedDestination `json:"destination,omitempty"`
	Backup      RedactedDestination  `json:"backup"`
}

// RedactedConfig is the whole configuration as GET /export/config shows it.
type RedactedConfig struct {
	Mode        Mode                `json:"mode"`
	Source      string              `json:"source"`
	Environment string              `json:"environment"`
	Backup      RedactedDestination `json:"backup"`
	Clients     []RedactedClient    `json:"clients"`
	// Unclaimed says where events of sites no client claims go.
	Unclaimed *RedactedClient `json:"unclaimed_sites,omitempty"`
}

// Redacted is the destination without secrets: credentials are described,
// never shown, and the endpoint loses any user info.
func (d Destination) Redacted() RedactedDestination {
	r := RedactedDestination{
		URL: d.URL(), Kind: d.Kind, Bucket: d.Bucket, Dir: d.Dir, Prefix: d.Prefix,
		Region: d.Region, Endpoint: redactURL(d.Endpoint), ForcePathStyle: d.ForcePathStyle,
		Formats: formatNames(d.Formats), Compression: string(d.Compression),
	}
	switch {
	case d.Kind == KindFile:
		r.Credentials = "none (local directory)"
	case !d.Credentials.Static():
		r.Credentials = "default AWS credential chain"
	case d.Credentials.Encrypted:
		r.Credentials = "static, encrypted (key " + d.Credentials.KeyID + ")"
	default:
		r.Credentials = "static, plaintext in configuration"
	}
	return r
}

// Redacted is the client without secrets; the webhook shows only its scheme
// and host, since its path or query often is a token.
func (c *Client) Redacted() RedactedClient {
	r := RedactedClient{
		Name: c.Name, SiteIDs: append([]string{}, c.SiteIDs...), AllSites: c.AllSites,
		Formats: formatNames(c.Formats), Compression: string(c.Compression),
		Schedule: c.Schedule.String(), Threshold: c.Threshold, Webhook: redactURL(c.WebhookURL.Reveal()),
		Backup: c.Backup.Redacted(),
	}
	if c.HasDestination {
		d := c.Destination.Redacted()
		r.Destination = &d
	}
	return r
}

// Redacted returns the effective configuration with no secret in it, for
// GET /export/config and `collector config`.
func (c *Config) Redacted() any {
	r := RedactedConfig{
		Mode: c.Mode, Source: c.Source, Environment: c.Environment,
		Backup: c.Backup.Redacted(), Clients: make([]RedactedClient, 0, len(c.Clients)),
	}
	for _, cl := range c.Clients {
		r.Clients = append(r.Clients, cl.Redacted())
	}
	if c.unclaimed != nil {
		u := c.unclaimed.Redacted()
		r.Unclaimed = &u
	}
	return r
}

// redactURL keeps a URL's scheme, host and port: user info, path and query
// may hold credentials or tokens.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "[REDACTED]"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		out += "/[REDACTED]"
	}
	return strings.TrimSuffix(out, "/")
}
