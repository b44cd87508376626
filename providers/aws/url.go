package aws

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

func init() {
	crossbus.Register("awssqs", open(SQS))
	crossbus.Register("awssns", open(SNS))
	crossbus.Register("awseventbridge", open(EventBridge))
}

func open(svc Service) driver.Opener {
	return func(ctx context.Context, u *url.URL) (driver.Provider, error) {
		o, err := OptionsFromURL(u)
		if err != nil {
			return nil, err
		}
		o.Publish = svc
		return New(ctx, o)
	}
}

// OptionsFromURL reads provider options from a URL:
//
//	awssqs://sqs.us-east-1.amazonaws.com/123456789012/orders   (a queue URL without https://)
//	awssqs:///orders                                            (a queue name)
//	awssns:arn:aws:sns:us-east-1:123456789012:orders?queue=...  (a topic ARN)
//	awssns://orders?queue=...                                   (a topic name)
//	awseventbridge://orders-bus?queue=https://sqs.us-east-1.amazonaws.com/123456789012/billing
//
// The host or path is Options.Target. Query parameters: region, endpoint
// (a base URL for every service), queue (a queue URL, repeatable: lets
// subscriptions named after the queue skip the GetQueueUrl lookup, e.g. for
// queues of another account), mode (structured or binary), waittime (a
// duration up to 20s), syncack (true or false), maxeventbytes, and
// skipbuscheck (true or false).
func OptionsFromURL(u *url.URL) (Options, error) {
	var o Options
	q := u.Query()
	for k, vs := range q {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "region":
			o.Region = v
		case "endpoint":
			o.Endpoint = v
		case "queue":
			for _, qu := range vs {
				if !strings.Contains(qu, "://") {
					return o, fmt.Errorf("%w: aws URL parameter queue=%q is not a queue URL", driver.ErrInvalidURL, qu)
				}
				addQueue(&o, qu)
			}
		case "mode":
			switch v {
			case "structured":
				o.Mode = Structured
			case "binary":
				o.Mode = Binary
			default:
				err = fmt.Errorf("want structured or binary")
			}
		case "waittime":
			o.WaitTime, err = time.ParseDuration(v)
		case "syncack":
			o.SyncAck, err = strconv.ParseBool(v)
		case "skipbuscheck":
			o.SkipBusCheck, err = strconv.ParseBool(v)
		case "maxeventbytes":
			o.MaxEventBytes, err = strconv.Atoi(v)
		default:
			return o, fmt.Errorf("%w: unknown aws URL parameter %q (known: region, endpoint, queue, mode, waittime, syncack, skipbuscheck, maxeventbytes)",
				driver.ErrInvalidURL, k)
		}
		if err != nil {
			return o, fmt.Errorf("%w: aws URL parameter %s=%q: %v", driver.ErrInvalidURL, k, v, err)
		}
	}
	switch {
	case u.Opaque != "":
		o.Target = u.Opaque
	case u.Host != "" && u.Scheme == "awssqs":
		scheme := "https"
		if e, err := url.Parse(o.Endpoint); err == nil && o.Endpoint != "" && e.Host == u.Host {
			scheme = e.Scheme
		}
		o.Target = scheme + "://" + u.Host + u.Path
		addQueue(&o, o.Target)
	case u.Host != "":
		o.Target = u.Host
	default:
		o.Target = strings.TrimPrefix(u.Path, "/")
	}
	return o, nil
}

// addQueue registers a queue URL under its name and, for FIFO queues, its
// name without ".fifo".
func addQueue(o *Options, queueURL string) {
	if o.Queues == nil {
		o.Queues = map[string]string{}
	}
	name := path.Base(queueURL)
	o.Queues[name] = queueURL
	o.Queues[strings.TrimSuffix(name, ".fifo")] = queueURL
}
