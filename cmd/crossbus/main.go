// Command crossbus operates crossbus event buses: publish and tail events,
// list, group, show, redrive and purge dead letters, print a service's
// topology and replay archived events — against a bus URL directly (every
// provider's scheme is registered) or against a service's admin endpoint
// (ops.Handler).
//
//	go install github.com/crossbus/crossbus/cmd/crossbus@latest
//	crossbus --help
//
// Exit codes: 0 success; 1 the operation failed; 2 bad usage or input;
// 3 not found (route, topic, dead letter, group, replay); 4 refused
// (authentication); 5 interrupted part-way (some of the work was done, the
// rest was left in place).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitRefused     = 4
	exitInterrupted = 5
)

const usage = `crossbus operates crossbus event buses.

Usage:
  crossbus [global flags] <command> [flags]

Commands:
  publish    publish events (from JSON or from flags)
  tail       subscribe and print events, optionally filtered by an event pattern
  dlq        dead letters: ls, groups, show, redrive, purge
  topology   print a service's routes as JSON, Mermaid, DOT or SVG
  replay     re-publish archived events of a time range

Global flags (before or after the command):
  --bus URL        operate on the bus directly (mem://, nats+embedded:///dir, gcppubsub://..., ...)
  --admin URL      operate through a service's admin endpoint (ops.Handler)
  --token TOKEN    the admin endpoint's bearer token (default $CROSSBUS_ADMIN_TOKEN)
  --output FORMAT  text (default) or json, for scripts

Examples:
  crossbus --bus nats+embedded:///tmp/demo/bus publish --topic orders --type com.example.order.placed --data '{"id":"o-1"}'
  crossbus --bus nats+embedded:///tmp/demo/bus tail --topic orders --subscription audit --pattern '{"type":["com.example.order.placed"]}'
  crossbus --admin http://localhost:8081/admin dlq groups --topic signups --subscription sms
  crossbus --admin http://localhost:8081/admin dlq redrive --topic signups --subscription sms --group g1a2b3c4d5e6 --rate 20
  crossbus --bus nats+embedded:///tmp/demo/bus dlq purge --topic signups --subscription sms --all --yes
  crossbus --admin http://localhost:8081/admin topology --format mermaid
  crossbus topology --file /tmp/demo/topology.json --format dot
  crossbus --bus nats+embedded:///tmp/demo/bus replay --archive /tmp/demo/state.db --topic orders --from 2026-01-01T00:00:00Z --subscription audit --rate 100

Exit codes:
  0 success, 1 the operation failed, 2 bad usage or input, 3 not found,
  4 refused (authentication), 5 interrupted part-way (the rest left in place)

Run "crossbus <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cliError carries an exit code.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g, rest, err := parseGlobal(args)
	if err != nil {
		fmt.Fprintln(stderr, "crossbus:", err)
		return exitUsage
	}
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(rest) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c := &cli{g: g, stdin: stdin, stdout: stdout, stderr: stderr}
	var cmdErr error
	switch rest[0] {
	case "publish":
		cmdErr = c.publish(ctx, rest[1:])
	case "tail":
		cmdErr = c.tail(ctx, rest[1:])
	case "dlq":
		cmdErr = c.dlq(ctx, rest[1:])
	case "topology":
		cmdErr = c.topology(ctx, rest[1:])
	case "replay":
		cmdErr = c.replay(ctx, rest[1:])
	default:
		fmt.Fprintf(stderr, "crossbus: unknown command %q\n\n%s", rest[0], usage)
		return exitUsage
	}
	c.close()
	if cmdErr == nil {
		return exitOK
	}
	if errors.Is(cmdErr, errHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "crossbus:", cmdErr)
	return exitCode(cmdErr)
}
