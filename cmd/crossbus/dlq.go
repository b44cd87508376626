package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crossbus/crossbus/ops"
)

const dlqUsage = `Usage: crossbus dlq <ls|groups|show|redrive|purge> --topic T --subscription S [flags]

  ls        list dead letters (paged: --limit, --page)
  groups    dead letters grouped by cause
  show      one dead letter (--id)
  redrive   re-publish dead letters to their origin topic (or --to), at --rate per second
  purge     delete dead letters for good (asks unless --yes)

Select with --id (repeatable), --group or --all. Routes whose dead letters
go to a dead-letter topic are read through a subscription of it:
--dlt-topic and --dlt-subscription (with --bus).

Examples:
  crossbus --admin http://localhost:8081/admin dlq groups --topic signups --subscription sms
  crossbus --bus nats+embedded:///tmp/demo/bus dlq ls --topic signups --subscription sms --limit 20
  crossbus --bus nats+embedded:///tmp/demo/bus dlq redrive --topic signups --subscription sms --group g1a2b3c4d5e6 --rate 20
  crossbus --bus nats+embedded:///tmp/demo/bus dlq purge --topic signups --subscription sms --all --yes
`

func (c *cli) dlq(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, dlqUsage)
		if len(args) == 0 {
			return usageErr("dlq needs a subcommand")
		}
		return errHelp
	}
	sub := args[0]
	fs := c.flags("dlq "+sub, "dlq "+sub+" --topic T --subscription S [flags]", "")
	fs.Usage = func() {
		fmt.Fprint(c.stdout, dlqUsage, "\nFlags:\n")
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		fs.SetOutput(c.stderr)
	}
	topic := fs.String("topic", "", "the route's topic (required)")
	subscription := fs.String("subscription", "", "the route's subscription (required)")
	dltTopic := fs.String("dlt-topic", "", "read from this dead-letter topic instead of the native queue (with --bus)")
	dltSub := fs.String("dlt-subscription", "", "the subscription of --dlt-topic to read")
	var ids stringList
	fs.Var(&ids, "id", "a dead letter's id (repeatable)")
	group := fs.String("group", "", "a group's id (from dlq groups)")
	all := fs.Bool("all", false, "every dead letter of the route")
	limit := fs.Int("limit", 50, "page size (ls)")
	page := fs.String("page", "", "page token (ls; printed after a page)")
	to := fs.String("to", "", "redrive to this topic instead of the origin")
	rate := fs.Float64("rate", 50, "redrive: events per second (> 0)")
	everyone := fs.Bool("all-subscriptions", false, "redrive to every subscription of the origin topic, not only the one that failed")
	yes := fs.Bool("yes", false, "purge without asking")
	wait := fs.Duration("wait", 0, "with --bus: how long to wait for the first dead letter of a read (default 2s)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *topic == "" || *subscription == "" {
		return usageErr("dlq %s needs --topic and --subscription", sub)
	}
	if err := c.needTarget(); err != nil {
		return err
	}
	sel := ops.Selection{IDs: ids, Group: *group, All: *all}
	var d *ops.DeadLetters
	path := "api/deadletters/" + url.PathEscape(*topic) + "/" + url.PathEscape(*subscription)
	if c.g.bus != "" {
		b, err := c.openBus(ctx)
		if err != nil {
			return err
		}
		src := ops.Source{Topic: *topic, Subscription: *subscription, DeadLetterTopic: *dltTopic, DeadLetterSubscription: *dltSub}
		if d, err = ops.NewDeadLetters(b, src, ops.Options{Wait: *wait}); err != nil {
			return err
		}
	}
	switch sub {
	case "ls":
		var p ops.Page
		var err error
		if d != nil {
			p, err = d.List(ctx, ops.ListOptions{Group: *group, Limit: *limit, Page: *page})
		} else {
			q := url.Values{"limit": {itoa(*limit)}}
			if *group != "" {
				q.Set("group", *group)
			}
			if *page != "" {
				q.Set("page", *page)
			}
			err = c.adminJSON(ctx, "GET", path+"?"+q.Encode(), nil, &p)
		}
		if err != nil {
			return err
		}
		if c.g.output == "json" {
			return c.printJSON(p)
		}
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEVENT\tTYPE\tATTEMPTS\tDEAD-LETTERED\tREASON")
		for _, it := range p.Items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.Event.ID(), it.Event.Type(), it.Attempts, it.LastFailure.Format(time.RFC3339), oneLine(it.Reason, 80))
		}
		_ = tw.Flush()
		fmt.Fprintf(c.stdout, "%d of %d dead letters", len(p.Items), p.Total)
		if p.Next != "" {
			fmt.Fprintf(c.stdout, "; next page: --page %s", p.Next)
		}
		fmt.Fprintln(c.stdout)
		return nil
	case "groups":
		var groups []ops.Group
		var err error
		if d != nil {
			groups, err = d.Groups(ctx)
		} else {
			var out struct {
				Groups []ops.Group `json:"groups"`
			}
			err = c.adminJSON(ctx, "GET", path+"/groups", nil, &out)
			groups = out.Groups
		}
		if err != nil {
			return err
		}
		if c.g.output == "json" {
			if groups == nil {
				groups = []ops.Group{}
			}
			return c.printJSON(map[string]any{"groups": groups})
		}
		if len(groups) == 0 {
			fmt.Fprintf(c.stdout, "no dead letters for subscription %s of %s\n", *subscription, *topic)
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tCOUNT\tLAST FAILURE\tCAUSE")
		for _, g := range groups {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", g.ID, g.Count, g.LastFailure.Format(time.RFC3339), g.Cause)
		}
		return tw.Flush()
	case "show":
		if len(ids) != 1 {
			return usageErr("dlq show needs one --id")
		}
		var dl ops.DeadLetter
		var err error
		if d != nil {
			dl, err = d.Get(ctx, ids[0])
		} else {
			err = c.adminJSON(ctx, "GET", path+"/items/"+url.PathEscape(ids[0]), nil, &dl)
		}
		if err != nil {
			return err
		}
		if c.g.output == "json" {
			return c.printJSON(dl)
		}
		fmt.Fprintf(c.stdout, "id:             %s\nevent:          %s (%s from %s)\norigin:         subscription %s of topic %s\nattempts:       %d\nfirst failure:  %s\nlast failure:   %s\nredriven:       %d times\ngroup:          %s (%s)\nreason:         %s\ndata:           %s\n",
			dl.ID, dl.Event.ID(), dl.Event.Type(), dl.Event.Source(), dl.Subscription, dl.Topic, dl.Attempts,
			dl.FirstFailure.Format(time.RFC3339Nano), dl.LastFailure.Format(time.RFC3339Nano), dl.Redriven, dl.Group, dl.Cause, dl.Reason, dl.Event.Data())
		return nil
	case "redrive":
		if !(*rate > 0) {
			return usageErr("--rate must be above 0 events per second, got %v", *rate)
		}
		bar := c.newBar("redrive")
		progress := func(p ops.Progress) { bar.set(p.Done, p.Total) }
		var res ops.Result
		var err error
		if d != nil {
			res, err = d.Redrive(ctx, sel, ops.RedriveOptions{To: *to, Rate: *rate, AllSubscriptions: *everyone, Progress: progress})
			if err != nil && res.Done > 0 {
				err = fmt.Errorf("%w: %w", errPartial, err)
			}
		} else {
			res, err = c.adminStream(ctx, path+"/redrive", map[string]any{"ids": sel.IDs, "group": sel.Group, "all": sel.All,
				"to": *to, "rate": *rate, "allSubscriptions": *everyone}, progress)
		}
		bar.done()
		return c.result("redrove", res, err)
	case "purge":
		if !*yes {
			what := "these dead letters"
			switch {
			case *all:
				what = "every dead letter of subscription " + *subscription
			case *group != "":
				what = "the dead letters of group " + *group
			}
			fmt.Fprintf(c.stderr, "Delete %s for good? Type yes: ", what)
			var answer string
			_, _ = fmt.Fscanln(c.stdin, &answer)
			if strings.TrimSpace(answer) != "yes" {
				return usageErr("not purged (answer yes, or pass --yes)")
			}
		}
		bar := c.newBar("purge")
		progress := func(p ops.Progress) { bar.set(p.Done, p.Total) }
		var res ops.Result
		var err error
		if d != nil {
			res, err = d.Purge(ctx, sel, ops.PurgeOptions{Progress: progress})
			if err != nil && res.Done > 0 {
				err = fmt.Errorf("%w: %w", errPartial, err)
			}
		} else {
			res, err = c.adminStream(ctx, path+"/purge", sel, progress)
		}
		bar.done()
		return c.result("purged", res, err)
	default:
		fmt.Fprint(c.stderr, dlqUsage)
		return usageErr("unknown dlq subcommand %q", sub)
	}
}

func (c *cli) result(verb string, res ops.Result, err error) error {
	if c.g.output == "json" {
		if res.IDs == nil {
			res.IDs = []string{}
		}
		_ = c.printJSON(res)
	} else if err == nil || res.Done > 0 {
		fmt.Fprintf(c.stdout, "%s %d of %d dead letters\n", verb, res.Done, res.Selected)
	}
	return err
}

func oneLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
