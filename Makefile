# make test   — set up what the tests need, then run every test with the race detector
#               (interop's TestAMQP also builds and runs the module in interop/amqpsdk)
# make ci     — format, vet and staticcheck, then make test
# make bench  — the benchmarks recorded in BENCHMARKS.md
# make soak   — the long soak under chaos recorded in RELIABILITY.md (100,000 events)

GO ?= go
SHELL := /bin/bash

.PHONY: test ci check deps bench soak

deps:
	./scripts/test-deps.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@# interop/amqpsdk is a module of its own (the CloudEvents SDK's AMQP
	@# binding needs go-amqp v0.17); interop's TestAMQP builds and runs it.
	cd interop/amqpsdk && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

test: deps
	set -a; . ./.test-env; set +a; $(GO) test -race -timeout 20m ./...

ci: check test

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

soak:
	CROSSBUS_SOAK=long $(GO) test -run '^TestSoakUnderChaos$$' -count=1 -v -timeout 60m ./examples/marketplace/
