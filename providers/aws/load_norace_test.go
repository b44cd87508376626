//go:build !race

package aws_test

// loadEvents is how many events the conformance suite's no-loss test sends.
const loadEvents = 10_000
