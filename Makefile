# Portcullis: an API-management data plane for Istio, on Envoy's ext_authz,
# global rate-limit and access-log extension points.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
FUZZTIME ?= 20s
BENCHTIME ?= 1x

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build the binaries into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: run
run: build ## run the services on the embedded memory store with the example config
	./scripts/run.sh

.PHONY: test
test: ## run every test, race detector on, real Redis (and later nginx, the IdP) started by the tests
	$(GO) test -race -shuffle=on -count=1 -timeout=15m $(PKGS)

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) $(PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

.PHONY: bench
bench: ## load tests against no-op baselines, and the in-process Go benchmarks
	$(GO) test -run '^$$' -bench Suite -benchtime 1x -timeout 30m ./bench/suite/
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list $(PKGS) | grep -v /bench/suite)

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
