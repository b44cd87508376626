// Package readmecheck keeps the README's code honest: its tests assert that
// the snippets a reader copies are lines of compiled and tested examples.
package readmecheck

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TB is the part of testing.TB that Snippets uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Snippets checks every README snippet of package pkg (a path such as
// "providers/gcp/push"): each Go block after a marker
// "<!-- example: pkg ExampleName -->" must consist of lines of the body of
// that example function, found in the *_test.go files of the current
// directory, in the same order (blank lines and indentation aside). It fails
// t when a marker has no block, a line is not in its example, or the README
// shows no snippet of pkg at all.
func Snippets(t TB, readmePath, pkg string) {
	t.Helper()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatalf("readmecheck: %v", err)
	}
	if err := check(string(readme), pkg, exampleBody); err != nil {
		t.Fatalf("readmecheck: %v", err)
	}
}

func check(readme, pkg string, body func(name string) ([]string, error)) error {
	marker := "<!-- example: " + pkg + " "
	found := 0
	for rest := readme; ; found++ {
		i := strings.Index(rest, marker)
		if i < 0 {
			break
		}
		rest = rest[i+len(marker):]
		name, _, ok := strings.Cut(rest, " -->")
		if !ok {
			return fmt.Errorf("marker %q without its end", marker)
		}
		_, block, ok := strings.Cut(rest, "```go\n")
		if !ok {
			return fmt.Errorf("no Go block after the marker of %s", name)
		}
		block, _, ok = strings.Cut(block, "```")
		if !ok {
			return fmt.Errorf("the Go block of %s is not closed", name)
		}
		example, err := body(name)
		if err != nil {
			return err
		}
		at := 0
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			for at < len(example) && example[at] != line {
				at++
			}
			if at == len(example) {
				return fmt.Errorf("README line %q is not in %s (in this order)", line, name)
			}
			at++
		}
	}
	if found == 0 {
		return fmt.Errorf("the README shows no snippet of %s", pkg)
	}
	return nil
}

// exampleBody returns the trimmed lines of the body of the example function
// name in the current directory's test files.
func exampleBody(name string) ([]string, error) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		_, body, ok := strings.Cut(string(src), "\nfunc "+name+"() {\n")
		if !ok {
			continue
		}
		body, _, _ = strings.Cut(body, "\n}\n")
		lines := strings.Split(body, "\n")
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		return lines, nil
	}
	return nil, fmt.Errorf("no example %s in this package's tests", name)
}
