// Command plotscale draws BenchmarkScale's results as an SVG chart: one
// panel per dimension (subscriptions, concurrency, event size, backlog
// depth), CPU time per event against the dimension's value on a log scale,
// the median of the runs of each point.
//
//	go test -run '^$' -bench BenchmarkScale -count 3 ./providers/memory/ | go run ./scripts/plotscale > docs/scale.svg
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// panels are BenchmarkScale's dimensions, in the order they are drawn.
var panels = []struct{ key, title, unit string }{
	{"subscriptions", "subscriptions of the topic", ""},
	{"concurrency", "route concurrency (workers)", ""},
	{"size", "event data size", "B"},
	{"backlog", "backlog depth (events unhandled)", ""},
}

var line = regexp.MustCompile(`^BenchmarkScale/(\w+)=(\d+)(?:-\d+)?\s+\d+\s.*?\s([\d.]+) cpu-ns/event`)

func main() {
	points, err := parse(os.Stdin)
	if err == nil {
		err = render(os.Stdout, points)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plotscale:", err)
		os.Exit(1)
	}
}

// parse reads benchmark output and returns, per dimension and value, the
// cpu-ns/event of every run.
func parse(r io.Reader) (map[string]map[int][]float64, error) {
	points := map[string]map[int][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		x, err := strconv.Atoi(m[2])
		if err != nil {
			return nil, fmt.Errorf("value %q of %s: %w", m[2], m[1], err)
		}
		y, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("cpu-ns/event %q of %s=%d: %w", m[3], m[1], x, err)
		}
		if points[m[1]] == nil {
			points[m[1]] = map[int][]float64{}
		}
		points[m[1]][x] = append(points[m[1]][x], y)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(points) == 0 {
		return nil, errors.New("no BenchmarkScale line with a cpu-ns/event figure in the input")
	}
	return points, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

const (
	panelW, panelH = 420, 260
	marginL        = 70
	marginB        = 46
	marginT        = 34
	marginR        = 20
)

func render(w io.Writer, points map[string]map[int][]float64) error {
	var b strings.Builder
	width, height := 2*panelW, 2*panelH
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	for i, p := range panels {
		ox, oy := float64(i%2*panelW), float64(i/2*panelH)
		drawPanel(&b, ox, oy, p.title, p.unit, points[p.key])
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func drawPanel(b *strings.Builder, ox, oy float64, title, unit string, pts map[int][]float64) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold">%s</text>`+"\n", ox+marginL, oy+20, title)
	if len(pts) == 0 {
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f">no data</text>`+"\n", ox+marginL, oy+panelH/2)
		return
	}
	xs := make([]int, 0, len(pts))
	for x := range pts {
		xs = append(xs, x)
	}
	slices.Sort(xs)
	ys := make([]float64, len(xs))
	top := 0.0
	for i, x := range xs {
		ys[i] = median(pts[x]) / 1000 // µs
		top = max(top, ys[i])
	}
	top = niceCeil(top)
	lx0, lx1 := math.Log2(float64(xs[0])), math.Log2(float64(xs[len(xs)-1]))
	if lx1 == lx0 {
		lx1 = lx0 + 1
	}
	plotW := float64(panelW - marginL - marginR)
	plotH := float64(panelH - marginT - marginB)
	px := func(x int) float64 { return ox + marginL + (math.Log2(float64(x))-lx0)/(lx1-lx0)*plotW }
	py := func(y float64) float64 { return oy + marginT + plotH - y/top*plotH }
	// Axes, grid and labels.
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", ox+marginL, py(0), ox+marginL+plotW, py(0))
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", ox+marginL, py(0), ox+marginL, py(top))
	for k := 0; k <= 4; k++ {
		y := top * float64(k) / 4
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", ox+marginL, py(y), ox+marginL+plotW, py(y))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox+marginL-6, py(y)+4, trim(y))
	}
	for _, x := range xs {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), py(0)+16, size(x, unit))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">CPU µs per event</text>`+"\n",
		ox+16, oy+marginT+plotH/2, ox+16, oy+marginT+plotH/2)
	// The curve and its points.
	var path strings.Builder
	for i, x := range xs {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, px(x), py(ys[i]))
	}
	fmt.Fprintf(b, `<path d="%s" fill="none" stroke="#1f77b4" stroke-width="2"/>`+"\n", strings.TrimSpace(path.String()))
	for i, x := range xs {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#1f77b4"><title>%s: %s µs</title></circle>`+"\n", px(x), py(ys[i]), size(x, unit), trim(ys[i]))
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trim(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// size prints a value, in KB or MB where it is a byte size.
func size(x int, unit string) string {
	switch {
	case unit == "B" && x >= 1<<20:
		return fmt.Sprintf("%d MB", x>>20)
	case unit == "B" && x >= 1<<10:
		return fmt.Sprintf("%d KB", x>>10)
	case unit == "B":
		return fmt.Sprintf("%d B", x)
	}
	return strconv.Itoa(x)
}
