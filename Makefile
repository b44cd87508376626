# make test   — set up what the tests need, then run every test with the race detector
# make ci     — format, vet and staticcheck, then make test
# make bench  — the benchmarks recorded in BENCHMARKS.md
# make peers  — the peer comparison in BENCHMARKS.md (bench/, its own module)

GO ?= go
SHELL := /bin/bash

.PHONY: test ci check deps bench peers

deps:
	./scripts/test-deps.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

test: deps
	set -a; . ./.test-env; set +a; $(GO) test -race -timeout 20m ./...

ci: check test

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

peers:
	cd bench && $(GO) run ./cmd/peers
