package eventgrid_test

import (
	"testing"

	"github.com/crossbus/crossbus/internal/readmecheck"
)

// The README's snippets for this package, each after a marker
// "<!-- example: providers/azure/eventgrid ExampleName -->", are lines of that compiled and
// tested example, in order: what a reader copies is what the tests run.
func TestReadmeSnippetsAreTestedExamples(t *testing.T) {
	readmecheck.Snippets(t, "../../../README.md", "providers/azure/eventgrid")
}
