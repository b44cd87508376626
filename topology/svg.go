package topology

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// SVG layout, in pixels.
const (
	svgColTopic = 20
	svgColSub   = 300
	svgColDead  = 640
	svgTopicW   = 200
	svgSubW     = 280
	svgDeadW    = 220
	svgRowH     = 84
	svgBoxH     = 62
	svgTop      = 40
)

// WriteSVG draws the topology as a standalone SVG image: topics on the left,
// one box per route (subscription, handler, options) in the middle, and
// where each route's dead letters go on the right. Elements carry classes
// (topic, route, deadletter, edge) and data-topic / data-subscription
// attributes for styling and scripting; text is escaped.
func (t Topology) WriteSVG(w io.Writer) error {
	var b strings.Builder
	rows := max(len(t.Routes), 1)
	height := svgTop + rows*svgRowH + 20
	width := svgColDead + svgDeadW + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="topology" role="img" viewBox="0 0 %d %d" width="%d" height="%d">`, width, height, width, height)
	b.WriteString(`<title>Event routes: topics, subscriptions and where their dead letters go</title>`)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>`)
	b.WriteString(`<style>text{font-family:system-ui,sans-serif;font-size:13px;fill:#1a1a1a}.small{font-size:11px;fill:#444}.head{font-weight:600;font-size:12px;fill:#555}.topic rect{fill:#e6f0ff;stroke:#2f6fd6}.route rect{fill:#fff;stroke:#333}.deadletter rect{fill:#fff0f0;stroke:#c0392b;stroke-dasharray:4 3}.edge{stroke:#555;fill:none;stroke-width:1.4}.edge.dead{stroke:#c0392b;stroke-dasharray:5 4}</style>`)
	fmt.Fprintf(&b, `<text class="head" x="%d" y="22">TOPICS</text><text class="head" x="%d" y="22">ROUTES</text><text class="head" x="%d" y="22">DEAD LETTERS</text>`, svgColTopic, svgColSub, svgColDead)
	if len(t.Routes) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">No routes.</text>`, svgColSub, svgTop+30)
	}
	// Topics: each in the row of its first route; dead-letter topics
	// that no route reads are drawn in the right column.
	topicY := map[string]int{}
	for i, r := range t.Routes {
		if _, ok := topicY[r.Topic]; !ok {
			topicY[r.Topic] = svgTop + i*svgRowH
		}
	}
	esc := html.EscapeString
	for _, topic := range t.Topics() {
		y, ok := topicY[topic]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, `<g class="topic" data-topic="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="14"/><text x="%d" y="%d">%s</text><text class="small" x="%d" y="%d">topic</text></g>`,
			esc(topic), svgColTopic, y, svgTopicW, svgBoxH, svgColTopic+12, y+26, esc(clip(topic, 26)), svgColTopic+12, y+46)
	}
	for i, r := range t.Routes {
		y := svgTop + i*svgRowH
		ty := topicY[r.Topic]
		fmt.Fprintf(&b, `<path class="edge" marker-end="url(#arrow)" d="M%d,%d C%d,%d %d,%d %d,%d"/>`,
			svgColTopic+svgTopicW, ty+svgBoxH/2, svgColTopic+svgTopicW+40, ty+svgBoxH/2, svgColSub-40, y+svgBoxH/2, svgColSub, y+svgBoxH/2)
		fmt.Fprintf(&b, `<g class="route" data-topic="%s" data-subscription="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="4"/>`,
			esc(r.Topic), esc(r.Subscription), svgColSub, y, svgSubW, svgBoxH)
		fmt.Fprintf(&b, `<text x="%d" y="%d"><tspan font-weight="600">%s</tspan></text>`, svgColSub+10, y+19, esc(clip(r.Subscription, 36)))
		fmt.Fprintf(&b, `<text class="small" x="%d" y="%d">%s</text>`, svgColSub+10, y+36, esc(clip(r.ShortHandler(), 44)))
		fmt.Fprintf(&b, `<text class="small" x="%d" y="%d">%s</text></g>`, svgColSub+10, y+53, esc(clip(r.Summary(), 46)))
		target, label := "dead-letter queue", r.Subscription
		if r.DeadLetterTopic != "" {
			target, label = "dead-letter topic", r.DeadLetterTopic
		}
		fmt.Fprintf(&b, `<path class="edge dead" marker-end="url(#arrow)" d="M%d,%d L%d,%d"/>`, svgColSub+svgSubW, y+svgBoxH/2, svgColDead, y+svgBoxH/2)
		fmt.Fprintf(&b, `<g class="deadletter" data-topic="%s" data-subscription="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="4"/><text x="%d" y="%d">%s</text><text class="small" x="%d" y="%d">%s</text></g>`,
			esc(r.Topic), esc(r.Subscription), svgColDead, y+6, svgDeadW, svgBoxH-12, svgColDead+10, y+26, esc(clip(label, 28)), svgColDead+10, y+43, target)
	}
	b.WriteString(`</svg>`)
	_, err := io.WriteString(w, b.String())
	return err
}

// clip shortens s to n runes with an ellipsis.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
