package eventpattern

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// This file checks the attribute translators semantically: a small
// interpreter evaluates the filters they emit, and for random patterns and
// events every locally matching event must pass the native filter, and an
// exact filter must pass nothing else.

// tri is a three-valued truth value (Service Bus SQL has UNKNOWN).
type tri int8

const (
	tFalse tri = iota
	tUnknown
	tTrue
)

func triOf(b bool) tri {
	if b {
		return tTrue
	}
	return tFalse
}

func (a tri) not() tri { return 2 - a }

// filterParser parses the filter subset the translators emit.
type filterParser struct {
	toks  []string
	pos   int
	attrs map[string]string
	// atom parses one comparison at the current position.
	atom func(p *filterParser) tri
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(' || c == ')' || c == ',' || c == ':' || c == '.' || c == '=':
			toks = append(toks, string(c))
			i++
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			toks = append(toks, "!=")
			i += 2
		case c == '"':
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
					switch s[j] {
					case 'n':
						b.WriteByte('\n')
					case 'r':
						b.WriteByte('\r')
					case 't':
						b.WriteByte('\t')
					case 'x':
						var v byte
						fmt.Sscanf(s[j+1:j+3], "%02x", &v)
						b.WriteByte(v)
						j += 2
					default:
						b.WriteByte(s[j])
					}
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			toks = append(toks, "\x00"+b.String())
			i = j + 1
		case c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(s); j++ {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			toks = append(toks, "\x00"+b.String())
			i = j + 1
		default:
			j := i
			for j < len(s) && strings.IndexByte(" (),:.=!\"'", s[j]) < 0 {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected %q in %q", c, s)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) next() string { t := p.peek(); p.pos++; return t }

func (p *filterParser) expect(tok string) {
	if got := p.next(); got != tok {
		panic(fmt.Sprintf("expected %q, got %q", tok, got))
	}
}

func (p *filterParser) str() string {
	t := p.next()
	if !strings.HasPrefix(t, "\x00") {
		panic(fmt.Sprintf("expected a string, got %q", t))
	}
	return t[1:]
}

// expr parses terms joined by AND or OR, refusing to mix them without
// parentheses.
func (p *filterParser) expr() tri {
	v := p.term()
	op := ""
	for p.peek() == "AND" || p.peek() == "OR" {
		o := p.next()
		if op != "" && o != op {
			panic("AND and OR mixed without parentheses")
		}
		op = o
		w := p.term()
		if o == "AND" {
			v = min(v, w)
		} else {
			v = max(v, w)
		}
	}
	return v
}

func (p *filterParser) term() tri {
	switch p.peek() {
	case "NOT":
		p.next()
		return p.term().not()
	case "(":
		p.next()
		v := p.expr()
		p.expect(")")
		return v
	}
	return p.atom(p)
}

func evalFilter(filter string, attrs map[string]string, atom func(p *filterParser) tri) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v in %q", r, filter)
		}
	}()
	toks, err := tokenize(filter)
	if err != nil {
		return false, err
	}
	p := &filterParser{toks: toks, attrs: attrs, atom: atom}
	v := p.expr()
	if p.pos != len(toks) {
		return false, fmt.Errorf("trailing tokens in %q", filter)
	}
	return v == tTrue, nil
}

// pubsubAtom evaluates Pub/Sub comparisons. neMissing is the value of
// "!=" for a missing attribute, which the documentation leaves open.
func pubsubAtom(neMissing bool) func(p *filterParser) tri {
	return func(p *filterParser) tri {
		if p.peek() == "hasPrefix" {
			p.next()
			p.expect("(")
			p.expect("attributes")
			p.expect(".")
			v, ok := p.attrs[p.next()]
			p.expect(",")
			prefix := p.str() // always consumed
			p.expect(")")
			return triOf(ok && strings.HasPrefix(v, prefix))
		}
		p.expect("attributes")
		if p.peek() == ":" {
			p.next()
			_, ok := p.attrs[p.next()]
			return triOf(ok)
		}
		p.expect(".")
		v, ok := p.attrs[p.next()]
		switch op := p.next(); op {
		case "=":
			s := p.str()
			return triOf(ok && v == s)
		case "!=":
			s := p.str()
			if !ok {
				return triOf(neMissing)
			}
			return triOf(v != s)
		default:
			panic("unknown operator " + op)
		}
	}
}

// sbAtom evaluates Service Bus SQL comparisons; a missing property is UNKNOWN.
func sbAtom(p *filterParser) tri {
	if p.peek() == "EXISTS" {
		p.next()
		p.expect("(")
		_, ok := p.attrs[p.next()]
		p.expect(")")
		return triOf(ok)
	}
	v, ok := p.attrs[p.next()]
	negate := false
	if p.peek() == "NOT" {
		p.next()
		negate = true
	}
	var r tri
	switch op := p.next(); op {
	case "=":
		s := p.str()
		r = triOf(v == s)
	case "IN":
		p.expect("(")
		in := false
		for {
			s := p.str()
			in = in || v == s
			if p.next() == ")" {
				break
			}
		}
		r = triOf(in)
	case "LIKE":
		pat := p.str()
		esc := byte(0)
		if p.peek() == "ESCAPE" {
			p.next()
			esc = p.str()[0]
		}
		r = triOf(likeMatch(v, pat, esc))
	default:
		panic("unknown operator " + op)
	}
	if !ok {
		return tUnknown
	}
	if negate {
		return r.not()
	}
	return r
}

// likeMatch implements SQL LIKE with '%', '_' and an escape character.
func likeMatch(s, pat string, esc byte) bool {
	if pat == "" {
		return s == ""
	}
	switch c := pat[0]; {
	case esc != 0 && c == esc:
		return s != "" && s[0] == pat[1] && likeMatch(s[1:], pat[2:], esc)
	case c == '%':
		for i := 0; i <= len(s); i++ {
			if likeMatch(s[i:], pat[1:], esc) {
				return true
			}
		}
		return false
	case c == '_':
		return s != "" && likeMatch(s[1:], pat[1:], esc)
	default:
		return s != "" && s[0] == c && likeMatch(s[1:], pat[1:], esc)
	}
}

var (
	attrVocabNames  = []string{"type", "source", "subject", "partitionkey"}
	attrVocabValues = []string{"a", "ab", "a_b", "a%b", "O'x", `q"`, `b\`, "ab!", "Ab", "b"}
)

func randomAttrCond(rng *rand.Rand) string {
	v := fmt.Sprintf("%q", attrVocabValues[rng.IntN(len(attrVocabValues))])
	w := fmt.Sprintf("%q", attrVocabValues[rng.IntN(len(attrVocabValues))])
	switch rng.IntN(14) {
	case 0, 1, 2:
		return v
	case 3:
		return fmt.Sprintf(`{"prefix":%s}`, v)
	case 4:
		return fmt.Sprintf(`{"suffix":%s}`, v)
	case 5:
		return fmt.Sprintf(`{"equals-ignore-case":%s}`, v)
	case 6:
		return fmt.Sprintf(`{"anything-but":[%s,%s]}`, v, w)
	case 7:
		if rng.IntN(2) == 0 {
			return fmt.Sprintf(`{"anything-but":{"prefix":[%s,%s]}}`, v, w)
		}
		return fmt.Sprintf(`{"anything-but":{"prefix":%s}}`, v)
	case 8:
		if rng.IntN(2) == 0 {
			return fmt.Sprintf(`{"anything-but":{"suffix":[%s,%s]}}`, v, w)
		}
		return fmt.Sprintf(`{"anything-but":{"suffix":%s}}`, v)
	case 9:
		return fmt.Sprintf(`{"exists":%v}`, rng.IntN(2) == 0)
	case 10:
		return fmt.Sprintf(`{"wildcard":%q}`, []string{"a*", "*b", "a*b", "*", "a\\*b", "*_*"}[rng.IntN(6)])
	case 11:
		return `{"anything-but":{"wildcard":["a*","*!"]}}`
	case 12:
		return `{"numeric":[">",1]}`
	default:
		return `{"anything-but":5}`
	}
}

func randomAttrPattern(rng *rand.Rand, depth int) string {
	var members []string
	for _, name := range attrVocabNames {
		if rng.IntN(3) == 0 {
			conds := []string{randomAttrCond(rng)}
			if rng.IntN(3) == 0 {
				conds = append(conds, randomAttrCond(rng))
			}
			members = append(members, fmt.Sprintf("%q:[%s]", name, strings.Join(conds, ",")))
		}
	}
	if rng.IntN(6) == 0 {
		members = append(members, `"data":{"x":[1]}`)
	}
	if depth < 2 && rng.IntN(4) == 0 {
		members = append(members, fmt.Sprintf(`"$or":[%s,%s]`, randomAttrPattern(rng, depth+1), randomAttrPattern(rng, depth+1)))
	}
	if len(members) == 0 {
		members = append(members, fmt.Sprintf(`"type":[%s]`, randomAttrCond(rng)))
	}
	return "{" + strings.Join(members, ",") + "}"
}

func TestAttributeTranslatorsAreSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type dialect struct {
		name      string
		translate func(*Pattern) (string, bool, error)
		prefix    string
		atoms     []func(*filterParser) tri
	}
	dialects := []dialect{
		{"pubsub", ToPubSubFilter, "ce-", []func(*filterParser) tri{pubsubAtom(false), pubsubAtom(true)}},
		{"servicebus", ToServiceBusSQL, "cloudEvents_", []func(*filterParser) tri{sbAtom}},
	}
	translated, exacts := 0, 0
	for i := 0; i < 400; i++ {
		p := MustCompile(randomAttrPattern(rng, 0))
		for _, d := range dialects {
			filter, exact, err := d.translate(p)
			if err != nil {
				require.ErrorIs(t, err, ErrNotTranslatable)
				continue
			}
			translated++
			if exact {
				exacts++
			}
			for e := 0; e < 40; e++ {
				doc := map[string]any{"data": map[string]any{"x": rng.IntN(2)}}
				attrs := map[string]string{}
				for _, name := range attrVocabNames {
					if rng.IntN(5) > 0 {
						v := attrVocabValues[rng.IntN(len(attrVocabValues))]
						doc[name] = v
						attrs[d.prefix+name] = v
					}
				}
				b, err := json.Marshal(doc)
				require.NoError(t, err)
				local, err := p.MatchJSON(b)
				require.NoError(t, err)
				for _, atom := range d.atoms {
					native, err := evalFilter(filter, attrs, atom)
					require.NoError(t, err)
					if local {
						require.True(t, native, "%s: %s matches %s locally but not %s", d.name, p, b, filter)
					}
					if exact && native {
						require.True(t, local, "%s: exact %s passes %s that %s rejects", d.name, filter, b, p)
					}
				}
			}
		}
	}
	require.Greater(t, translated, 300)
	require.Greater(t, exacts, 100)
}
