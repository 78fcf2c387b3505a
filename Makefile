# collector — see README.md. `make run` and `make test` are the two commands
# a new user needs; everything else is for development and operations.

GO       ?= go
BIN      := bin/collector
PKG      := ./cmd/collector
# Built the way the Dockerfile builds it: static, reproducible.
LDFLAGS  := -s -w -X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags '$(LDFLAGS)'

# Local defaults for `make run`: the machine's PostgreSQL, exports into ./data/exports.
RUN_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
RUN_ADMIN_TOKEN  ?= dev-admin-token

.PHONY: all build run test test-unit lint fmt vet fuzz bench bench-quick bench-smoke bench-go deploy-check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) $(PKG)

run: build
	DATABASE_URL="$${DATABASE_URL:-$(RUN_DATABASE_URL)}" \
	ADMIN_TOKEN="$${ADMIN_TOKEN:-$(RUN_ADMIN_TOKEN)}" \
	LOG_FORMAT="$${LOG_FORMAT:-text}" \
	EXPORT_SCHEDULE="$${EXPORT_SCHEDULE:-realtime:10}" \
	./$(BIN) serve

# The whole suite: formatting, vet, unit and integration tests with the race
# detector. Integration tests use the local PostgreSQL and versitygw; with
# CI set they fail instead of skipping when a service is missing.
test: lint build
	$(GO) test -race -count=1 -timeout 30m ./...
	cd third_party/tidwall-wal && $(GO) test -count=1 ./...

test-unit:
	$(GO) test -short -count=1 ./...

lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

fuzz:
	$(GO) test -run XXX -fuzz FuzzRecovery -fuzztime 30s ./wal
	$(GO) test -run XXX -fuzz FuzzDecodeRecord -fuzztime 30s ./event

# The scenario suite (bench/): starts bin/collector with PostgreSQL and
# versitygw on loopback and writes bench/results/<time>/{result.json,report.html};
# the full suite also regenerates BENCHMARKS.md. Exits non-zero when an acknowledged event is
# lost or duplicated.
bench: build
	./$(BIN) bench suite --md BENCHMARKS.md

bench-quick: build
	./$(BIN) bench suite --quick

# CI's short smoke of the suite: every scenario for a few seconds, with the
# same verification (lost or duplicated events fail it).
bench-smoke: build
	./$(BIN) bench suite --smoke --out $$(mktemp -d)/bench-smoke

bench-go:
	$(GO) test -run XXX -bench . -benchmem ./...

# Deployment files against the real configuration and binary (deploy/deploycheck).
# Needs nginx (.ci/run installs it); with CI set, a missing tool or an unbuildable binary fails.
deploy-check:
	$(GO) vet ./deploy/...
	$(GO) test -count=1 ./deploy/...

clean:
	rm -rf bin
