package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walkthroughHeading is the README section that shows the crossbus command
// on the demo's state.
const walkthroughHeading = "### Trying it on the marketplace demo"

// walkthroughDir is the state directory the README's commands use.
const walkthroughDir = "/tmp/marketplace"

// walkthrough returns the commands of the README section's first sh block,
// split into words.
func walkthrough(t *testing.T) [][]string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), walkthroughHeading+"\n")
	require.True(t, ok, "README has the section %q", walkthroughHeading)
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok, "the section has an sh block")
	block, _, _ = strings.Cut(block, "```")
	var cmds [][]string
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			cmds = append(cmds, strings.Fields(line))
		}
	}
	return cmds
}

// build compiles a package of the module into dir and returns the binary.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s: %s", pkg, out)
	return bin
}

// The README's walkthrough runs as written: the demo on embedded NATS
// storing in a directory, then, each in a process of its own, the crossbus
// command's dead-letter groups (which shows the sign-up the demo
// dead-lettered), a redrive of that group, the topology the demo wrote and
// a replay of the archived sign-ups. Only the state directory differs.
func TestREADMEWalkthroughOnTheDemosState(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo and the crossbus command")
	}
	cmds := walkthrough(t)
	require.Len(t, cmds, 5, "the demo, dlq groups, dlq redrive, topology, replay")
	bins := t.TempDir()
	demo := build(t, bins, "./examples/marketplace")
	cli := build(t, bins, "./cmd/crossbus")
	state := t.TempDir()

	var outs []string
	for i, words := range cmds {
		require.GreaterOrEqual(t, len(words), 3, "command %d: go run ./pkg ...", i+1)
		require.Equal(t, []string{"go", "run"}, words[:2], "command %d", i+1)
		bin := map[string]string{"./examples/marketplace": demo, "./cmd/crossbus": cli}[words[2]]
		require.NotEmpty(t, bin, "command %d runs %s", i+1, words[2])
		args := make([]string, len(words)-3)
		for j, w := range words[3:] {
			args[j] = strings.ReplaceAll(w, walkthroughDir, state)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("command %d (%s) exited %d:\n%s\n%s", i+1, strings.Join(words, " "), ee.ExitCode(), stdout.String(), stderr.String())
		}
		require.NoError(t, err, "command %d", i+1)
		outs = append(outs, stdout.String())
	}
	assert.Contains(t, outs[0], `dead letter u-3 after 3 attempts: "carrier gateway timeout for +99900000003"`, "the demo dead-lettered u-3's sign-up")
	assert.Regexp(t, `(?m)^g0f5b49d885b5\s+1\s+\S+\s+carrier gateway timeout for <n>$`, outs[1],
		"dlq groups, in another process, sees the dead letter, in the group the README redrives")
	assert.Equal(t, "redrove 1 of 1 dead letters\n", outs[2])
	for _, sub := range []string{"sms", "email", "marketing", "analytics"} {
		assert.Regexp(t, fmt.Sprintf(`(?m)^user-signedup\s+%s\s`, sub), outs[3], "the topology lists the fan-out's %s route", sub)
	}
	assert.Regexp(t, `done, 5 events published to user-signedup \(subscription analytics only\)`, outs[4],
		"the four sign-ups and u-2's re-published duplicate were archived and replayed")
}
