package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// printTree prints the spans of one trace as a tree, children in start
// order, each with its messaging system, event and outcome. ran holds the
// consumer spans in which a handler ran.
func printTree(out io.Writer, spans []sdktrace.ReadOnlySpan, id trace.TraceID, ran map[trace.SpanID]bool) {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	known := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			known[s.SpanContext().SpanID()] = true
		}
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() != id {
			continue
		}
		if p := s.Parent().SpanID(); known[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) }
	for _, c := range children {
		slices.SortFunc(c, byStart)
	}
	slices.SortFunc(roots, byStart)
	fmt.Fprintf(out, "trace %s, %d spans\n", id, len(known))
	var walk func(s sdktrace.ReadOnlySpan, prefix, branch string)
	walk = func(s sdktrace.ReadOnlySpan, prefix, branch string) {
		fmt.Fprintf(out, "%s%s%s\n", prefix, branch, describe(s, children[s.SpanContext().SpanID()], ran))
		kids := children[s.SpanContext().SpanID()]
		next := prefix
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range kids {
			b := "├─ "
			if i == len(kids)-1 {
				b = "└─ "
			}
			walk(k, next, b)
		}
	}
	for _, r := range roots {
		walk(r, "", "")
	}
}

// describe is one line for a span.
func describe(s sdktrace.ReadOnlySpan, kids []sdktrace.ReadOnlySpan, ran map[trace.SpanID]bool) string {
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	str := func(k string) string { return attrs[attribute.Key(k)].AsString() }
	var b strings.Builder
	b.WriteString(s.Name())
	if sys := str("messaging.system"); sys != "" {
		fmt.Fprintf(&b, " [%s]", sys)
	}
	if id := str("messaging.message.id"); id != "" {
		fmt.Fprintf(&b, " %s", id)
	}
	if key := str("claimcheck.key"); key != "" {
		fmt.Fprintf(&b, " %s/%s…", str("claimcheck.bucket"), key[:min(len(key), 22)])
		if v, ok := attrs["claimcheck.size"]; ok {
			fmt.Fprintf(&b, " %.1f MB", float64(v.AsInt64())/(1<<20))
		}
		if attrs["claimcheck.reused"].AsBool() {
			b.WriteString(" (already there)")
		}
	}
	if strings.HasPrefix(s.Name(), "process ") {
		b.WriteString(": ")
		b.WriteString(outcome(s, kids, ran))
	}
	fmt.Fprintf(&b, "  (%s)", s.EndTime().Sub(s.StartTime()).Round(100e3))
	return b.String()
}

func outcome(s sdktrace.ReadOnlySpan, kids []sdktrace.ReadOnlySpan, ran map[trace.SpanID]bool) string {
	retries := 0
	for _, ev := range s.Events() {
		switch ev.Name {
		case "retry":
			retries++
		case "dead_letter":
			for _, kv := range ev.Attributes {
				if kv.Key == "reason" {
					return "DEAD-LETTERED here: " + kv.Value.AsString()
				}
			}
			return "DEAD-LETTERED here"
		}
	}
	for _, k := range kids {
		if strings.HasPrefix(k.Name(), "send ") {
			return "forwarded by the bridge"
		}
	}
	if ran[s.SpanContext().SpanID()] {
		if retries > 0 {
			return fmt.Sprintf("handled after %d retries", retries)
		}
		return "handled"
	}
	return "duplicate, skipped by idempotency"
}

// countSpans counts the ended spans named name for the event id.
func countSpans(rec *tracetest.SpanRecorder, name, eventID string) int {
	n := 0
	for _, s := range rec.Ended() {
		if s.Name() != name {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "messaging.message.id" && kv.Value.AsString() == eventID {
				n++
			}
		}
	}
	return n
}
