# make test   — set up what the tests need, then run every test with the race detector
# make ci     — format and vet checks, then make test
# make bench  — the benchmarks recorded in BENCHMARKS.md

GO ?= go

.PHONY: test ci check deps bench

deps:
	./scripts/test-deps.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps
	$(GO) test -race -timeout 20m ./...

ci: check test

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
