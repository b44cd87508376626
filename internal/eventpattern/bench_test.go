package eventpattern

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/stretchr/testify/require"
)

// routingPattern returns the i-th of a family of typical routing patterns:
// an event type (shared by groups of four routes), a source prefix, and one
// numeric or string condition on data.
func routingPattern(i int) *Pattern {
	group := i / 4
	var data string
	switch i % 4 {
	case 0:
		data = fmt.Sprintf(`"amount": [{"numeric": [">", %d]}]`, i%100)
	case 1:
		data = `"currency": ["EUR", "USD"]`
	case 2:
		data = `"customer": {"tier": [{"anything-but": "blocked"}]}`
	default:
		data = fmt.Sprintf(`"amount": [{"numeric": [">=", 0, "<", %d]}]`, 1000+i)
	}
	return MustCompile(fmt.Sprintf(`{
		"type": ["com.example.domain%d.order.created"],
		"source": [{"prefix": "/regions/%d/"}],
		"data": {%s}
	}`, group, group%10, data))
}

// benchEvents returns events that each hit one group of routes (four
// patterns) among the first n patterns.
func benchEvents(tb testing.TB, n int) []*event.Event {
	groups := (n + 3) / 4
	evs := make([]*event.Event, 16)
	for j := range evs {
		g := (j * 7919) % groups
		ev := event.New()
		ev.SetID(fmt.Sprintf("id-%d", j))
		ev.SetSource(fmt.Sprintf("/regions/%d/shop-%d", g%10, j))
		ev.SetType(fmt.Sprintf("com.example.domain%d.order.created", g))
		ev.SetTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
		ev.SetExtension("partitionkey", fmt.Sprintf("customer-%d", j))
		require.NoError(tb, ev.SetData(event.ApplicationJSON, map[string]any{
			"orderId":  fmt.Sprintf("o-%d", j),
			"amount":   float64(j*13%200) + 0.5,
			"currency": []string{"EUR", "USD", "GBP"}[j%3],
			"customer": map[string]any{"id": fmt.Sprintf("c-%d", j), "tier": "gold"},
			"items":    []any{map[string]any{"sku": "A-1", "qty": 2}, map[string]any{"sku": "B-7", "qty": 1}},
		}))
		evs[j] = &ev
	}
	return evs
}

// BenchmarkMatch measures a Matcher holding N typical routing patterns,
// including the per-event decode (once per event, shared by all patterns).
// Besides events/s (wall time) it reports cpu-ns/op, the CPU time of the
// benchmark's thread per event, which stays meaningful on a loaded machine.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			var m Matcher[int]
			for i := range n {
				m.Add(i, routingPattern(i))
			}
			evs := benchEvents(b, n)
			dst := make([]int, 0, 16)
			matches := 0
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, cpuOK := threadCPUTime()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst = m.Match(evs[i&15], dst[:0])
				matches += len(dst)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if cpu1, ok := threadCPUTime(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			if matches == 0 {
				b.Fatal("no event matched")
			}
		})
	}
}

// BenchmarkDecode measures the tape decoder alone on a typical event payload.
func BenchmarkDecode(b *testing.B) {
	data := benchEvents(b, 1)[0].Data()
	var t tape
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t.reset()
		if _, err := t.decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
