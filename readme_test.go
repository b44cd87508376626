package crossbus_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README's quick start is Example_quickStart's body, so the program a
// reader copies is the one the tests run.
func TestReadmeQuickStartIsTheTestedExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	example, err := os.ReadFile("example_quickstart_test.go")
	require.NoError(t, err)
	section := string(readme)
	start := strings.Index(section, "## Quick start")
	require.GreaterOrEqual(t, start, 0, "README has a Quick start section")
	section = section[start:]
	begin := strings.Index(section, "func main() {\n")
	require.GreaterOrEqual(t, begin, 0, "the quick start is a complete program")
	end := strings.Index(section[begin:], "\n}\n```")
	require.Greater(t, end, 0)
	readmeBody := section[begin+len("func main() {\n") : begin+end]

	ex := string(example)
	eb := strings.Index(ex, "func Example_quickStart() {\n")
	require.GreaterOrEqual(t, eb, 0)
	ex = ex[eb+len("func Example_quickStart() {\n"):]
	exampleBody := strings.TrimRight(ex[:strings.Index(ex, "\t// Output:")], "\n")
	require.Equal(t, exampleBody, readmeBody, "README quick start and Example_quickStart differ")
}
