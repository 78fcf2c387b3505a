# syntax=docker/dockerfile:1
#
# The collector image: one static binary on distroless/static, run as a
# non-root user, with its durable state (WAL, local exports, dead letters)
# under /data, which is a volume.
#
#   docker build -t evothesis/collector:dev .
#   docker build --build-arg VERSION=$(git describe --tags) -t evothesis/collector:1.2.3 .
#
# deploy/deploycheck builds the binary with exactly the `go build` line below
# (it parses this file), so what the tests start is what ships.

ARG GO_VERSION=1.26.8

# The build runs on the builder's own platform and cross-compiles (pure Go,
# so no emulation is needed for multi-arch images built with buildx).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, in their own layer: they change far less often than the
# code.
COPY go.mod go.sum ./
# go.mod replaces github.com/tidwall/wal with the patched copy here.
COPY third_party ./third_party
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Set by BuildKit to the platform being built for (docker buildx --platform).
ARG TARGETOS TARGETARCH
ARG VERSION=dev
# CGO_ENABLED=0: a static binary, so the runtime image needs no libc.
# -trimpath and -buildvcs=false: the same source gives the same binary
# wherever it is built (no build paths, no VCS stamp from the context).
# -s -w: no symbol table or DWARF (stack traces keep function names and lines).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION}" -o /out/collector ./cmd/collector
# The runtime image has no shell or mkdir: prepare /data here, owned by the
# runtime user, so a fresh named volume mounted there is initialized with the
# right owner.
RUN mkdir -p /out/data/wal /out/data/exports && chmod 0750 /out/data /out/data/wal /out/data/exports

# distroless/static: CA certificates (for S3 and PostgreSQL TLS), tzdata,
# /etc/passwd with the nonroot user, /tmp; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="collector" \
      org.opencontainers.image.description="Self-hosted analytics event collector: durable WAL ingest, PostgreSQL loader, S3 exports" \
      org.opencontainers.image.source="https://github.com/evothesis/collector" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/collector /usr/local/bin/collector
COPY --from=build --chown=65532:65532 /out/data /data
# 65532 is distroless's "nonroot"; numeric so that Kubernetes' runAsNonRoot
# can check it without reading /etc/passwd.
USER 65532:65532
ENV COLLECTOR_ADDR=:8000 \
    WAL_DIR=/data/wal \
    EXPORT_DIR=/data/exports
VOLUME ["/data"]
EXPOSE 8000
# SIGTERM starts the graceful stop: refuse new requests, finish in-flight ones
# (up to SHUTDOWN_TIMEOUT, 20s by default), final fsync, close. Give the
# container more than that before SIGKILL: `docker run --stop-timeout 30`,
# compose `stop_grace_period: 30s`, Kubernetes terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
# No curl in the image: the binary checks itself. 200 (healthy or degraded)
# is healthy; 503 (ingest cannot accept) or no answer is not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/collector", "health", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/collector"]
CMD ["serve"]
