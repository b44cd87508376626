package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
	_ "github.com/crossbus/crossbus/providers/aws"
	_ "github.com/crossbus/crossbus/providers/azure/eventgrid"
	_ "github.com/crossbus/crossbus/providers/azure/servicebus"
	_ "github.com/crossbus/crossbus/providers/gcp"
	_ "github.com/crossbus/crossbus/providers/kafka"
	_ "github.com/crossbus/crossbus/providers/memory"
	_ "github.com/crossbus/crossbus/providers/nats"
	"github.com/crossbus/crossbus/stores/postgres"
	"github.com/crossbus/crossbus/stores/sqlite"
	"github.com/crossbus/crossbus/topology"
)

var errHelp = errors.New("help")

type global struct {
	bus, admin, token, output string
}

// parseGlobal takes the global flags wherever they are and returns the
// rest in order.
func parseGlobal(args []string) (global, []string, error) {
	g := global{token: os.Getenv("CROSSBUS_ADMIN_TOKEN"), output: "text"}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		var dst *string
		switch name {
		case "bus":
			dst = &g.bus
		case "admin":
			dst = &g.admin
		case "token":
			dst = &g.token
		case "output", "o":
			dst = &g.output
		default:
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return g, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	if g.output != "text" && g.output != "json" {
		return g, nil, fmt.Errorf("--output must be text or json, not %q", g.output)
	}
	if g.bus != "" && g.admin != "" {
		return g, nil, errors.New("give --bus or --admin, not both")
	}
	return g, rest, nil
}

type cli struct {
	g              global
	stdin          io.Reader
	stdout, stderr io.Writer
	bus            *crossbus.Bus
	closers        []func()
}

func (c *cli) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

func (c *cli) openBus(ctx context.Context, opts ...crossbus.BusOption) (*crossbus.Bus, error) {
	if c.bus != nil {
		return c.bus, nil
	}
	if c.g.bus == "" {
		return nil, usageErr("this needs --bus URL")
	}
	b, err := crossbus.Open(ctx, c.g.bus, opts...)
	if err != nil {
		return nil, err
	}
	c.bus = b
	c.closers = append(c.closers, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	})
	return b, nil
}

func (c *cli) needTarget() error {
	if c.g.bus == "" && c.g.admin == "" {
		return usageErr("give --bus URL or --admin URL")
	}
	return nil
}

// flags makes a command's flag set; --help prints its usage and examples.
func (c *cli) flags(name, synopsis, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "Usage: crossbus %s\n\nFlags:\n", synopsis)
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		fs.SetOutput(c.stderr)
		if examples != "" {
			fmt.Fprintf(c.stdout, "\nExamples:\n%s", examples)
		}
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return &cliError{code: exitUsage, err: err}
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ae *adminError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return exitRefused
		case ae.Status == http.StatusNotFound:
			return exitNotFound
		case ae.Status == http.StatusBadRequest || ae.Status == http.StatusConflict || ae.Status == http.StatusUnsupportedMediaType:
			return exitUsage
		}
		return exitFailed
	}
	switch {
	case errors.Is(err, errPartial), errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, ops.ErrNotFound), errors.Is(err, crossbus.ErrTopicNotFound), errors.Is(err, crossbus.ErrSubscriptionNotFound):
		return exitNotFound
	case errors.Is(err, crossbus.ErrUnauthorized):
		return exitRefused
	case errors.Is(err, crossbus.ErrInvalidOption), errors.Is(err, crossbus.ErrInvalidName), errors.Is(err, crossbus.ErrInvalidPattern),
		errors.Is(err, crossbus.ErrInvalidURL), errors.Is(err, crossbus.ErrUnknownScheme), errors.Is(err, crossbus.ErrInvalidEvent):
		return exitUsage
	}
	return exitFailed
}

var errPartial = errors.New("interrupted part-way")

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// ---- publish

func (c *cli) publish(ctx context.Context, args []string) error {
	fs := c.flags("publish", "publish --topic T (--file F | --type TYPE --source SRC [--data JSON] [--ext k=v]...)",
		`  crossbus --bus mem:// publish --topic orders --type com.example.order.placed --source /shop --data '{"id":"o-1"}'
  echo '[{"specversion":"1.0","id":"1","source":"/shop","type":"t"}]' | crossbus --bus nats+embedded:///tmp/b publish --topic orders --file -
`)
	topic := fs.String("topic", "", "topic to publish to (required)")
	file := fs.String("file", "", "JSON CloudEvent or array of them; - reads standard input")
	typ := fs.String("type", "", "event type")
	source := fs.String("source", "/crossbus-cli", "event source")
	subject := fs.String("subject", "", "event subject")
	id := fs.String("id", "", "event id (default: generated)")
	data := fs.String("data", "", "event data as JSON")
	key := fs.String("partition-key", "", "ordering key")
	var exts stringList
	fs.Var(&exts, "ext", "extension name=value (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageErr("publish needs --topic")
	}
	if c.g.admin != "" {
		return usageErr("publish works on a bus: give --bus URL")
	}
	var events []*crossbus.Event
	if *file != "" {
		var raw []byte
		var err error
		if *file == "-" {
			raw, err = io.ReadAll(c.stdin)
		} else {
			raw, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		if events, err = decodeEvents(raw); err != nil {
			return &cliError{code: exitUsage, err: err}
		}
	} else {
		if *typ == "" {
			return usageErr("publish needs --file or --type")
		}
		e := crossbus.NewEvent(*typ, *source)
		if *id != "" {
			e.SetID(*id)
		}
		if *subject != "" {
			e.SetSubject(*subject)
		}
		if *data != "" {
			if !json.Valid([]byte(*data)) {
				return usageErr("--data is not valid JSON")
			}
			if err := e.SetData("application/json", json.RawMessage(*data)); err != nil {
				return usageErr("--data: %v", err)
			}
		}
		if *key != "" {
			crossbus.SetPartitionKey(&e, *key)
		}
		for _, kv := range exts {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usageErr("--ext %q is not name=value", kv)
			}
			e.SetExtension(k, v)
		}
		events = []*crossbus.Event{&e}
	}
	b, err := c.openBus(ctx)
	if err != nil {
		return err
	}
	if err := b.Publish(ctx, *topic, events...); err != nil {
		return err
	}
	if c.g.output == "json" {
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.ID()
		}
		return c.printJSON(map[string]any{"topic": *topic, "published": len(events), "ids": ids})
	}
	for _, e := range events {
		fmt.Fprintf(c.stdout, "published %s (%s) to %s\n", e.ID(), e.Type(), *topic)
	}
	return nil
}

func decodeEvents(raw []byte) ([]*crossbus.Event, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var list []*crossbus.Event
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("events JSON: %w", err)
		}
		return list, nil
	}
	var out []*crossbus.Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	for dec.More() {
		e := new(crossbus.Event)
		if err := dec.Decode(e); err != nil {
			return nil, fmt.Errorf("event JSON: %w", err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("no events in the input")
	}
	return out, nil
}

// ---- tail

func (c *cli) tail(ctx context.Context, args []string) error {
	fs := c.flags("tail", "tail --topic T --subscription S [--pattern JSON] [--count N] [--timeout D]",
		`  crossbus --bus nats+embedded:///tmp/b tail --topic orders --subscription audit --pattern '{"type":["com.example.order.placed"]}' --count 10
`)
	topic := fs.String("topic", "", "topic (required)")
	sub := fs.String("subscription", "", "subscription to read (required; it receives what is published after it exists)")
	pattern := fs.String("pattern", "", "event pattern: only matching events are printed (the others are acked)")
	count := fs.Int("count", 0, "stop after this many events (0: until interrupted)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: no limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" || *sub == "" {
		return usageErr("tail needs --topic and --subscription")
	}
	if c.g.admin != "" {
		return usageErr("tail works on a bus: give --bus URL")
	}
	var opts []crossbus.RouteOption
	if *pattern != "" {
		p, err := crossbus.CompilePattern(*pattern)
		if err != nil {
			return err
		}
		opts = append(opts, crossbus.WithFilter(p))
	}
	b, err := c.openBus(ctx)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	got := make(chan crossbus.Event, 64)
	opts = append(opts, crossbus.WithConcurrency(1), crossbus.WithDeadLetterTopic(*topic+"-tail-dead"))
	s, err := b.Subscribe(ctx, *topic, *sub, crossbus.HandlerFunc(func(hctx context.Context, e *crossbus.Event) error {
		select {
		case got <- e.Clone():
			return nil
		case <-hctx.Done():
			return hctx.Err()
		}
	}), opts...)
	if err != nil {
		return err
	}
	defer s.Close(context.WithoutCancel(ctx))
	fmt.Fprintf(c.stderr, "tailing subscription %s of %s (interrupt to stop)\n", *sub, *topic)
	n := 0
	for {
		select {
		case e := <-got:
			n++
			if c.g.output == "json" {
				b, _ := json.Marshal(e)
				fmt.Fprintln(c.stdout, string(b))
			} else {
				fmt.Fprintf(c.stdout, "%s  %s  %s  %s  %s\n", e.Time().UTC().Format(time.RFC3339), e.Type(), e.Source(), e.ID(), e.Data())
			}
			if *count > 0 && n >= *count {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// ---- topology

func (c *cli) topology(ctx context.Context, args []string) error {
	fs := c.flags("topology", "topology (--admin URL | --file topology.json) [--format json|mermaid|dot|svg]",
		`  crossbus --admin http://localhost:8081/admin topology --format mermaid
  crossbus topology --file /tmp/demo/topology.json --format dot | dot -Tpng > routes.png
`)
	file := fs.String("file", "", "a topology JSON file (as a service writes it) instead of --admin")
	format := fs.String("format", "", "json, mermaid, dot or svg (default: a table; json with --output json)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var t topology.Topology
	switch {
	case *file != "":
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		if t, err = topology.Parse(f); err != nil {
			return &cliError{code: exitUsage, err: err}
		}
	case c.g.admin != "":
		if err := c.adminJSON(ctx, "GET", "api/topology", nil, &t); err != nil {
			return err
		}
	default:
		return usageErr("the topology is the service's router's: give --admin URL (the service's admin endpoint) or --file topology.json; a bus URL alone does not know the routes")
	}
	if *format == "" && c.g.output == "json" {
		*format = "json"
	}
	switch *format {
	case "json":
		return t.WriteJSON(c.stdout)
	case "mermaid":
		return t.WriteMermaid(c.stdout)
	case "dot":
		return t.WriteDOT(c.stdout)
	case "svg":
		return t.WriteSVG(c.stdout)
	case "":
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tSUBSCRIPTION\tHANDLER\tDEAD LETTERS\tOPTIONS")
		for _, r := range t.Routes {
			dl := "native queue"
			if r.DeadLetterTopic != "" {
				dl = "topic " + r.DeadLetterTopic
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Topic, r.Subscription, r.ShortHandler(), dl, r.Summary())
		}
		return tw.Flush()
	default:
		return usageErr("unknown --format %q (json, mermaid, dot or svg)", *format)
	}
}

// ---- replay

func (c *cli) replay(ctx context.Context, args []string) error {
	fs := c.flags("replay", "replay --topic T --from TIME [--to TIME] [--pattern JSON] [--target T] [--subscription S] --rate R [--archive PATH|postgres://...] [--id ID]",
		`  crossbus --bus nats+embedded:///tmp/demo/bus replay --archive /tmp/demo/state.db --topic orders --from 2026-01-01T00:00:00Z --subscription audit --rate 100
  crossbus --admin http://localhost:8081/admin replay --topic orders --from -1h --target orders-rebuild --rate 50
  crossbus --bus nats+embedded:///tmp/demo/bus replay --archive /tmp/demo/state.db --id replay-3f2a --resume
`)
	archive := fs.String("archive", "", "with --bus: the archive (an SQLite file path, or a postgres:// URL)")
	schema := fs.String("schema", "", "PostgreSQL schema of the archive")
	id := fs.String("id", "", "replay id (resumes an unfinished replay with --resume)")
	resume := fs.Bool("resume", false, "resume the replay --id from where it stopped")
	topic := fs.String("topic", "", "archived topic")
	from := fs.String("from", "", "start of the time range: RFC 3339, or a duration back from now like -2h")
	to := fs.String("to", "", "end of the time range (default: now)")
	pattern := fs.String("pattern", "", "event pattern selecting the events")
	target := fs.String("target", "", "topic to publish to (default: --topic)")
	sub := fs.String("subscription", "", "only this subscription of the target handles the events")
	rate := fs.Float64("rate", 0, "events per second (required, > 0)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.needTarget(); err != nil {
		return err
	}
	req := ops.ReplayRequest{ID: *id, Topic: *topic, Pattern: *pattern, Target: *target, Subscription: *sub, Rate: *rate}
	if !*resume {
		var err error
		if req.From, err = parseTime(*from, "--from"); err != nil {
			return err
		}
		if *to != "" {
			if req.To, err = parseTime(*to, "--to"); err != nil {
				return err
			}
		}
		if req.From.IsZero() {
			return usageErr("replay needs --from")
		}
	} else if *id == "" {
		return usageErr("--resume needs --id")
	}
	if c.g.admin != "" {
		return c.replayAdmin(ctx, req, *resume)
	}
	if *archive == "" {
		return usageErr("with --bus, replay needs --archive (the SQLite file or postgres:// URL the service archives to)")
	}
	store, err := c.openArchive(ctx, *archive, *schema)
	if err != nil {
		return err
	}
	b, err := c.openBus(ctx)
	if err != nil {
		return err
	}
	rp, err := ops.NewReplayer(b, store)
	if err != nil {
		return err
	}
	bar := c.newBar("replay")
	progress := func(st ops.ReplayState) { bar.set(int(st.Scanned), int(st.Total)) }
	var st ops.ReplayState
	if *resume {
		st, err = rp.Resume(ctx, *id, progress)
	} else {
		st, err = rp.Start(ctx, req, progress)
	}
	bar.done()
	return c.replayResult(st, err)
}

func (c *cli) replayResult(st ops.ReplayState, err error) error {
	if c.g.output == "json" && st.ID != "" {
		_ = c.printJSON(st)
	} else if st.ID != "" {
		fmt.Fprintf(c.stdout, "replay %s: %s, %d events published to %s (%d of %d read)\n", st.ID, st.Status, st.Published, targetOf(st), st.Scanned, st.Total)
		if st.Status == ops.ReplayInterrupted || st.Status == ops.ReplayFailed {
			fmt.Fprintf(c.stdout, "resume it with: crossbus replay --id %s --resume ...\n", st.ID)
		}
	}
	if err != nil && st.Published > 0 {
		return fmt.Errorf("%w: %w", errPartial, err)
	}
	return err
}

func targetOf(st ops.ReplayState) string {
	t := st.Target
	if t == "" {
		t = st.Topic
	}
	if st.Subscription != "" {
		t += " (subscription " + st.Subscription + " only)"
	}
	return t
}

func (c *cli) openArchive(ctx context.Context, where, schema string) (ops.ArchiveStore, error) {
	if strings.HasPrefix(where, "postgres://") || strings.HasPrefix(where, "postgresql://") {
		db, err := postgres.Open(ctx, where, postgres.Options{Schema: schema})
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, func() { _ = db.Close() })
		return db.Archive(), nil
	}
	if _, err := os.Stat(where); err != nil {
		return nil, &cliError{code: exitNotFound, err: fmt.Errorf("archive %s: %w", where, err)}
	}
	db, err := sqlite.Open(ctx, where, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, func() { _ = db.Close() })
	return db.Archive(), nil
}

func parseTime(s, flagName string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d > 0 {
			d = -d
		}
		return time.Now().Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usageErr("%s %q is neither an RFC 3339 time nor a duration like -2h", flagName, s)
	}
	return t, nil
}

func (c *cli) replayAdmin(ctx context.Context, req ops.ReplayRequest, resume bool) error {
	var st ops.ReplayState
	var err error
	if resume {
		err = c.adminJSON(ctx, "POST", "api/replays/"+url.PathEscape(req.ID)+"/resume", nil, &st)
	} else {
		err = c.adminJSON(ctx, "POST", "api/replays", req, &st)
	}
	if err != nil {
		return err
	}
	bar := c.newBar("replay")
	defer bar.done()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(c.stderr, "stopped following; replay %s goes on in the service\n", st.ID)
			return c.replayResult(st, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
		if err := c.adminJSON(ctx, "GET", "api/replays/"+url.PathEscape(st.ID), nil, &st); err != nil {
			return err
		}
		bar.set(int(st.Scanned), int(st.Total))
		if st.Status != ops.ReplayRunning && !(st.Status == ops.ReplayInterrupted && st.Published == 0 && st.Scanned == 0) {
			bar.done()
			var rerr error
			if st.Status != ops.ReplayDone {
				rerr = fmt.Errorf("replay %s %s: %s", st.ID, st.Status, st.Error)
			}
			return c.replayResult(st, rerr)
		}
	}
}

// ---- progress bar

// bar draws progress on standard error when it is a terminal.
type bar struct {
	w     io.Writer
	label string
	on    bool
	last  time.Time
	drawn bool
}

func (c *cli) newBar(label string) *bar {
	on := false
	if f, ok := c.stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &bar{w: c.stderr, label: label, on: on}
}

func (b *bar) set(done, total int) {
	if !b.on || time.Since(b.last) < 100*time.Millisecond && done < total {
		return
	}
	b.last = time.Now()
	const width = 30
	fill := width
	if total > 0 {
		fill = min(width, done*width/total)
	}
	fmt.Fprintf(b.w, "\r%s [%s%s] %d/%d", b.label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
	b.drawn = true
}

func (b *bar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// ---- admin client

type adminError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *adminError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("admin endpoint: %s (HTTP %d)", e.Detail, e.Status)
	}
	return fmt.Sprintf("admin endpoint: %s (HTTP %d)", e.Title, e.Status)
}

func (c *cli) adminRequest(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	base := strings.TrimRight(c.g.admin, "/") + "/"
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, usageErr("--admin %q: %v", c.g.admin, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.g.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.g.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		ae := &adminError{Status: resp.StatusCode, Title: resp.Status}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(ae)
		ae.Status = resp.StatusCode
		return nil, ae
	}
	return resp, nil
}

func (c *cli) adminJSON(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.adminRequest(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// adminStream runs a mutating call that reports progress lines.
func (c *cli) adminStream(ctx context.Context, path string, body any, progress func(ops.Progress)) (ops.Result, error) {
	resp, err := c.adminRequest(ctx, "POST", path, body, "application/x-ndjson")
	if err != nil {
		return ops.Result{}, err
	}
	defer resp.Body.Close()
	var res ops.Result
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		var line struct {
			Progress *ops.Progress `json:"progress"`
			Result   *ops.Result   `json:"result"`
			Error    *adminError   `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return res, fmt.Errorf("admin endpoint: malformed progress line: %w", err)
		}
		if line.Progress != nil && progress != nil {
			progress(*line.Progress)
		}
		if line.Result != nil {
			res = *line.Result
		}
		if line.Error != nil {
			return res, fmt.Errorf("%w: %s", errPartial, line.Error.Detail)
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("%w: %w", errPartial, err)
	}
	return res, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
