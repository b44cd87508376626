# make test   — set up what the tests need, then run every test with the race detector
#               (interop's TestAMQP also builds and runs the module in interop/amqpsdk)
# make ci     — format, vet and staticcheck, then make test
# make bench  — the benchmarks recorded in BENCHMARKS.md
# make soak   — the long soak under chaos recorded in RELIABILITY.md (100,000 events)
# make peers  — the peer comparison in BENCHMARKS.md (bench/, its own module;
#               slow, so neither make ci nor make test runs it)

GO ?= go
SHELL := /bin/bash

.PHONY: test ci check deps bench soak peers

deps:
	./scripts/test-deps.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@# interop/amqpsdk is a module of its own (the CloudEvents SDK's AMQP
	@# binding needs go-amqp v0.17); interop's TestAMQP builds and runs it.
	cd interop/amqpsdk && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@# bench/ is a module of its own (the peer comparison's dependencies stay
	@# out of the library's go.mod); it is vetted here, run only by make peers.
	cd bench && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

test: deps
	set -a; . ./.test-env; set +a; $(GO) test -race -timeout 20m ./...

ci: check test

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

soak:
	CROSSBUS_SOAK=long $(GO) test -run '^TestSoakUnderChaos$$' -count=1 -v -timeout 60m ./examples/marketplace/

peers:
	cd bench && $(GO) run ./cmd/peers
