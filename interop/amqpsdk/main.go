// Command amqpsdk is the CloudEvents Go SDK's side of the AMQP interop tests
// of package interop: it sends and receives events with the SDK's AMQP
// binding (protocol/amqp, on go-amqp v0.17), which cannot be built together
// with the go-amqp v1 that crossbus's Service Bus provider uses.
//
//	amqpsdk send ADDRESS ENTITY [binary|structured] < lines
//	amqpsdk receive ADDRESS ENTITY COUNT > lines
//
// ADDRESS is the broker's "amqp://host:port" (SASL ANONYMOUS). Each line is
// a JSON object {"event": <the event in the JSON event format>, "types":
// {<extension>: <CloudEvents type>}}: the JSON format writes Binary, URI,
// URI-reference and Timestamp extensions as strings, so "types" says what
// to turn them back into before sending, and reports what the SDK holds
// after receiving. A message the SDK cannot read is reported as
// {"error": "..."}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/Azure/go-amqp"
	ceamqp "github.com/cloudevents/sdk-go/protocol/amqp/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/cloudevents/sdk-go/v2/types"
)

// line is one event on standard input or output.
type line struct {
	Event *event.Event      `json:"event,omitempty"`
	Types map[string]string `json:"types,omitempty"`
	Error string            `json:"error,omitempty"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "amqpsdk:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) < 3 {
		return errors.New("usage: amqpsdk send ADDRESS ENTITY [binary|structured] | receive ADDRESS ENTITY COUNT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := []amqp.ConnOption{amqp.ConnSASLAnonymous()}
	switch args[0] {
	case "send":
		structured := len(args) > 3 && args[3] == "structured"
		p, err := ceamqp.NewSenderProtocol(args[1], args[2], conn, nil)
		if err != nil {
			return err
		}
		defer p.Close(ctx)
		return send(ctx, p, structured, in)
	case "receive":
		n, err := strconv.Atoi(args[3])
		if err != nil {
			return fmt.Errorf("count %q: %w", args[3], err)
		}
		p, err := ceamqp.NewReceiverProtocol(args[1], args[2], conn, nil)
		if err != nil {
			return err
		}
		defer p.Close(ctx)
		return receive(ctx, p, n, out)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func send(ctx context.Context, p protocol.Sender, structured bool, in io.Reader) error {
	c, err := client.New(p)
	if err != nil {
		return err
	}
	if structured {
		ctx = binding.WithForceStructured(ctx)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return err
		}
		if l.Event == nil {
			return errors.New("a line without an event")
		}
		for name, typ := range l.Types {
			v, err := typed(l.Event.Extensions()[name], typ)
			if err != nil {
				return fmt.Errorf("event %s: extension %s: %w", l.Event.ID(), name, err)
			}
			l.Event.SetExtension(name, v)
		}
		if res := c.Send(ctx, *l.Event); !protocol.IsACK(res) {
			return fmt.Errorf("send %s: %w", l.Event.ID(), res)
		}
	}
	return sc.Err()
}

func receive(ctx context.Context, p protocol.Receiver, n int, out io.Writer) error {
	enc := json.NewEncoder(out)
	for i := 0; i < n; i++ {
		m, err := p.Receive(ctx)
		if err != nil {
			return fmt.Errorf("receive %d of %d: %w", i+1, n, err)
		}
		e, err := binding.ToEvent(ctx, m)
		var l line
		if err != nil {
			l.Error = err.Error()
		} else {
			l.Event = e
			l.Types = map[string]string{}
			for name, v := range e.Extensions() {
				l.Types[name] = typeName(v)
			}
		}
		if err := m.Finish(nil); err != nil {
			return err
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return nil
}

// typed converts v (as the JSON format left it) to the CloudEvents type typ.
func typed(v any, typ string) (any, error) {
	switch typ {
	case "Boolean":
		return types.ToBool(v)
	case "Integer":
		return types.ToInteger(v)
	case "String":
		return types.ToString(v)
	case "Binary":
		return types.ToBinary(v)
	case "URI":
		u, err := types.ToURL(v)
		if err != nil {
			return nil, err
		}
		return types.URI{URL: *u}, nil
	case "URI-reference":
		u, err := types.ToURL(v)
		if err != nil {
			return nil, err
		}
		return types.URIRef{URL: *u}, nil
	case "Timestamp":
		t, err := types.ToTime(v)
		if err != nil {
			return nil, err
		}
		return types.Timestamp{Time: t}, nil
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

// typeName is the CloudEvents type of a value the SDK holds.
func typeName(v any) string {
	switch v.(type) {
	case bool:
		return "Boolean"
	case int32:
		return "Integer"
	case string:
		return "String"
	case []byte:
		return "Binary"
	case types.URI:
		return "URI"
	case types.URIRef:
		return "URI-reference"
	case types.Timestamp:
		return "Timestamp"
	}
	return fmt.Sprintf("%T", v)
}
