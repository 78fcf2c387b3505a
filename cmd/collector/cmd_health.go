package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/evothesis/collector/config"
)

// healthBodyLimit caps what `collector health` reads and prints: Docker keeps
// the output of the last few health checks in the container's state, and a
// runaway body must not fill it.
const healthBodyLimit = 64 << 10

// runHealth is `collector health`: one GET of the collector's /health, exit
// status 0 on 200 and 1 otherwise, the body printed either way. It exists
// because the runtime image has no shell and no curl, so Docker's HEALTHCHECK
// (and anything else that can only run a command) needs the binary itself to
// ask.
func runHealth(ctx context.Context, c cli, args []string) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	defaultURL, err := healthURLFromAddr(envOrDefault(c.getenv, "COLLECTOR_ADDR"))
	if err != nil {
		return usageError{msg: fmt.Sprintf("COLLECTOR_ADDR: %v", err)}
	}
	url := fs.String("url", defaultURL, "health URL to GET; the default comes from COLLECTOR_ADDR")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long (keep it below the HEALTHCHECK timeout)")
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, "usage: collector health [--url URL] [--timeout 3s]\n\nExits 0 when URL answers 200, 1 otherwise; prints the body.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *timeout <= 0 {
		return usageError{msg: "--timeout must be positive"}
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{msg: fmt.Sprintf("--url %q: %v", *url, err)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "collector-health")
	// No proxy (a container's HTTP_PROXY must not capture a check of itself)
	// and no keep-alive (the process exits right after).
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
	if len(body) > 0 {
		c.stdout.Write(body)
		if body[len(body)-1] != '\n' {
			fmt.Fprintln(c.stdout)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", *url, resp.Status)
	}
	if readErr != nil {
		return fmt.Errorf("GET %s: read body: %w", *url, readErr)
	}
	return nil
}

// envOrDefault reads a setting the way config does (empty means unset) and
// falls back to config's documented default, without validating the whole
// configuration: a health check must not fail because an unrelated setting
// is wrong.
func envOrDefault(getenv func(string) string, name string) string {
	if v := getenv(name); v != "" {
		return v
	}
	for _, v := range config.Vars() {
		if v.Env == name {
			return v.Default
		}
	}
	return ""
}

// healthURLFromAddr turns a listen address into the URL a local client uses
// to reach it: a wildcard host (":8000", "0.0.0.0:8000", "[::]:8000") is
// reached on the loopback address of its family.
func healthURLFromAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		return "", err
	}
	if port == "" {
		return "", fmt.Errorf("%q has no port", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health", nil
}
