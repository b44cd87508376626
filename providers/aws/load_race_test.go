//go:build race

package aws_test

// loadEvents is smaller under the race detector, which slows every HTTP
// round trip several times over.
const loadEvents = 2_000
