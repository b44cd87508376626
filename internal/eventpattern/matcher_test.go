package eventpattern

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func matchIDs(t *testing.T, m *Matcher[string], doc string) []string {
	t.Helper()
	ids, err := m.MatchJSON([]byte(doc), nil)
	require.NoError(t, err)
	return ids
}

func TestMatcherBasics(t *testing.T) {
	var m Matcher[string]
	assert.Equal(t, 0, m.Len())
	assert.Empty(t, matchIDs(t, &m, `{"type":"a"}`))

	m.Add("by-type", MustCompile(`{"type":["a","b"]}`))
	m.Add("by-prefix", MustCompile(`{"source":[{"prefix":"/shop/"}]}`))
	m.Add("numeric-only", MustCompile(`{"data":{"n":[{"numeric":[">",5]}]}}`))
	m.Add("either", MustCompile(`{"$or":[{"type":["c"]},{"source":[{"prefix":"/shop/eu"}]}]}`))
	m.Add("nested-key", MustCompile(`{"data":{"kind":["x"]},"type":[{"anything-but":"z"}]}`))
	assert.Equal(t, 5, m.Len())

	assert.Equal(t, []string{"by-type"}, matchIDs(t, &m, `{"type":"a"}`))
	assert.Equal(t, []string{"by-type", "by-prefix", "either"}, matchIDs(t, &m, `{"type":"b","source":"/shop/eu/1"}`))
	assert.Equal(t, []string{"numeric-only", "either"}, matchIDs(t, &m, `{"type":"c","data":{"n":6}}`))
	assert.Equal(t, []string{"nested-key"}, matchIDs(t, &m, `{"type":"q","data":{"kind":["y","x"]}}`))
	assert.Empty(t, matchIDs(t, &m, `{"type":"z","data":{"kind":"x"}}`))

	// Replacing moves the id to the end of the result order.
	m.Add("by-type", MustCompile(`{"type":["b"]}`))
	assert.Equal(t, 5, m.Len())
	assert.Equal(t, []string{"by-prefix", "either", "by-type"}, matchIDs(t, &m, `{"type":"b","source":"/shop/eu/1"}`))
	assert.Empty(t, matchIDs(t, &m, `{"type":"a"}`))

	assert.True(t, m.Remove("by-prefix"))
	assert.False(t, m.Remove("by-prefix"))
	assert.True(t, m.Remove("numeric-only"))
	assert.Equal(t, []string{"either", "by-type"}, matchIDs(t, &m, `{"type":"b","source":"/shop/eu/1","data":{"n":6}}`))

	// Slots are reused after removal.
	m.Add("new", MustCompile(`{"type":["b"]}`))
	assert.Equal(t, []string{"either", "by-type", "new"}, matchIDs(t, &m, `{"type":"b","source":"/shop/eu/1"}`))

	for _, id := range []string{"by-type", "either", "nested-key", "new"} {
		require.True(t, m.Remove(id))
	}
	assert.Equal(t, 0, m.Len())
	assert.Empty(t, m.paths, "path indexes are dropped when unused")
	assert.Empty(t, m.scan)

	assert.Panics(t, func() { m.Add("nil", nil) })
	_, err := m.MatchJSON([]byte(`[`), nil)
	assert.Error(t, err)
	assert.Empty(t, m.Match(nil, nil))
}

func TestMatcherAppendsToDst(t *testing.T) {
	m := NewMatcher[int]()
	m.Add(7, MustCompile(`{"type":["a"]}`))
	dst, err := m.MatchJSON([]byte(`{"type":"a"}`), []int{1, 2})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 7}, dst)
}

func TestMatcherIndexKeys(t *testing.T) {
	cases := []struct {
		pattern string
		keys    []string // "path=exact|prefix*"
		skip    bool
	}{
		{`{"type":["a"],"source":[{"prefix":"/x"}]}`, []string{"type=a"}, true},
		{`{"source":[{"prefix":"/x"}],"subject":["s"]}`, []string{"subject=s"}, true},
		{`{"source":[{"prefix":"/x"}]}`, []string{"source=/x*"}, true},
		{`{"source":[{"prefix":""}]}`, nil, false},
		{`{"data":{"kind":["k"]},"id":[{"numeric":[">",1]}]}`, []string{"data.kind=k"}, false},
		{`{"type":["a",{"prefix":"b"}]}`, []string{"type=a,b*"}, true},
		{`{"type":[{"suffix":"a"}]}`, nil, false},
		{`{"type":["a",{"exists":false}]}`, nil, false},
		{`{"$or":[{"type":["a"]},{"source":["s"]}]}`, []string{"type=a", "source=s"}, false},
		{`{"$or":[{"type":["a"]},{"source":[{"suffix":"s"}]}]}`, nil, false},
		{`{"x":[1],"$or":[{"type":["a"]},{"data":{"k":["v"]}}]}`, []string{"type=a", "data.k=v"}, false},
	}
	for _, tc := range cases {
		keys, skip := chooseKeys(MustCompile(tc.pattern).root)
		var got []string
		for _, k := range keys {
			vals := slices.Clone(k.exact)
			for _, p := range k.prefixes {
				vals = append(vals, p+"*")
			}
			got = append(got, strings.Join(k.path, ".")+"="+strings.Join(vals, ","))
		}
		assert.Equal(t, tc.keys, got, tc.pattern)
		assert.Equal(t, tc.skip, skip >= 0, tc.pattern)
	}
}

// TestMatcherAgreesWithPatterns compares a Matcher with evaluating every
// pattern, over random patterns and events built from a small vocabulary.
func TestMatcherAgreesWithPatterns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m Matcher[int]
	var patterns []*Pattern
	for i := 0; i < 400; i++ {
		p, err := Compile([]byte(randomPattern(rng, 0)))
		require.NoError(t, err)
		patterns = append(patterns, p)
		m.Add(i, p)
	}
	// Remove and re-add some to exercise slot reuse and ordering.
	for i := 0; i < 400; i += 7 {
		require.True(t, m.Remove(i))
	}
	for i := 0; i < 400; i += 14 {
		m.Add(i, patterns[i])
	}
	live := func(i int) bool { return i%7 != 0 || i%14 == 0 }
	total := 0
	for e := 0; e < 600; e++ {
		doc := randomEvent(rng)
		var want []int
		for i, p := range patterns {
			if !live(i) || i%14 == 0 {
				continue
			}
			ok, err := p.MatchJSON([]byte(doc))
			require.NoError(t, err)
			if ok {
				want = append(want, i)
			}
		}
		for i := 0; i < 400; i += 14 {
			if ok, _ := patterns[i].MatchJSON([]byte(doc)); ok {
				want = append(want, i)
			}
		}
		got, err := m.MatchJSON([]byte(doc), nil)
		require.NoError(t, err)
		require.Equal(t, want, got, "event %s", doc)
		total += len(got)
	}
	assert.Greater(t, total, 600, "the random patterns should match often")
}

var (
	vocabFields = []string{"type", "source", "subject", "k"}
	vocabValues = []string{"a", "ab", "abc", "b", "ba", ""}
)

func randomPattern(rng *rand.Rand, depth int) string {
	var members []string
	for _, f := range vocabFields {
		if rng.IntN(3) == 0 {
			members = append(members, fmt.Sprintf("%q:%s", f, randomValueList(rng)))
		}
	}
	if rng.IntN(4) == 0 {
		members = append(members, fmt.Sprintf(`"data":{"n":[{"numeric":[">",%d]}],"k":%s}`, rng.IntN(5), randomValueList(rng)))
	}
	if depth < 2 && rng.IntN(4) == 0 {
		members = append(members, fmt.Sprintf(`"$or":[%s,%s]`, randomPattern(rng, depth+1), randomPattern(rng, depth+1)))
	}
	if len(members) == 0 {
		members = append(members, fmt.Sprintf(`"type":%s`, randomValueList(rng)))
	}
	return "{" + strings.Join(members, ",") + "}"
}

func randomValueList(rng *rand.Rand) string {
	var vals []string
	for n := 1 + rng.IntN(3); n > 0; n-- {
		v := vocabValues[rng.IntN(len(vocabValues))]
		switch rng.IntN(8) {
		case 0, 1, 2:
			vals = append(vals, fmt.Sprintf("%q", v))
		case 3, 4:
			vals = append(vals, fmt.Sprintf(`{"prefix":%q}`, v))
		case 5:
			vals = append(vals, fmt.Sprintf(`{"anything-but":%q}`, v))
		case 6:
			vals = append(vals, fmt.Sprintf(`{"exists":%v}`, rng.IntN(2) == 0))
		default:
			vals = append(vals, fmt.Sprintf(`{"suffix":%q}`, v))
		}
	}
	return "[" + strings.Join(vals, ",") + "]"
}

func randomEvent(rng *rand.Rand) string {
	var members []string
	for _, f := range vocabFields {
		switch rng.IntN(4) {
		case 0:
		case 1:
			members = append(members, fmt.Sprintf("%q:[%q,%q]", f, vocabValues[rng.IntN(len(vocabValues))], vocabValues[rng.IntN(len(vocabValues))]))
		default:
			members = append(members, fmt.Sprintf("%q:%q", f, vocabValues[rng.IntN(len(vocabValues))]))
		}
	}
	members = append(members, fmt.Sprintf(`"data":{"n":%d,"k":%q}`, rng.IntN(6), vocabValues[rng.IntN(len(vocabValues))]))
	return "{" + strings.Join(members, ",") + "}"
}

func TestMatcherEvaluatesFewCandidates(t *testing.T) {
	var m Matcher[int]
	for i := 0; i < 10000; i++ {
		m.Add(i, routingPattern(i))
	}
	m.Add(-1, MustCompile(`{"data":{"amount":[{"numeric":[">",1e6]}]}}`)) // unindexable
	ev := benchEvents(t, 10000)[3]
	var d Doc
	d.Reset(ev)
	ids := m.MatchDoc(&d, nil)
	assert.NotEmpty(t, ids)
	assert.LessOrEqual(t, len(d.cands), 5, "one group of four plus the unindexed pattern")
}

func TestMatcherMatchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	var m Matcher[int]
	for i := 0; i < 1000; i++ {
		m.Add(i, routingPattern(i))
	}
	evs := benchEvents(t, 1000)
	dst := make([]int, 0, 16)
	n := 0
	allocs := testing.AllocsPerRun(500, func() {
		dst = m.Match(evs[n&15], dst[:0])
		n++
	})
	assert.Zero(t, allocs)
}

func TestMatcherConcurrentUse(t *testing.T) {
	var m Matcher[int]
	for i := 0; i < 200; i++ {
		m.Add(i, routingPattern(i))
	}
	evs := benchEvents(t, 200)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []int
			for i := 0; i < 2000; i++ {
				dst = m.Match(evs[i&15], dst[:0])
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 500; i++ {
			id := 200 + i%50
			m.Add(id, routingPattern(id))
			if i%3 == 0 {
				m.Remove(id)
			}
		}
	}()
	wg.Wait()
	assert.GreaterOrEqual(t, m.Len(), 200)
}
