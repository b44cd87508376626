package functions_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README's snippets for this package, each after a marker
// "<!-- example: providers/azure/eventgrid/functions ExampleName -->", are lines of that compiled and
// tested example, in order: what a reader copies is what the tests run.
func TestReadmeSnippetsAreTestedExamples(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	marker := "<!-- example: providers/azure/eventgrid/functions "
	found := 0
	for rest := string(readme); ; found++ {
		i := strings.Index(rest, marker)
		if i < 0 {
			break
		}
		rest = rest[i+len(marker):]
		name, _, ok := strings.Cut(rest, " -->")
		require.True(t, ok, "marker without an end")
		_, block, ok := strings.Cut(rest, "```go\n")
		require.True(t, ok, "no Go block after the marker of %s", name)
		block, _, ok = strings.Cut(block, "```")
		require.True(t, ok)
		example := exampleBody(t, name)
		at := 0
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			for at < len(example) && example[at] != line {
				at++
			}
			require.Less(t, at, len(example), "README line %q is not in %s (in this order)", line, name)
			at++
		}
	}
	require.Positive(t, found, "the README shows this package")
}

// exampleBody returns the trimmed lines of the body of the example function
// name in this package's test files.
func exampleBody(t *testing.T, name string) []string {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	require.NoError(t, err)
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		_, body, ok := strings.Cut(string(src), "\nfunc "+name+"() {\n")
		if !ok {
			continue
		}
		body, _, _ = strings.Cut(body, "\n}\n")
		lines := strings.Split(body, "\n")
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		return lines
	}
	t.Fatalf("no example %s", name)
	return nil
}
