package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
BenchmarkScale/subscriptions=1-2   20000  1889 ns/op  1872 cpu-ns/event  529434 events/s  788 B/op  2 allocs/op
BenchmarkScale/subscriptions=1-2   20000  1889 ns/op  2000 cpu-ns/event  529434 events/s  788 B/op  2 allocs/op
BenchmarkScale/subscriptions=1-2   20000  1889 ns/op  9000 cpu-ns/event  529434 events/s  788 B/op  2 allocs/op
BenchmarkScale/subscriptions=4-2   20000  7007 ns/op  5594 cpu-ns/event  142715 events/s  2324 B/op  5 allocs/op
BenchmarkScale/size=1024-2         20000  7903 ns/op  4067 cpu-ns/event  126532 events/s  2869 B/op  2 allocs/op
BenchmarkOther/x=1-2               20000  7903 ns/op  4067 cpu-ns/event
`

func TestParseTakesEveryRunOfEachPoint(t *testing.T) {
	p, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	assert.Equal(t, []float64{1872, 2000, 9000}, p["subscriptions"][1])
	assert.Equal(t, 2000.0, median(p["subscriptions"][1]), "the median, not the mean, of the runs")
	assert.Equal(t, []float64{4067}, p["size"][1024])
	assert.NotContains(t, p, "x", "other benchmarks are ignored")
}

func TestParseRefusesInputWithoutFigures(t *testing.T) {
	_, err := parse(strings.NewReader("BenchmarkScale/size=1-2 10 5 ns/op\n"))
	assert.ErrorContains(t, err, "no BenchmarkScale line")
}

func TestRenderDrawsEveryPanel(t *testing.T) {
	p, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, render(&b, p))
	svg := b.String()
	assert.True(t, strings.HasPrefix(svg, "<svg"))
	assert.Contains(t, svg, "1 KB: 4.067 µs", "the size point, labelled in KB")
	assert.Contains(t, svg, "4: 5.594 µs")
	assert.Contains(t, svg, "no data", "concurrency and backlog panels have no points here")
	assert.Equal(t, 3, strings.Count(svg, "<circle"))
}
