package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// trace prints the demo's story, one line per thing that happened, with the
// time since the start. Safe for concurrent use.
type trace struct {
	mu    sync.Mutex
	out   io.Writer
	start time.Time
}

func newTrace(out io.Writer) *trace { return &trace{out: out, start: time.Now()} }

func (t *trace) since() time.Duration { return time.Since(t.start) }

func (t *trace) title(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "\n== %s\n", fmt.Sprintf(format, args...))
}

// log prints "  +12ms [who]  message".
func (t *trace) log(who, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms := t.since().Milliseconds()
	fmt.Fprintf(t.out, "  %+6dms %-12s %s\n", ms, "["+who+"]", fmt.Sprintf(format, args...))
}

// table prints aligned key/value rows.
func (t *trace) table(rows [][2]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := 0
	for _, r := range rows {
		w = max(w, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(t.out, "           %s%s  %s\n", r[0], strings.Repeat(" ", w-len(r[0])), r[1])
	}
}
