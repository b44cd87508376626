package sbtest

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The management API: Service Bus's ATOM (XML over HTTPS) interface, the one
// the SDK's admin.Client speaks. It serves:
//
//	PUT, GET, DELETE /{queue-or-topic}
//	PUT, GET, DELETE /{topic}/Subscriptions/{subscription}
//	GET              /{topic}/Subscriptions/{subscription}/Rules/   ($skip, $top)
//	PUT, GET, DELETE /{topic}/Subscriptions/{subscription}/Rules/{rule}
//
// Creating an entity that exists answers 409 Conflict; reading or deleting
// one that does not, 404. Updates (PUT with If-Match) are not supported.
// Requests must carry a SAS token signed with the namespace key or a bearer
// token (accepted unverified), as the Authorization header.

const (
	atomNS = "http://www.w3.org/2005/Atom"
	sbNS   = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
	xsiNS  = "http://www.w3.org/2001/XMLSchema-instance"
)

// startAdmin serves the management API on a TLS listener of its own.
func (s *Server) startAdmin() {
	s.admin = httptest.NewUnstartedServer(http.HandlerFunc(s.serveAdmin))
	s.admin.StartTLS()
}

// HTTPClient returns an HTTP client for the broker's management API, for
// the SDK's administration client:
//
//	ac, err := admin.NewClientFromConnectionString(srv.ConnectionString(),
//		&admin.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
//
// The SDK sends management requests to https://<the connection string's
// host>/, the broker's AMQP address; the client takes them to the HTTPS
// listener of the management API instead, and trusts its certificate.
func (s *Server) HTTPClient() *http.Client {
	base := s.admin.Client()
	tr := base.Transport.(*http.Transport).Clone()
	addr := s.admin.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

var (
	rulePath = regexp.MustCompile(`(?i)^/([^/]+)/subscriptions/([^/]+)/rules(?:/([^/]*))?$`)
	subPath  = regexp.MustCompile(`(?i)^/([^/]+)/subscriptions/([^/]+)$`)
	entPath  = regexp.MustCompile(`^/([^/]+)$`)
)

// adminError is a management API failure: an HTTP status and a message.
type adminError struct {
	status int
	msg    string
}

func (e *adminError) Error() string { return e.msg }

func adminErrorf(status int, format string, args ...any) *adminError {
	return &adminError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if err := s.checkAdminAuth(r.Header.Get("Authorization")); err != nil {
		writeAdminError(w, adminErrorf(http.StatusUnauthorized, "InvalidSignature: %v", err))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeAdminError(w, adminErrorf(http.StatusBadRequest, "read body: %v", err))
		return
	}
	if r.Method == http.MethodPut && r.Header.Get("If-Match") != "" {
		writeAdminError(w, adminErrorf(http.StatusBadRequest, "sbtest does not support updating entities"))
		return
	}
	base := "https://" + r.Host
	status, out, aerr := s.adminRoute(r.Method, r.URL.Path, r.URL.Query(), body, base)
	if aerr != nil {
		writeAdminError(w, aerr)
		return
	}
	if out == "" {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}

func (s *Server) checkAdminAuth(h string) error {
	if strings.HasPrefix(h, "Bearer ") {
		return nil
	}
	if h == "" {
		return errors.New("no Authorization header")
	}
	return s.verifySAS(h, time.Now())
}

func writeAdminError(w http.ResponseWriter, e *adminError) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(e.status)
	fmt.Fprintf(w, "<Error><Code>%d</Code><Detail>%s</Detail></Error>", e.status, esc(e.msg))
}

// adminRoute runs one management request and returns the status and the
// XML to answer with.
func (s *Server) adminRoute(method, path string, q map[string][]string, body []byte, base string) (int, string, *adminError) {
	if m := rulePath.FindStringSubmatch(path); m != nil {
		topic, sub, rule := m[1], m[2], m[3]
		if rule == "" {
			if method != http.MethodGet {
				return 0, "", adminErrorf(http.StatusMethodNotAllowed, "%s on the rules of a subscription", method)
			}
			return s.listRules(topic, sub, q, base)
		}
		return s.ruleRequest(method, topic, sub, rule, body, base)
	}
	if m := subPath.FindStringSubmatch(path); m != nil {
		return s.subscriptionRequest(method, m[1], m[2], body, base)
	}
	if m := entPath.FindStringSubmatch(path); m != nil && !strings.HasPrefix(m[1], "$") {
		return s.entityRequest(method, m[1], body, base)
	}
	return 0, "", adminErrorf(http.StatusNotFound, "no management resource at %s", path)
}

// ---- descriptions as the SDK writes them ----

type xmlFilter struct {
	Type string `xml:"http://www.w3.org/2001/XMLSchema-instance type,attr"`
	SQL  string `xml:"SqlExpression"`
}

type xmlRule struct {
	Filter *xmlFilter `xml:"Filter"`
	Name   string     `xml:"Name"`
}

// ruleFromXML is the Rule a description asks for.
func ruleFromXML(d xmlRule, name string) (Rule, *adminError) {
	r := Rule{Name: name}
	if r.Name == "" {
		r.Name = d.Name
	}
	if r.Name == "" {
		r.Name = DefaultRuleName
	}
	if d.Filter == nil {
		return r, nil
	}
	switch d.Filter.Type {
	case "", "TrueFilter":
		r.Filter = TrueFilter
	case "FalseFilter":
		r.Filter = "1=0"
	case "SqlFilter":
		r.Filter = d.Filter.SQL
	default:
		return r, adminErrorf(http.StatusBadRequest, "sbtest supports SQL, true and false filters, not %s", d.Filter.Type)
	}
	return r, nil
}

type entityEnvelope struct {
	Queue *struct {
		LockDuration                        string `xml:"LockDuration"`
		MaxDeliveryCount                    int    `xml:"MaxDeliveryCount"`
		RequiresSession                     bool   `xml:"RequiresSession"`
		RequiresDuplicateDetection          bool   `xml:"RequiresDuplicateDetection"`
		DuplicateDetectionHistoryTimeWindow string `xml:"DuplicateDetectionHistoryTimeWindow"`
	} `xml:"content>QueueDescription"`
	Topic *struct {
		RequiresDuplicateDetection          bool   `xml:"RequiresDuplicateDetection"`
		DuplicateDetectionHistoryTimeWindow string `xml:"DuplicateDetectionHistoryTimeWindow"`
	} `xml:"content>TopicDescription"`
	Subscription *struct {
		LockDuration     string   `xml:"LockDuration"`
		MaxDeliveryCount int      `xml:"MaxDeliveryCount"`
		RequiresSession  bool     `xml:"RequiresSession"`
		DefaultRule      *xmlRule `xml:"DefaultRuleDescription"`
	} `xml:"content>SubscriptionDescription"`
	Rule *xmlRule `xml:"content>RuleDescription"`
}

func parseEnvelope(body []byte) (entityEnvelope, *adminError) {
	var env entityEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		return env, adminErrorf(http.StatusBadRequest, "malformed entry: %v", err)
	}
	return env, nil
}

// ---- queues and topics ----

func (s *Server) entityRequest(method, name string, body []byte, base string) (int, string, *adminError) {
	switch method {
	case http.MethodPut:
		env, aerr := parseEnvelope(body)
		if aerr != nil {
			return 0, "", aerr
		}
		var err error
		switch {
		case env.Queue != nil:
			q := env.Queue
			o := EntityOptions{MaxDeliveryCount: q.MaxDeliveryCount, RequiresSession: q.RequiresSession}
			if o.LockDuration, aerr = isoDuration("LockDuration", q.LockDuration); aerr != nil {
				return 0, "", aerr
			}
			if o.DuplicateDetectionWindow, aerr = dedupWindow(q.RequiresDuplicateDetection, q.DuplicateDetectionHistoryTimeWindow); aerr != nil {
				return 0, "", aerr
			}
			err = s.CreateQueue(name, o)
		case env.Topic != nil:
			var o EntityOptions
			if o.DuplicateDetectionWindow, aerr = dedupWindow(env.Topic.RequiresDuplicateDetection, env.Topic.DuplicateDetectionHistoryTimeWindow); aerr != nil {
				return 0, "", aerr
			}
			err = s.CreateTopic(name, o)
		default:
			return 0, "", adminErrorf(http.StatusBadRequest, "the entry describes neither a queue nor a topic")
		}
		if aerr := adminErr(err); aerr != nil {
			return 0, "", aerr
		}
		out, aerr := s.describeEntity(name, base)
		return http.StatusCreated, out, aerr
	case http.MethodGet:
		out, aerr := s.describeEntity(name, base)
		return http.StatusOK, out, aerr
	case http.MethodDelete:
		err := s.DeleteQueue(name)
		if errors.Is(err, ErrNotFound) {
			err = s.DeleteTopic(name)
		}
		return http.StatusOK, "", adminErr(err)
	}
	return 0, "", adminErrorf(http.StatusMethodNotAllowed, "%s on an entity", method)
}

// dedupWindow is the duplicate-detection window an entity asks for
// (Service Bus's default is 10 minutes).
func dedupWindow(required bool, window string) (time.Duration, *adminError) {
	if !required {
		return 0, nil
	}
	d, aerr := isoDuration("DuplicateDetectionHistoryTimeWindow", window)
	if d == 0 {
		d = 10 * time.Minute
	}
	return d, aerr
}

func (s *Server) describeEntity(name, base string) (string, *adminError) {
	key := strings.ToLower(name)
	s.mu.Lock()
	q, t := s.queues[key], s.topics[key]
	s.mu.Unlock()
	switch {
	case q != nil:
		o := q.opts
		return entry(base+"/"+q.name, q.name, fmt.Sprintf(
			`<QueueDescription xmlns="%s" xmlns:i="%s"><LockDuration>%s</LockDuration><RequiresDuplicateDetection>%t</RequiresDuplicateDetection><RequiresSession>%t</RequiresSession><MaxDeliveryCount>%d</MaxDeliveryCount><Status>Active</Status></QueueDescription>`,
			sbNS, xsiNS, isoFormat(o.LockDuration), o.DuplicateDetectionWindow > 0, o.RequiresSession, o.MaxDeliveryCount)), nil
	case t != nil:
		return entry(base+"/"+t.name, t.name, fmt.Sprintf(
			`<TopicDescription xmlns="%s" xmlns:i="%s"><RequiresDuplicateDetection>%t</RequiresDuplicateDetection><Status>Active</Status></TopicDescription>`,
			sbNS, xsiNS, t.opts.DuplicateDetectionWindow > 0)), nil
	}
	return "", adminErrorf(http.StatusNotFound, "entity %q does not exist", name)
}

// ---- subscriptions ----

func (s *Server) subscriptionRequest(method, topicName, name string, body []byte, base string) (int, string, *adminError) {
	switch method {
	case http.MethodPut:
		env, aerr := parseEnvelope(body)
		if aerr != nil {
			return 0, "", aerr
		}
		d := env.Subscription
		if d == nil {
			return 0, "", adminErrorf(http.StatusBadRequest, "the entry describes no subscription")
		}
		o := EntityOptions{MaxDeliveryCount: d.MaxDeliveryCount, RequiresSession: d.RequiresSession}
		if o.LockDuration, aerr = isoDuration("LockDuration", d.LockDuration); aerr != nil {
			return 0, "", aerr
		}
		if d.DefaultRule != nil {
			r, aerr := ruleFromXML(*d.DefaultRule, "")
			if aerr != nil {
				return 0, "", aerr
			}
			if !strings.EqualFold(r.Name, DefaultRuleName) {
				return 0, "", adminErrorf(http.StatusBadRequest, "sbtest names the default rule %s, not %q", DefaultRuleName, r.Name)
			}
			o.Filter = r.Filter
		}
		if aerr := adminErr(s.CreateSubscription(topicName, name, o)); aerr != nil {
			return 0, "", aerr
		}
		out, aerr := s.describeSubscription(topicName, name, base)
		return http.StatusCreated, out, aerr
	case http.MethodGet:
		out, aerr := s.describeSubscription(topicName, name, base)
		return http.StatusOK, out, aerr
	case http.MethodDelete:
		return http.StatusOK, "", adminErr(s.DeleteSubscription(topicName, name))
	}
	return 0, "", adminErrorf(http.StatusMethodNotAllowed, "%s on a subscription", method)
}

func (s *Server) describeSubscription(topicName, name, base string) (string, *adminError) {
	var out string
	err := s.lockedSubscription(topicName, name, func(t *topic, st *store) error {
		o := st.opts
		_, sub, _ := strings.Cut(st.name, "/Subscriptions/")
		out = entry(base+"/"+t.name+"/Subscriptions/"+sub, sub, fmt.Sprintf(
			`<SubscriptionDescription xmlns="%s" xmlns:i="%s"><LockDuration>%s</LockDuration><RequiresSession>%t</RequiresSession><MaxDeliveryCount>%d</MaxDeliveryCount><Status>Active</Status></SubscriptionDescription>`,
			sbNS, xsiNS, isoFormat(o.LockDuration), o.RequiresSession, o.MaxDeliveryCount))
		return nil
	})
	return out, adminErr(err)
}

// ---- rules ----

func (s *Server) ruleRequest(method, topicName, sub, name string, body []byte, base string) (int, string, *adminError) {
	switch method {
	case http.MethodPut:
		env, aerr := parseEnvelope(body)
		if aerr != nil {
			return 0, "", aerr
		}
		if env.Rule == nil {
			return 0, "", adminErrorf(http.StatusBadRequest, "the entry describes no rule")
		}
		r, aerr := ruleFromXML(*env.Rule, name)
		if aerr != nil {
			return 0, "", aerr
		}
		if aerr := adminErr(s.AddRule(topicName, sub, r)); aerr != nil {
			return 0, "", aerr
		}
		return http.StatusCreated, ruleEntry(base, topicName, sub, r), nil
	case http.MethodGet:
		rules, err := s.Rules(topicName, sub)
		if aerr := adminErr(err); aerr != nil {
			return 0, "", aerr
		}
		for _, r := range rules {
			if strings.EqualFold(r.Name, name) {
				return http.StatusOK, ruleEntry(base, topicName, sub, r), nil
			}
		}
		return 0, "", adminErrorf(http.StatusNotFound, "rule %q does not exist", name)
	case http.MethodDelete:
		return http.StatusOK, "", adminErr(s.DeleteRule(topicName, sub, name))
	}
	return 0, "", adminErrorf(http.StatusMethodNotAllowed, "%s on a rule", method)
}

func (s *Server) listRules(topicName, sub string, q map[string][]string, base string) (int, string, *adminError) {
	rules, err := s.Rules(topicName, sub)
	if aerr := adminErr(err); aerr != nil {
		return 0, "", aerr
	}
	skip, _ := strconv.Atoi(first(q["$skip"]))
	top, _ := strconv.Atoi(first(q["$top"]))
	rules = rules[min(max(skip, 0), len(rules)):]
	if top > 0 && top < len(rules) {
		rules = rules[:top]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<feed xmlns="%s"><title type="text">Rules</title><id>%s</id>`, atomNS, esc(base+"/"+topicName+"/Subscriptions/"+sub+"/Rules"))
	for _, r := range rules {
		b.WriteString(strings.TrimPrefix(ruleEntry(base, topicName, sub, r), xml.Header))
	}
	b.WriteString("</feed>")
	return http.StatusOK, xml.Header + b.String(), nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func ruleEntry(base, topicName, sub string, r Rule) string {
	typ := "SqlFilter"
	switch r.Filter {
	case TrueFilter:
		typ = "TrueFilter"
	case "1=0":
		typ = "FalseFilter"
	}
	return entry(base+"/"+topicName+"/Subscriptions/"+sub+"/Rules/"+r.Name, r.Name, fmt.Sprintf(
		`<RuleDescription xmlns="%s" xmlns:i="%s"><Filter i:type="%s"><SqlExpression>%s</SqlExpression><CompatibilityLevel>20</CompatibilityLevel></Filter><Action i:type="EmptyRuleAction"/><Name>%s</Name></RuleDescription>`,
		sbNS, xsiNS, typ, esc(r.Filter), esc(r.Name)))
}

// ---- helpers ----

func entry(id, title, content string) string {
	return fmt.Sprintf(`%s<entry xmlns="%s"><id>%s</id><title type="text">%s</title><updated>%s</updated><content type="application/xml">%s</content></entry>`,
		xml.Header, atomNS, esc(id), esc(title), time.Now().UTC().Format(time.RFC3339), content)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func adminErr(err error) *adminError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return adminErrorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, ErrExists):
		return adminErrorf(http.StatusConflict, "%v", err)
	}
	return adminErrorf(http.StatusBadRequest, "%v", err)
}

var isoRE = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// isoDuration parses an ISO 8601 duration of days, hours, minutes and
// seconds ("PT1M", "P1DT2H", "PT0.5S"); "" is 0.
func isoDuration(field, v string) (time.Duration, *adminError) {
	if v == "" {
		return 0, nil
	}
	m := isoRE.FindStringSubmatch(v)
	if m == nil || v == "P" || v == "PT" {
		return 0, adminErrorf(http.StatusBadRequest, "%s %q is not an ISO 8601 duration", field, v)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		f, _ := strconv.ParseFloat(m[4], 64)
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}

// isoFormat writes d as an ISO 8601 duration in seconds.
func isoFormat(d time.Duration) string {
	return "PT" + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}
