package eventpattern

import (
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Matcher holds many patterns, each under an id, and finds the ones an event
// matches while decoding the event once.
//
// Its cost grows with the number of patterns that could match an event, not
// with the number it holds: each pattern is indexed under one field it
// requires, preferring an exact string value list (a hash lookup), else a
// prefix list (one lookup per distinct prefix length). An event then only
// evaluates the patterns found through its own values at the indexed paths,
// plus the few patterns that require no indexable field (for example a
// pattern with only numeric conditions). A pattern whose top level is an
// "$or" is indexed under one field of each alternative when every
// alternative has one.
//
// Match, MatchJSON and MatchDoc may run concurrently with each other and with
// Add and Remove. The zero Matcher is empty and ready to use.
type Matcher[K comparable] struct {
	mu    sync.RWMutex
	slots []slot[K]
	byID  map[K]int32
	free  []int32
	paths []*pathIndex
	scan  []int32 // slots evaluated for every event
	seq   uint64
}

type slot[K comparable] struct {
	id   K
	p    *Pattern
	seq  uint64 // insertion order, for stable results
	keys []indexKey
	skip int // top-level field already checked by the index, or -1
}

// indexKey is one required field of a pattern: at least one leaf value at
// path equals one of exact or begins with one of prefixes.
type indexKey struct {
	path     []string
	attr     attrID
	exact    []string
	prefixes []string
}

// pathIndex indexes the patterns keyed on one path.
type pathIndex struct {
	key      string // path joined by NUL
	path     []string
	attr     attrID
	exact    map[string][]int32
	prefix   map[string][]int32
	lens     []int // distinct prefix lengths, ascending
	lenCount map[int]int
	refs     int
}

// NewMatcher returns an empty Matcher.
func NewMatcher[K comparable]() *Matcher[K] { return &Matcher[K]{} }

// Len returns the number of patterns held.
func (m *Matcher[K]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byID)
}

// Add stores p under id, replacing any pattern already stored under id.
// Replacing gives id a new position in match results, which list ids in the
// order they were added. Add panics if p is nil.
func (m *Matcher[K]) Add(id K, p *Pattern) {
	if p == nil {
		panic("pattern: Matcher.Add with nil pattern")
	}
	keys, skip := chooseKeys(p.root)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil {
		m.byID = map[K]int32{}
	}
	if old, ok := m.byID[id]; ok {
		m.remove(old)
	}
	var s int32
	if n := len(m.free); n > 0 {
		s, m.free = m.free[n-1], m.free[:n-1]
	} else {
		s = int32(len(m.slots))
		m.slots = append(m.slots, slot[K]{})
	}
	m.seq++
	m.slots[s] = slot[K]{id: id, p: p, seq: m.seq, keys: keys, skip: skip}
	m.byID[id] = s
	if keys == nil {
		m.scan = append(m.scan, s)
		return
	}
	for _, k := range keys {
		pi := m.pathIndexFor(k)
		pi.refs++
		for _, v := range k.exact {
			pi.exact[v] = appendUnique(pi.exact[v], s)
		}
		for _, v := range k.prefixes {
			if len(pi.prefix[v]) == 0 {
				if pi.lenCount[len(v)] == 0 {
					pi.lens = insertSorted(pi.lens, len(v))
				}
				pi.lenCount[len(v)]++
			}
			pi.prefix[v] = appendUnique(pi.prefix[v], s)
		}
	}
}

// Remove deletes the pattern stored under id and reports whether there was one.
func (m *Matcher[K]) Remove(id K) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if ok {
		m.remove(s)
	}
	return ok
}

func (m *Matcher[K]) remove(s int32) {
	sl := &m.slots[s]
	delete(m.byID, sl.id)
	if sl.keys == nil {
		m.scan = deleteValue(m.scan, s)
	}
	for _, k := range sl.keys {
		pi := m.pathIndexFor(k)
		for _, v := range k.exact {
			if l := deleteValue(pi.exact[v], s); len(l) > 0 {
				pi.exact[v] = l
			} else {
				delete(pi.exact, v)
			}
		}
		for _, v := range k.prefixes {
			l := deleteValue(pi.prefix[v], s)
			if len(l) > 0 {
				pi.prefix[v] = l
				continue
			}
			if _, had := pi.prefix[v]; !had {
				continue
			}
			delete(pi.prefix, v)
			if pi.lenCount[len(v)]--; pi.lenCount[len(v)] == 0 {
				delete(pi.lenCount, len(v))
				pi.lens = deleteValue(pi.lens, len(v))
			}
		}
		if pi.refs--; pi.refs == 0 {
			m.paths = deleteValue(m.paths, pi)
		}
	}
	*sl = slot[K]{skip: -1}
	m.free = append(m.free, s)
}

func (m *Matcher[K]) pathIndexFor(k indexKey) *pathIndex {
	key := strings.Join(k.path, "\x00")
	for _, pi := range m.paths {
		if pi.key == key {
			return pi
		}
	}
	pi := &pathIndex{
		key: key, path: k.path, attr: k.attr,
		exact: map[string][]int32{}, prefix: map[string][]int32{}, lenCount: map[int]int{},
	}
	m.paths = append(m.paths, pi)
	return pi
}

// Match appends to dst the ids of the patterns ev matches, in the order
// they were added, and returns the extended slice. With a dst of enough
// capacity it does not allocate.
func (m *Matcher[K]) Match(ev *event.Event, dst []K) []K {
	if ev == nil {
		return dst
	}
	d := getDoc()
	d.Reset(ev)
	dst = m.MatchDoc(d, dst)
	putDoc(d)
	return dst
}

// MatchJSON is Match for an event in JSON form (see Pattern.MatchJSON).
func (m *Matcher[K]) MatchJSON(doc []byte, dst []K) ([]K, error) {
	d := getDoc()
	defer putDoc(d)
	if err := d.ResetJSON(doc); err != nil {
		return dst, err
	}
	return m.MatchDoc(d, dst), nil
}

// MatchDoc is Match for an already decoded event.
func (m *Matcher[K]) MatchDoc(d *Doc, dst []K) []K {
	if !d.holdsEvent() {
		return dst
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	d.beginMatch(len(m.slots))
	for _, pi := range m.paths {
		d.vals = d.vals[:0]
		d.collectStrings(d.root, pi.path, pi.attr)
		for _, vi := range d.vals {
			s := d.t.nodes[vi].s
			d.addCands(pi.exact[s])
			for _, n := range pi.lens {
				if n > len(s) {
					break
				}
				d.addCands(pi.prefix[s[:n]])
			}
		}
	}
	d.addCands(m.scan)
	d.matched = d.matched[:0]
	for _, s := range d.cands {
		sl := &m.slots[s]
		if !d.evalObj(sl.p.root, d.root, sl.skip) {
			continue
		}
		// Keep matches in insertion order (an insertion sort: few match).
		l := append(d.matched, s)
		for i := len(l) - 1; i > 0 && m.slots[l[i-1]].seq > m.slots[l[i]].seq; i-- {
			l[i-1], l[i] = l[i], l[i-1]
		}
		d.matched = l
	}
	for _, s := range d.matched {
		dst = append(dst, m.slots[s].id)
	}
	return dst
}

// beginMatch prepares the candidate marks for a matcher of n slots.
func (d *Doc) beginMatch(n int) {
	d.gen++
	if d.gen == 0 || len(d.marks) < n {
		if cap(d.marks) < n {
			d.marks = make([]uint32, n, n+n/4)
		} else {
			d.marks = d.marks[:n]
			clear(d.marks)
		}
		if d.gen == 0 {
			clear(d.marks)
			d.gen = 1
		}
	}
	d.cands = d.cands[:0]
}

func (d *Doc) addCands(slots []int32) {
	for _, s := range slots {
		if d.marks[s] != d.gen {
			d.marks[s] = d.gen
			d.cands = append(d.cands, s)
		}
	}
}

// collectStrings appends to d.vals the string leaves found at path below v,
// looking through arrays.
func (d *Doc) collectStrings(v int32, path []string, attr attrID) {
	if v >= 0 && d.t.nodes[v].kind == kArray {
		end := d.t.nodes[v].end
		for i := v + 1; i < end; i = d.t.nodes[i].end {
			d.collectStrings(i, path, attr)
		}
		return
	}
	if len(path) == 0 {
		if v >= 0 && d.t.nodes[v].kind == kString {
			d.vals = append(d.vals, v)
		}
		return
	}
	d.collectStrings(d.field(v, path[0], attr), path[1:], attrExt)
}

func appendUnique(l []int32, s int32) []int32 {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

func deleteValue[T comparable](l []T, v T) []T {
	for i, x := range l {
		if x == v {
			copy(l[i:], l[i+1:])
			var zero T
			l[len(l)-1] = zero
			return l[:len(l)-1]
		}
	}
	return l
}

func insertSorted(l []int, v int) []int {
	i := len(l)
	for i > 0 && l[i-1] > v {
		i--
	}
	l = append(l, 0)
	copy(l[i+1:], l[i:])
	l[i] = v
	return l
}

// chooseKeys picks the index keys of a top-level pattern object: one
// required leaf field whose value list holds only exact strings and non-empty
// prefixes, or, failing that, one such field in every "$or" alternative. It
// returns nil when the pattern must be evaluated for every event. skip is the
// index of the chosen field in o.fields when it is a top-level field (so an
// index hit proves it matches), else -1.
func chooseKeys(o *objNode) (keys []indexKey, skip int) {
	found, bestScore, skip := false, 0, -1
	var best indexKey
	var walk func(o *objNode, path []string)
	walk = func(o *objNode, path []string) {
		for i, f := range o.fields {
			p := append(path[:len(path):len(path)], f.name)
			if f.obj != nil {
				walk(f.obj, p)
				continue
			}
			k, score := leafKey(f.leaf)
			if score == 0 {
				continue
			}
			// Prefer exact over prefix, shallow over deep, type and source
			// over other fields, and shorter value lists.
			depth := len(path)
			score = score*1_000_000 - depth*10_000 - len(k.exact) - len(k.prefixes)
			if depth == 0 && (f.name == "type" || f.name == "source") {
				score += 5_000
			}
			if !found || score > bestScore {
				found, bestScore, best = true, score, k
				best.path, best.attr = p, attrOf(p[0])
				skip = -1
				if depth == 0 {
					skip = i
				}
			}
		}
	}
	walk(o, nil)
	if found {
		return []indexKey{best}, skip
	}
	if o.or == nil {
		return nil, -1
	}
	for _, alt := range o.or {
		k, _ := chooseKeys(alt)
		if k == nil {
			return nil, -1
		}
		keys = append(keys, k...)
	}
	return keys, -1
}

// leafKey reports whether a value list can key the index: score 2 for only
// exact strings, 1 for exact strings and non-empty prefixes, 0 otherwise.
func leafKey(l *leafNode) (indexKey, int) {
	var k indexKey
	for _, c := range l.conds {
		switch {
		case c.kind == cString:
			k.exact = append(k.exact, c.str)
		case c.kind == cPrefix && c.str != "":
			k.prefixes = append(k.prefixes, c.str)
		default:
			return indexKey{}, 0
		}
	}
	if len(k.prefixes) > 0 {
		return k, 1
	}
	return k, 2
}
