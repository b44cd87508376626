package readmecheck

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	body := func(name string) ([]string, error) {
		if name != "ExampleA" {
			return nil, errors.New("no example " + name)
		}
		return []string{"a := 1", "", "b := a", "fmt.Println(b)"}, nil
	}
	readme := "text\n<!-- example: pkg/x ExampleA -->\n```go\na := 1\n\n    fmt.Println(b)\n```\n"
	require.NoError(t, check(readme, "pkg/x", body))

	for name, tc := range map[string]struct{ readme, want string }{
		"out of order":  {"<!-- example: pkg/x ExampleA -->\n```go\nfmt.Println(b)\na := 1\n```\n", `"a := 1" is not in ExampleA`},
		"foreign line":  {"<!-- example: pkg/x ExampleA -->\n```go\nc := 3\n```\n", `"c := 3" is not in ExampleA`},
		"no block":      {"<!-- example: pkg/x ExampleA -->\ntext only\n", "no Go block"},
		"no snippet":    {"nothing here", "no snippet of pkg/x"},
		"wrong example": {"<!-- example: pkg/x ExampleB -->\n```go\na := 1\n```\n", "no example ExampleB"},
	} {
		err := check(tc.readme, "pkg/x", body)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}
}
