// Command peers runs the same publish → handle work through crossbus and its
// peers and prints a markdown table of CPU time and wall time per event.
//
//	go run ./cmd/peers -runs 5 -events 200000
//
// Every scenario runs -runs times, alternating (the order of the scenarios is
// reversed on every other round, so a change of machine load hits them
// alike), each run in a fresh child process so that no scenario inherits
// another's heap, goroutines or server. Each run measures the process's CPU
// time (getrusage: every goroutine, the garbage collector and, for NATS, the
// embedded server) and wall time over its timed section only. The table
// shows medians, ratios to the crossbus row of the group as medians of the
// per-round ratios, and whether issue 20's goals are met.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/crossbus/crossbus/bench/peers"
)

func main() {
	var (
		runs        = flag.Int("runs", 5, "measured runs of each scenario (alternating)")
		events      = flag.Int("events", 200000, "events per run in the in-process scenarios")
		natsEvents  = flag.Int("nats-events", 20000, "events per run in the NATS scenarios")
		warmup      = flag.Float64("warmup", 0.1, "events sent before each measured run, as a fraction of its events")
		scenarios   = flag.String("scenarios", "all", "comma-separated scenario names, name prefixes (crossbus, watermill, ...) or groups (memory, nats)")
		window      = flag.Int("window", peers.DefaultConfig().Window, "events the publisher may have unhandled before it waits")
		concurrency = flag.Int("concurrency", peers.DefaultConfig().Concurrency, "handlers at once where the library has the knob")
		batch       = flag.Int("batch", peers.DefaultConfig().Batch, "events per publish call in the NATS scenarios")
		profileDir  = flag.String("cpuprofile", "", "write a CPU profile of each scenario's last run into this directory")
		list        = flag.Bool("list", false, "list the scenarios and exit")
		child       = flag.String("child", "", "internal: run this one scenario once and print its result as JSON")
		profile     = flag.String("profile", "", "internal: the child's CPU profile file")
	)
	flag.Parse()
	cfg := peers.Config{Window: *window, Concurrency: *concurrency, Batch: *batch}

	if *list {
		for _, s := range peers.Scenarios() {
			fmt.Printf("%-34s %-7s %s\n", s.Name, s.Group, s.Desc)
		}
		return
	}
	if *child != "" {
		if err := runChild(*child, cfg, *events, int(float64(*events)**warmup), *profile); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(1)
		}
		return
	}

	sel, err := peers.Select(*scenarios)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(1)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}

	loadStart := loadAvg()
	started := time.Now()
	results := map[string][]peers.Result{}
	var loads []float64
	for run := range *runs {
		order := slices.Clone(sel)
		if run%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			n := *events
			if s.Group == "nats" {
				n = *natsEvents
			}
			args := []string{
				"-child", s.Name, "-events", fmt.Sprint(n), "-warmup", fmt.Sprint(*warmup),
				"-window", fmt.Sprint(*window), "-concurrency", fmt.Sprint(*concurrency), "-batch", fmt.Sprint(*batch),
			}
			if *profileDir != "" && run == *runs-1 {
				args = append(args, "-profile", filepath.Join(*profileDir, strings.ReplaceAll(s.Name, "/", "_")+".pprof"))
			}
			l := loadAvg()
			loads = append(loads, l[0])
			res, err := runOne(exe, args)
			if err != nil {
				fmt.Fprintf(os.Stderr, "peers: %s run %d: %v\n", s.Name, run+1, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "run %d/%d  %-34s cpu %8.0f ns/event  wall %8.0f ns/event  load %.2f\n",
				run+1, *runs, s.Name, res.CPUNs, res.WallNs, l[0])
			results[s.Name] = append(results[s.Name], res)
		}
	}
	loadEnd := loadAvg()

	fmt.Printf("`%s` on %s — %s %s/%s, GOMAXPROCS %d, %s; %d rounds, every scenario once a round in a fresh process (order reversed every other round); medians; %s in all\n\n",
		strings.Join(append([]string{"go run ./cmd/peers"}, os.Args[1:]...), " "), started.UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), cpuModel(), *runs, time.Since(started).Round(time.Second))
	fmt.Printf("Load average (1/5/15 min): %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end; 1-min load before each run: min %.2f, median %.2f, max %.2f.\n\n",
		loadStart[0], loadStart[1], loadStart[2], loadEnd[0], loadEnd[1], loadEnd[2],
		slices.Min(loads), median(loads), slices.Max(loads))
	printTable(sel, results, *batch)
	printGoals(sel, results)
}

func runOne(exe string, args []string) (peers.Result, error) {
	cmd := exec.Command(exe, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return peers.Result{}, err
	}
	var res peers.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return peers.Result{}, fmt.Errorf("child printed %q: %w", out.String(), err)
	}
	return res, nil
}

func runChild(name string, cfg peers.Config, n, warmup int, profile string) error {
	s, ok := peers.Lookup(name)
	if !ok {
		return fmt.Errorf("no scenario %q", name)
	}
	if s.Group == "nats" {
		warmup = max(warmup, 1000) // the server's first stream writes are slow
	}
	var prof io.Writer // nil: no profile
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		prof = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := peers.Measure(ctx, s, cfg, n, warmup, prof)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func printTable(sel []peers.Scenario, results map[string][]peers.Result, batch int) {
	perCall := "one event per publish call"
	if batch > 1 {
		perCall = fmt.Sprintf("%d events per publish call", batch)
	}
	groups := []struct{ name, title, base string }{
		{"memory", "In-process: one event per publish call", "crossbus/plain"},
		{"nats", "Embedded NATS JetStream (file storage): " + perCall, "crossbus/nats"},
	}
	for _, g := range groups {
		var rows []peers.Scenario
		for _, s := range sel {
			if s.Group == g.name {
				rows = append(rows, s)
			}
		}
		if len(rows) == 0 {
			continue
		}
		base := results[g.base] // nil when the base row was not selected
		fmt.Printf("%s (%d events a run):\n\n", g.title, results[rows[0].Name][0].Events)
		fmt.Println("| scenario | CPU µs/event | CPU × " + g.base + " | wall µs/event | wall × " + g.base + " | events/s (wall) | allocs/event | B/event | CPU µs/event, each round |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---|")
		for _, s := range rows {
			rs := results[s.Name]
			var all []string
			for _, r := range rs {
				all = append(all, fmt.Sprintf("%.2f", r.CPUNs/1000))
			}
			w := median(field(rs, wall))
			fmt.Printf("| %s | %.2f | %s | %.2f | %s | %s | %.1f | %s | %s |\n",
				s.Name, median(field(rs, cpu))/1000, ratioText(rs, base, cpu), w/1000, ratioText(rs, base, wall), thousands(1e9/w),
				median(field(rs, allocs)), thousands(median(field(rs, bytesPer))), strings.Join(all, ", "))
		}
		fmt.Println()
	}
	fmt.Println("The × columns are medians of the per-round ratios (each run divided by the base row's run of the same round), so a change of machine load between rounds cancels out.")
	fmt.Println()
	fmt.Println("Scenarios:")
	fmt.Println()
	for _, s := range sel {
		fmt.Printf("- `%s`: %s\n", s.Name, s.Desc)
	}
	fmt.Println()
}

// printGoals checks issue 20's goals against the measured CPU time: crossbus
// plain uses at most a tenth of the CPU per event of Watermill's router, and
// every crossbus row is cheaper than every peer library's row of its group
// (the raw nats.go client is the floor a library adds to, not a peer).
func printGoals(sel []peers.Scenario, results map[string][]peers.Result) {
	fmt.Println("Goals (CPU time per event):")
	fmt.Println()
	if plain, wm := results["crossbus/plain"], results["watermill/router"]; plain != nil && wm != nil {
		r := medianRatio(wm, plain, cpu)
		verdict := "met"
		if r < 10 {
			verdict = fmt.Sprintf("missed: crossbus/plain would need %.2f µs/event, %.1f× less than it uses", median(field(wm, cpu))/1000/10, 10/r)
		}
		fmt.Printf("- crossbus/plain ≤ 1/10 of watermill/router: watermill/router uses %.1f× the CPU of crossbus/plain — %s.\n", r, verdict)
	}
	for _, group := range []string{"memory", "nats"} {
		var ours, theirs []peers.Scenario
		for _, s := range sel {
			switch {
			case s.Group != group:
			case strings.HasPrefix(s.Name, "crossbus/"):
				ours = append(ours, s)
			case strings.HasPrefix(s.Name, "nats.go/"): // the floor, not a peer
			default:
				theirs = append(theirs, s)
			}
		}
		if len(ours) == 0 || len(theirs) == 0 {
			continue
		}
		cheapest := theirs[0]
		for _, t := range theirs[1:] {
			if median(field(results[t.Name], cpu)) < median(field(results[cheapest.Name], cpu)) {
				cheapest = t
			}
		}
		for _, o := range ours {
			r := medianRatio(results[o.Name], results[cheapest.Name], cpu)
			verdict := "cheapest"
			if r >= 1 {
				verdict = "NOT cheapest"
			}
			fmt.Printf("- %s: %s — %.2f× the CPU of the cheapest peer in its group (%s).\n", o.Name, verdict, r, cheapest.Name)
		}
	}
	if cb, raw := results["crossbus/nats"], results["nats.go/jetstream"]; cb != nil && raw != nil {
		fmt.Printf("- crossbus/nats over the raw nats.go client (the floor): %.2f× its CPU per event.\n", medianRatio(cb, raw, cpu))
	}
}

// medianRatio is the median over rounds of xs[i]/base[i].
func medianRatio(xs, base []peers.Result, f func(peers.Result) float64) float64 {
	var rs []float64
	for i := range min(len(xs), len(base)) {
		if b := f(base[i]); b > 0 {
			rs = append(rs, f(xs[i])/b)
		}
	}
	return median(rs)
}

func ratioText(xs, base []peers.Result, f func(peers.Result) float64) string {
	if len(base) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", medianRatio(xs, base, f))
}

func cpu(r peers.Result) float64      { return r.CPUNs }
func wall(r peers.Result) float64     { return r.WallNs }
func allocs(r peers.Result) float64   { return r.Allocs }
func bytesPer(r peers.Result) float64 { return r.Bytes }

func field(rs []peers.Result, f func(peers.Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// loadAvg reads the 1, 5 and 15 minute load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	_, _ = fmt.Sscan(string(b), &l[0], &l[1], &l[2])
	return l
}

// cpuModel is the processor's name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
