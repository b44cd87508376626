package aws

import (
	"errors"
	"net/url"
	"path"
	"strings"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

func init() {
	crossbus.Register("awssqs", open(SQS))
	crossbus.Register("awssns", open(SNS))
	crossbus.Register("awseventbridge", open(EventBridge))
}

func open(svc Service) driver.Opener {
	return providerkit.Opener(func(u *url.URL) (Options, error) {
		o, err := OptionsFromURL(u)
		o.Publish = svc
		return o, err
	}, New)
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
	if err := urlParams(&o).Parse("aws URL", u.Query()); err != nil {
		return o, err
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

// urlParams is the table of the query parameters of the aws URLs.
func urlParams(o *Options) providerkit.Params {
	return providerkit.Params{
		providerkit.String("region", &o.Region, "overrides the configuration's region"),
		providerkit.String("endpoint", &o.Endpoint, "base URL of every service"),
		{Name: "queue", Doc: "a queue URL, repeatable", Each: true, Parse: func(v string) error {
			if !strings.Contains(v, "://") {
				return errors.New("not a queue URL")
			}
			addQueue(o, v)
			return nil
		}},
		providerkit.OneOf("mode", &o.Mode, "structured or binary",
			providerkit.Choice[Mode]{Text: "structured", Value: Structured},
			providerkit.Choice[Mode]{Text: "binary", Value: Binary}),
		providerkit.Duration("waittime", &o.WaitTime, "long-polling wait, up to 20s"),
		providerkit.Bool("syncack", &o.SyncAck, "Ack waits for the delete"),
		providerkit.Bool("skipbuscheck", &o.SkipBusCheck, "no DescribeEventBus before the first PutEvents"),
		providerkit.Int("maxeventbytes", &o.MaxEventBytes, "lowers the event size limit"),
	}
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
