package sbtest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/Azure/go-amqp"
)

// ErrInvalidFilter reports a SQL filter expression the broker cannot parse,
// as Service Bus refuses one when the rule is created.
var ErrInvalidFilter = errors.New("sbtest: invalid SQL filter")

// SQLFilter is a compiled Service Bus SQL filter expression: the predicate
// language of subscription rules (a subset of SQL-92) over a message's user
// properties (application properties) and system properties (sys.Label,
// sys.MessageId, ...). Compile it with CompileSQLFilter.
//
// Evaluation follows the service's documented semantics: a user property
// that does not exist is unknown; comparisons, LIKE and IN with an unknown
// operand are unknown; AND and OR follow the three-valued truth tables and
// NOT unknown is unknown; EXISTS and IS [NOT] NULL are never unknown; a
// message is selected only when the predicate is true. Property names are
// case-insensitive; string comparisons and LIKE compare ordinally (case
// matters); numbers compare across integer and floating-point types.
// Comparing values of unrelated types (a number with a string) is a filter
// evaluation error on Service Bus; here it is unknown, so the message is not
// selected. Functions (newid(), property()) and rule actions are not
// supported.
type SQLFilter struct {
	src  string
	root sqlNode
}

// String returns the expression the filter was compiled from.
func (f *SQLFilter) String() string { return f.src }

// CompileSQLFilter parses a SQL filter expression. It fails with an error
// wrapping ErrInvalidFilter on a syntax error, an unknown system property or
// an operand of the wrong kind (a value where a predicate belongs).
func CompileSQLFilter(expr string) (*SQLFilter, error) {
	p := &sqlParser{lex: sqlLexer{src: expr}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEnd {
		return nil, p.errorf("unexpected %s", p.tok)
	}
	if !n.predicate() {
		return nil, fmt.Errorf("%w: %q is a value, not a predicate", ErrInvalidFilter, expr)
	}
	return &SQLFilter{src: expr, root: n}, nil
}

// Match reports whether the filter selects m.
func (f *SQLFilter) Match(m *amqp.Message) bool {
	return f.root.(predicateNode).test(m) == triTrue
}

// tri is a three-valued truth value.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func (t tri) not() tri {
	switch t {
	case triTrue:
		return triFalse
	case triFalse:
		return triTrue
	}
	return triUnknown
}

// ---- lexer ----

type tokKind int

const (
	tokEnd tokKind = iota
	tokIdent
	tokString
	tokInt
	tokFloat
	tokOp      // = <> != < <= > >= + - * / % ( ) , .
	tokKeyword // AND OR NOT IS NULL IN LIKE ESCAPE EXISTS TRUE FALSE
)

type sqlToken struct {
	kind tokKind
	text string // identifier name, string value, operator, upper-case keyword
	num  string
	pos  int
}

func (t sqlToken) String() string {
	switch t.kind {
	case tokEnd:
		return "end of expression"
	case tokString:
		return fmt.Sprintf("string '%s'", t.text)
	case tokInt, tokFloat:
		return "number " + t.num
	}
	return fmt.Sprintf("%q", t.text)
}

var sqlKeywords = map[string]bool{"AND": true, "OR": true, "NOT": true, "IS": true, "NULL": true, "IN": true,
	"LIKE": true, "ESCAPE": true, "EXISTS": true, "TRUE": true, "FALSE": true}

type sqlLexer struct {
	src string
	pos int
}

func (l *sqlLexer) errorf(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d of %q", ErrInvalidFilter, fmt.Sprintf(format, args...), pos, l.src)
}

func (l *sqlLexer) next() (sqlToken, error) {
	for l.pos < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[l.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += n
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return sqlToken{kind: tokEnd, pos: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case c == '\'':
		s, err := l.quoted('\'', '\'')
		return sqlToken{kind: tokString, text: s, pos: start}, err
	case c == '[':
		s, err := l.quoted('[', ']')
		return sqlToken{kind: tokIdent, text: s, pos: start}, err
	case c == '"':
		s, err := l.quoted('"', '"')
		return sqlToken{kind: tokIdent, text: s, pos: start}, err
	case c >= '0' && c <= '9' || c == '.' && l.pos+1 < len(l.src) && l.src[l.pos+1] >= '0' && l.src[l.pos+1] <= '9':
		return l.number()
	}
	if r, n := utf8.DecodeRuneInString(l.src[l.pos:]); unicode.IsLetter(r) || r == '@' {
		l.pos += n
		for l.pos < len(l.src) {
			r, n := utf8.DecodeRuneInString(l.src[l.pos:])
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
				break
			}
			l.pos += n
		}
		word := l.src[start:l.pos]
		if up := strings.ToUpper(word); sqlKeywords[up] {
			return sqlToken{kind: tokKeyword, text: up, pos: start}, nil
		}
		if word[0] == '@' {
			return sqlToken{}, l.errorf(start, "parameter %s has no value (filter parameters are not supported)", word)
		}
		return sqlToken{kind: tokIdent, text: word, pos: start}, nil
	}
	for _, op := range []string{"<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", "."} {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += len(op)
			return sqlToken{kind: tokOp, text: op, pos: start}, nil
		}
	}
	return sqlToken{}, l.errorf(start, "unexpected character %q", l.src[l.pos:l.pos+1])
}

// quoted reads text between open and close, where close doubled stands for
// itself.
func (l *sqlLexer) quoted(open, close byte) (string, error) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if c == close {
			if l.pos+1 < len(l.src) && l.src[l.pos+1] == close {
				b.WriteByte(close)
				l.pos += 2
				continue
			}
			l.pos++
			return b.String(), nil
		}
		b.WriteByte(c)
		l.pos++
	}
	return "", l.errorf(start, "unterminated %c", open)
}

func (l *sqlLexer) number() (sqlToken, error) {
	start := l.pos
	kind := tokInt
	digits := func() {
		for l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '9' {
			l.pos++
		}
	}
	digits()
	if l.pos < len(l.src) && l.src[l.pos] == '.' {
		kind = tokFloat
		l.pos++
		digits()
	}
	if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
		kind = tokFloat
		l.pos++
		if l.pos < len(l.src) && (l.src[l.pos] == '+' || l.src[l.pos] == '-') {
			l.pos++
		}
		d := l.pos
		digits()
		if d == l.pos {
			return sqlToken{}, l.errorf(start, "malformed number")
		}
	}
	return sqlToken{kind: kind, num: l.src[start:l.pos], pos: start}, nil
}

// ---- parser ----

type sqlParser struct {
	lex sqlLexer
	tok sqlToken
}

func (p *sqlParser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *sqlParser) errorf(format string, args ...any) error {
	return p.lex.errorf(p.tok.pos, format, args...)
}

func (p *sqlParser) isKeyword(k string) bool { return p.tok.kind == tokKeyword && p.tok.text == k }
func (p *sqlParser) isOp(op string) bool     { return p.tok.kind == tokOp && p.tok.text == op }

func (p *sqlParser) expectOp(op string) error {
	if !p.isOp(op) {
		return p.errorf("expected %q, found %s", op, p.tok)
	}
	return p.advance()
}

func (p *sqlParser) parseOr() (sqlNode, error) {
	return p.parseJoined("OR", orNode{}, p.parseAnd)
}

func (p *sqlParser) parseAnd() (sqlNode, error) {
	return p.parseJoined("AND", andNode{}, p.parseNot)
}

// parseJoined parses operands (each by next) joined by the keyword, left
// to right, into kind's nodes.
func (p *sqlParser) parseJoined(keyword string, kind sqlNode, next func() (sqlNode, error)) (sqlNode, error) {
	left, err := next()
	if err != nil {
		return nil, err
	}
	for p.isKeyword(keyword) {
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := next()
		if err != nil {
			return nil, err
		}
		if left, err = p.logical(kind, left, right); err != nil {
			return nil, err
		}
	}
	return left, nil
}

func (p *sqlParser) logical(kind sqlNode, l, r sqlNode) (sqlNode, error) {
	if !l.predicate() || !r.predicate() {
		return nil, p.errorf("AND and OR join predicates, not values")
	}
	if _, ok := kind.(orNode); ok {
		return orNode{l.(predicateNode), r.(predicateNode)}, nil
	}
	return andNode{l.(predicateNode), r.(predicateNode)}, nil
}

func (p *sqlParser) parseNot() (sqlNode, error) {
	if !p.isKeyword("NOT") {
		return p.parseCondition()
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	if !n.predicate() {
		return nil, p.errorf("NOT applies to a predicate")
	}
	return notNode{n.(predicateNode)}, nil
}

// parseCondition parses EXISTS, a parenthesized predicate, or a value with
// a comparison, IS [NOT] NULL, [NOT] IN or [NOT] LIKE after it.
func (p *sqlParser) parseCondition() (sqlNode, error) {
	if p.isKeyword("EXISTS") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		prop, err := p.parseProperty()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return existsNode{prop}, nil
	}
	left, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	if left.predicate() {
		return left, nil // a parenthesized predicate
	}
	v := left.(valueNode)
	switch {
	case p.tok.kind == tokOp && comparisonOps[p.tok.text]:
		op := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.value(p.parseAdditive())
		if err != nil {
			return nil, err
		}
		return compareNode{op: op, l: v, r: right}, nil
	case p.isKeyword("IS"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		neg := p.isKeyword("NOT")
		if neg {
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if !p.isKeyword("NULL") {
			return nil, p.errorf("expected NULL, found %s", p.tok)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		var n predicateNode = isNullNode{v}
		if neg {
			n = notNode{n}
		}
		return n, nil
	}
	neg := p.isKeyword("NOT")
	if neg {
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	var n predicateNode
	switch {
	case p.isKeyword("IN"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		in := inNode{v: v}
		for {
			e, err := p.value(p.parseAdditive())
			if err != nil {
				return nil, err
			}
			in.list = append(in.list, e)
			if !p.isOp(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		n = in
	case p.isKeyword("LIKE"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		pat, err := p.value(p.parseAdditive())
		if err != nil {
			return nil, err
		}
		like := likeNode{v: v, pattern: pat}
		if p.isKeyword("ESCAPE") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if like.escape, err = p.value(p.parseAdditive()); err != nil {
				return nil, err
			}
		}
		n = like
	default:
		return nil, p.errorf("expected a comparison, IS, IN or LIKE, found %s", p.tok)
	}
	if neg {
		n = notNode{n}
	}
	return n, nil
}

func (p *sqlParser) value(n sqlNode, err error) (valueNode, error) {
	if err != nil {
		return nil, err
	}
	if n.predicate() {
		return nil, p.errorf("a predicate cannot be an operand")
	}
	return n.(valueNode), nil
}

func (p *sqlParser) parseAdditive() (sqlNode, error) {
	return p.parseArithmetic(p.parseMultiplicative, "+", "-")
}

func (p *sqlParser) parseMultiplicative() (sqlNode, error) {
	return p.parseArithmetic(p.parseUnary, "*", "/", "%")
}

// parseArithmetic parses operands (each by next) joined by any of ops, left
// to right, into arithmetic nodes.
func (p *sqlParser) parseArithmetic(next func() (sqlNode, error), ops ...string) (sqlNode, error) {
	left, err := next()
	if err != nil {
		return nil, err
	}
	for slices.ContainsFunc(ops, p.isOp) {
		op := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := next()
		if err != nil {
			return nil, err
		}
		if left.predicate() || right.predicate() {
			return nil, p.errorf("arithmetic applies to values")
		}
		left = arithNode{op: op, l: left.(valueNode), r: right.(valueNode)}
	}
	return left, nil
}

func (p *sqlParser) parseUnary() (sqlNode, error) {
	if p.isOp("+") || p.isOp("-") {
		op := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		v, err := p.value(p.parseUnary())
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return arithNode{op: "+", l: constNode{int64(0)}, r: v}, nil
		}
		return arithNode{op: "-", l: constNode{int64(0)}, r: v}, nil
	}
	return p.parsePrimary()
}

func (p *sqlParser) parsePrimary() (sqlNode, error) {
	t := p.tok
	switch t.kind {
	case tokString:
		return constNode{t.text}, p.advance()
	case tokInt:
		n, err := strconv.ParseInt(t.num, 10, 64)
		if err != nil {
			return nil, p.errorf("integer %s is out of range", t.num)
		}
		return constNode{n}, p.advance()
	case tokFloat:
		f, err := strconv.ParseFloat(t.num, 64)
		if err != nil {
			return nil, p.errorf("number %s is out of range", t.num)
		}
		return constNode{f}, p.advance()
	case tokKeyword:
		switch t.text {
		case "TRUE", "FALSE":
			return constNode{t.text == "TRUE"}, p.advance()
		case "NULL":
			return constNode{nil}, p.advance()
		}
		return nil, p.errorf("unexpected %s", t)
	case tokOp:
		if t.text != "(" {
			return nil, p.errorf("unexpected %s", t)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		return n, p.expectOp(")")
	case tokIdent:
		return p.parseProperty()
	}
	return nil, p.errorf("unexpected %s", t)
}

// parseProperty parses [scope.]name.
func (p *sqlParser) parseProperty() (valueNode, error) {
	if p.tok.kind != tokIdent {
		return nil, p.errorf("expected a property name, found %s", p.tok)
	}
	first := p.tok.text
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.isOp("(") {
		return nil, p.errorf("function %s() is not supported", first)
	}
	if !p.isOp(".") {
		return userProp{name: first}, nil
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tokIdent {
		return nil, p.errorf("expected a property name after %q, found %s", first+".", p.tok)
	}
	name := p.tok.text
	if err := p.advance(); err != nil {
		return nil, err
	}
	switch strings.ToLower(first) {
	case "user":
		return userProp{name: name}, nil
	case "sys":
		get, ok := sysProps[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("%w: sys.%s is not a system property", ErrInvalidFilter, name)
		}
		return sysProp{name: name, get: get}, nil
	}
	return nil, fmt.Errorf("%w: scope %q is neither sys nor user", ErrInvalidFilter, first)
}

var comparisonOps = map[string]bool{"=": true, "<>": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true}

// ---- evaluation ----

type sqlNode interface{ predicate() bool }

type predicateNode interface {
	sqlNode
	test(m *amqp.Message) tri
}

// valueNode yields a value; ok is false when it is unknown (a missing user
// property, or an operation on one).
type valueNode interface {
	sqlNode
	eval(m *amqp.Message) (v any, ok bool)
}

type (
	andNode     struct{ l, r predicateNode }
	orNode      struct{ l, r predicateNode }
	notNode     struct{ p predicateNode }
	existsNode  struct{ prop valueNode }
	isNullNode  struct{ v valueNode }
	compareNode struct {
		op   string
		l, r valueNode
	}
	inNode struct {
		v    valueNode
		list []valueNode
	}
	likeNode  struct{ v, pattern, escape valueNode }
	arithNode struct {
		op   string
		l, r valueNode
	}
	constNode struct{ v any }
	userProp  struct{ name string }
	sysProp   struct {
		name string
		get  func(m *amqp.Message) any
	}
)

func (andNode) predicate() bool     { return true }
func (orNode) predicate() bool      { return true }
func (notNode) predicate() bool     { return true }
func (existsNode) predicate() bool  { return true }
func (isNullNode) predicate() bool  { return true }
func (compareNode) predicate() bool { return true }
func (inNode) predicate() bool      { return true }
func (likeNode) predicate() bool    { return true }
func (arithNode) predicate() bool   { return false }
func (constNode) predicate() bool   { return false }
func (userProp) predicate() bool    { return false }
func (sysProp) predicate() bool     { return false }

func (n andNode) test(m *amqp.Message) tri {
	l := n.l.test(m)
	if l == triFalse {
		return triFalse
	}
	r := n.r.test(m)
	switch {
	case r == triFalse:
		return triFalse
	case l == triTrue && r == triTrue:
		return triTrue
	}
	return triUnknown
}

func (n orNode) test(m *amqp.Message) tri {
	l := n.l.test(m)
	if l == triTrue {
		return triTrue
	}
	r := n.r.test(m)
	switch {
	case r == triTrue:
		return triTrue
	case l == triFalse && r == triFalse:
		return triFalse
	}
	return triUnknown
}

func (n notNode) test(m *amqp.Message) tri { return n.p.test(m).not() }

func (n existsNode) test(m *amqp.Message) tri {
	switch p := n.prop.(type) {
	case userProp:
		_, ok := lookupUser(m, p.name)
		return triOf(ok)
	case sysProp:
		return triOf(p.get(m) != nil)
	}
	return triFalse
}

func (n isNullNode) test(m *amqp.Message) tri {
	v, ok := n.v.eval(m)
	return triOf(!ok || v == nil)
}

func (n compareNode) test(m *amqp.Message) tri {
	l, ok := n.l.eval(m)
	if !ok {
		return triUnknown
	}
	r, ok := n.r.eval(m)
	if !ok {
		return triUnknown
	}
	c, ok := compare(l, r)
	if !ok {
		return triUnknown
	}
	switch n.op {
	case "=":
		return triOf(c == 0)
	case "<>", "!=":
		return triOf(c != 0)
	case "<":
		return triOf(c == -1)
	case "<=":
		return triOf(c == -1 || c == 0)
	case ">":
		return triOf(c == 1)
	case ">=":
		return triOf(c == 1 || c == 0)
	}
	return triUnknown
}

// compare orders two known values: -1, 0 or 1, or 2 for values that are
// equal-comparable but not ordered (booleans, different strings compared
// for order). ok is false for values that cannot be compared.
func compare(l, r any) (int, bool) {
	if l == nil || r == nil {
		return 0, false // NULL compares as unknown
	}
	if lf, lok := number(l); lok {
		rf, rok := number(r)
		if !rok {
			return 0, false
		}
		switch {
		case lf < rf:
			return -1, true
		case lf > rf:
			return 1, true
		case lf == rf:
			return 0, true
		}
		return 2, true // NaN
	}
	switch lv := l.(type) {
	case string:
		rv, ok := r.(string)
		if !ok {
			return 0, false
		}
		if lv == rv {
			return 0, true
		}
		return 2, true // C# strings have no < or >
	case bool:
		rv, ok := r.(bool)
		if !ok {
			return 0, false
		}
		if lv == rv {
			return 0, true
		}
		return 2, true
	case time.Time:
		rv, ok := r.(time.Time)
		if !ok {
			return 0, false
		}
		return lv.Compare(rv), true
	}
	if l == r {
		return 0, true
	}
	return 0, false
}

// number converts the AMQP numeric types to float64 (int64 beyond 2^53 loses
// precision, which tests do not reach).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case int:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	}
	return 0, false
}

func (n inNode) test(m *amqp.Message) tri {
	v, ok := n.v.eval(m)
	if !ok {
		return triUnknown
	}
	for _, e := range n.list {
		w, ok := e.eval(m)
		if !ok {
			continue
		}
		if c, ok := compare(v, w); ok && c == 0 {
			return triTrue
		}
	}
	return triFalse
}

func (n likeNode) test(m *amqp.Message) tri {
	v, ok := n.v.eval(m)
	if !ok {
		return triUnknown
	}
	p, ok := n.pattern.eval(m)
	if !ok {
		return triUnknown
	}
	s, sok := v.(string)
	pat, pok := p.(string)
	if !sok || !pok {
		return triUnknown
	}
	var esc rune = -1
	if n.escape != nil {
		e, ok := n.escape.eval(m)
		if !ok {
			return triUnknown
		}
		es, _ := e.(string)
		if utf8.RuneCountInString(es) != 1 {
			return triUnknown
		}
		esc, _ = utf8.DecodeRuneInString(es)
	}
	return triOf(likeMatch([]rune(s), []rune(pat), esc))
}

// likeMatch matches s against a LIKE pattern: '%' any run of characters,
// '_' one character, esc making the next pattern character literal.
func likeMatch(s, pat []rune, esc rune) bool {
	for len(pat) > 0 {
		c := pat[0]
		switch {
		case c == esc && len(pat) > 1:
			if len(s) == 0 || s[0] != pat[1] {
				return false
			}
			s, pat = s[1:], pat[2:]
		case c == '%':
			for len(pat) > 0 && pat[0] == '%' {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if likeMatch(s[i:], pat, esc) {
					return true
				}
			}
			return false
		case c == '_':
			if len(s) == 0 {
				return false
			}
			s, pat = s[1:], pat[1:]
		default:
			if len(s) == 0 || s[0] != c {
				return false
			}
			s, pat = s[1:], pat[1:]
		}
	}
	return len(s) == 0
}

func (n arithNode) eval(m *amqp.Message) (any, bool) {
	l, ok := n.l.eval(m)
	if !ok {
		return nil, false
	}
	r, ok := n.r.eval(m)
	if !ok {
		return nil, false
	}
	if ls, ok := l.(string); ok && n.op == "+" {
		if rs, ok := r.(string); ok {
			return ls + rs, true
		}
		return nil, false
	}
	li, lint := l.(int64)
	ri, rint := r.(int64)
	if lint && rint {
		switch n.op {
		case "+":
			return li + ri, true
		case "-":
			return li - ri, true
		case "*":
			return li * ri, true
		case "/", "%":
			if ri == 0 {
				return nil, false
			}
			if n.op == "/" {
				return li / ri, true
			}
			return li % ri, true
		}
	}
	lf, lok := number(l)
	rf, rok := number(r)
	if !lok || !rok {
		return nil, false
	}
	switch n.op {
	case "+":
		return lf + rf, true
	case "-":
		return lf - rf, true
	case "*":
		return lf * rf, true
	case "/":
		return lf / rf, true
	case "%":
		return math.Mod(lf, rf), true
	}
	return nil, false
}

func (n constNode) eval(*amqp.Message) (any, bool) { return n.v, true }

func (n userProp) eval(m *amqp.Message) (any, bool) { return lookupUser(m, n.name) }

// lookupUser finds an application property by name, ignoring case.
func lookupUser(m *amqp.Message, name string) (any, bool) {
	if v, ok := m.ApplicationProperties[name]; ok {
		return v, true
	}
	for k, v := range m.ApplicationProperties {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// sysProp values are never unknown: an unset system property is NULL.
func (n sysProp) eval(m *amqp.Message) (any, bool) { return n.get(m), true }

// sysProps are the system properties a filter can read, by lower-case name.
var sysProps = map[string]func(m *amqp.Message) any{
	"messageid": func(m *amqp.Message) any {
		if m.Properties == nil || m.Properties.MessageID == nil {
			return nil
		}
		return fmt.Sprint(m.Properties.MessageID)
	},
	"correlationid": func(m *amqp.Message) any {
		if m.Properties == nil || m.Properties.CorrelationID == nil {
			return nil
		}
		return fmt.Sprint(m.Properties.CorrelationID)
	},
	"label": func(m *amqp.Message) any {
		return props(m, func(p *amqp.MessageProperties) *string { return p.Subject })
	},
	"subject": func(m *amqp.Message) any {
		return props(m, func(p *amqp.MessageProperties) *string { return p.Subject })
	},
	"to": func(m *amqp.Message) any { return props(m, func(p *amqp.MessageProperties) *string { return p.To }) },
	"replyto": func(m *amqp.Message) any {
		return props(m, func(p *amqp.MessageProperties) *string { return p.ReplyTo })
	},
	"sessionid": func(m *amqp.Message) any {
		return props(m, func(p *amqp.MessageProperties) *string { return p.GroupID })
	},
	"replytosessionid": func(m *amqp.Message) any {
		return props(m, func(p *amqp.MessageProperties) *string { return p.ReplyToGroupID })
	},
	"contenttype": func(m *amqp.Message) any {
		return props(m, func(p *amqp.MessageProperties) *string { return p.ContentType })
	},
}

func props(m *amqp.Message, get func(p *amqp.MessageProperties) *string) any {
	if m.Properties == nil {
		return nil
	}
	if s := get(m.Properties); s != nil {
		return *s
	}
	return nil
}
