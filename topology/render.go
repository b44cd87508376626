package topology

import (
	"fmt"
	"io"
	"strings"
)

// node identifiers: names are portable (letters, digits, '-'), so replacing
// '-' gives identifiers both Mermaid and DOT accept.
func topicID(name string) string { return "t_" + strings.ReplaceAll(name, "-", "_") }
func subID(topic, sub string) string {
	return "s_" + strings.ReplaceAll(topic, "-", "_") + "__" + strings.ReplaceAll(sub, "-", "_")
}
func dlqID(topic, sub string) string {
	return "d_" + strings.ReplaceAll(topic, "-", "_") + "__" + strings.ReplaceAll(sub, "-", "_")
}

// quote escapes text for a double-quoted Mermaid label.
func mermaidText(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;")
	return r.Replace(s)
}

// WriteMermaid writes the topology as a Mermaid flowchart: topics as
// cylinders, subscriptions as boxes naming their handler and options, and a
// dotted edge to where each route's dead letters go.
func (t Topology) WriteMermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, topic := range t.Topics() {
		fmt.Fprintf(&b, "  %s[(\"%s\")]\n", topicID(topic), mermaidText(topic))
	}
	for _, r := range t.Routes {
		fmt.Fprintf(&b, "  %s[\"%s<br/>%s<br/><small>%s</small>\"]\n", subID(r.Topic, r.Subscription),
			mermaidText(r.Subscription), mermaidText(r.ShortHandler()), mermaidText(r.Summary()))
		fmt.Fprintf(&b, "  %s --> %s\n", topicID(r.Topic), subID(r.Topic, r.Subscription))
		if r.DeadLetterTopic != "" {
			fmt.Fprintf(&b, "  %s -. dead letters .-> %s\n", subID(r.Topic, r.Subscription), topicID(r.DeadLetterTopic))
		} else {
			fmt.Fprintf(&b, "  %s[/\"%s\"/]\n", dlqID(r.Topic, r.Subscription), mermaidText("dead-letter queue of "+r.Subscription))
			fmt.Fprintf(&b, "  %s -. dead letters .-> %s\n", subID(r.Topic, r.Subscription), dlqID(r.Topic, r.Subscription))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// dotText escapes text for a double-quoted DOT string.
func dotText(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// WriteDOT writes the topology as a Graphviz digraph, laid out left to
// right like WriteMermaid's.
func (t Topology) WriteDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph crossbus {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n")
	for _, topic := range t.Topics() {
		fmt.Fprintf(&b, "  %s [shape=cylinder, label=\"%s\"];\n", topicID(topic), dotText(topic))
	}
	for _, r := range t.Routes {
		fmt.Fprintf(&b, "  %s [shape=box, style=rounded, label=\"%s\\n%s\\n%s\"];\n", subID(r.Topic, r.Subscription),
			dotText(r.Subscription), dotText(r.ShortHandler()), dotText(r.Summary()))
		fmt.Fprintf(&b, "  %s -> %s;\n", topicID(r.Topic), subID(r.Topic, r.Subscription))
		if r.DeadLetterTopic != "" {
			fmt.Fprintf(&b, "  %s -> %s [style=dashed, label=\"dead letters\"];\n", subID(r.Topic, r.Subscription), topicID(r.DeadLetterTopic))
		} else {
			fmt.Fprintf(&b, "  %s [shape=folder, label=\"%s\"];\n", dlqID(r.Topic, r.Subscription), dotText("dead-letter queue of "+r.Subscription))
			fmt.Fprintf(&b, "  %s -> %s [style=dashed, label=\"dead letters\"];\n", subID(r.Topic, r.Subscription), dlqID(r.Topic, r.Subscription))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
