// Package deploycheck checks the deployment files against the collector
// itself, without a container engine: `go test ./deploy/...` (make
// deploy-check).
//
// What it owns: the tests, and the small parsers they need for formats the
// standard library and gopkg.in/yaml.v3 do not read (dotenv files, compose
// interpolation, Dockerfiles and .dockerignore, shell words, nginx.conf,
// systemd units, PromQL metric references).
//
// What it promises: a deployment file that parses but disagrees with the
// binary fails a test. In particular every environment variable handed to a
// collector (compose, .env.example, the Kubernetes ConfigMap and Secret, the
// systemd environment file) is a setting of package config or one the Go
// runtime or the AWS SDK reads, and each such set of variables is loaded
// with config.Load, so it must also be valid; ports, volumes, health checks
// and stop grace periods are checked against the configuration they serve;
// nginx.conf passes `nginx -t`; and the binary built with the Dockerfile's own
// `go build` line starts and answers /health. Tests that need a tool (nginx,
// systemd-analyze, kubectl) or a buildable binary skip without it locally and
// fail when CI is set, where they are required.
package deploycheck
