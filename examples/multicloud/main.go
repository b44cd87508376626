// Command multicloud follows one order across three clouds. The shop
// publishes on AWS (EventBridge); bridges forward the orders to Azure
// Service Bus, where fulfilment packs them, and to Google Pub/Sub, where
// analytics counts them. It shows:
//
//   - one trace across all three clouds, printed as a tree;
//
//   - a large invoice attachment sent by claim check (the data goes to an
//     S3 bucket, the events carry a reference through EventBridge, SQS and
//     Service Bus, and nothing is written twice);
//
//   - a duplicate (the shop retries a publish) suppressed by fulfilment's
//     idempotency on the far side, because the bridge keeps the event's id;
//
//   - a poison event dead-lettered on the cloud where it failed (Pub/Sub's
//     dead-letter topic), while the other cloud handles it.
//
//     go run ./examples/multicloud
//
// runs it on the embedded test servers (the AWS test server, the Service
// Bus test broker, pstest, and gofakes3 for S3). With real accounts, give
// the four URLs as flags or in the environment (CROSSBUS_MULTICLOUD_AWS,
// _AZURE, _GCP, _BUCKET):
//
//	go run ./examples/multicloud -aws 'awseventbridge://orders?region=eu-west-1' \
//		-azure azuresb://shop.servicebus.windows.net -gcp gcppubsub://projects/shop \
//		-bucket 's3://shop-invoices?region=eu-west-1'
//
// The entities must exist there: the EventBridge bus "orders" with rules
// feeding the SQS queues "to-azure" (order placed and invoice attached) and
// "to-gcp" (every order event), each with a dead-letter queue; the Service
// Bus topic "orders" with the subscription "fulfilment"; the Pub/Sub topic
// "orders" with the subscription "analytics", whose dead-letter policy
// names a topic with a subscription; and the bucket, with a lifecycle rule
// expiring "claimcheck/" after a few days.
package main

import (
	"context"
	"flag"
	"fmt"

	"os"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.aws, "aws", os.Getenv("CROSSBUS_MULTICLOUD_AWS"), "AWS bus URL (awseventbridge://...); empty: the embedded test servers")
	flag.StringVar(&cfg.azure, "azure", os.Getenv("CROSSBUS_MULTICLOUD_AZURE"), "Azure Service Bus URL (azuresb://...)")
	flag.StringVar(&cfg.gcp, "gcp", os.Getenv("CROSSBUS_MULTICLOUD_GCP"), "Google Pub/Sub URL (gcppubsub://projects/...)")
	flag.StringVar(&cfg.bucket, "bucket", os.Getenv("CROSSBUS_MULTICLOUD_BUCKET"), "claim-check bucket URL (s3://..., gs://..., azblob://...)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "multicloud:", err)
		os.Exit(1)
	}
}

// config names the clouds; all empty means the embedded test servers.
type config struct {
	aws, azure, gcp, bucket string
}

func (c config) embedded() bool { return c.aws == "" && c.azure == "" && c.gcp == "" && c.bucket == "" }
