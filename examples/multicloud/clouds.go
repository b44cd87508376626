package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.opentelemetry.io/otel/trace"
	_ "gocloud.dev/blob/azureblob" // the claim-check bucket by URL
	_ "gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/claimcheck"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
	"github.com/crossbus/crossbus/providers/gcp"
)

// clouds are the three buses, sharing one claim-check bucket.
type clouds struct {
	aws, azure, gcp *crossbus.Bus
	store           *claimcheck.Store
	closers         []func()
}

func (c *clouds) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

func (c *clouds) onClose(f func()) { c.closers = append(c.closers, f) }

func (c *clouds) bus(b *crossbus.Bus) *crossbus.Bus {
	c.onClose(func() { _ = b.Close(context.Background()) })
	return b
}

// claimThreshold: data over 128 KiB goes by claim check (EventBridge takes
// 256 KiB events, Service Bus standard 256 KiB, Pub/Sub 10 MB).
const claimThreshold = 128 << 10

// openClouds opens the buses: on the embedded test servers, or by URL.
func openClouds(ctx context.Context, cfg config, tp trace.TracerProvider) (_ *clouds, err error) {
	c := &clouds{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if !cfg.embedded() {
		if cfg.aws == "" || cfg.azure == "" || cfg.gcp == "" || cfg.bucket == "" {
			return nil, errors.New("give all four of -aws, -azure, -gcp and -bucket, or none for the embedded test servers")
		}
		if c.store, err = claimcheck.Open(ctx, cfg.bucket, nil); err != nil {
			return nil, err
		}
		c.onClose(func() { _ = c.store.Close() })
		opts := []crossbus.BusOption{crossbus.WithTracerProvider(tp), claimcheck.Option(c.store, claimThreshold)}
		for _, x := range []struct {
			dst **crossbus.Bus
			url string
		}{{&c.aws, cfg.aws}, {&c.azure, cfg.azure}, {&c.gcp, cfg.gcp}} {
			b, err := crossbus.Open(ctx, x.url, opts...)
			if err != nil {
				return nil, err
			}
			*x.dst = c.bus(b)
		}
		return c, nil
	}

	// S3: gofakes3, with the bucket "invoices".
	backend := s3mem.New()
	if err := backend.CreateBucket("invoices"); err != nil {
		return nil, err
	}
	s3srv := httptest.NewServer(gofakes3.New(backend).Server())
	c.onClose(s3srv.Close)
	s3client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: awssdk.String(s3srv.URL), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider("shop", "secret", ""),
		RequestChecksumCalculation: awssdk.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: awssdk.ResponseChecksumValidationWhenRequired})
	bucket, err := s3blob.OpenBucket(ctx, s3client, "invoices", nil)
	if err != nil {
		return nil, err
	}
	c.onClose(func() { _ = bucket.Close() })
	if c.store, err = claimcheck.New(bucket, "s3://invoices", nil); err != nil {
		return nil, err
	}
	opts := []crossbus.BusOption{crossbus.WithTracerProvider(tp), claimcheck.Option(c.store, claimThreshold)}

	// AWS: EventBridge bus "orders"; rules feed the queues "to-azure" and
	// "to-gcp", each with a dead-letter queue.
	awsSrv := awstest.NewServer(awstest.Options{})
	c.onClose(awsSrv.Close)
	awsCfg := awsSrv.Config()
	ap, err := aws.New(ctx, aws.Options{Publish: aws.EventBridge, Config: &awsCfg, WaitTime: 100 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	if _, err := ap.ProvisionTopic(ctx, "orders", false); err != nil {
		return nil, err
	}
	for _, r := range []aws.Route{
		{Subscription: "to-azure", Topic: "orders", MaxReceiveCount: 5,
			Filter: crossbus.TypeIs("com.example.order.placed", "com.example.invoice.attached")},
		{Subscription: "to-gcp", Topic: "orders", MaxReceiveCount: 5, Filter: crossbus.TypePrefix("com.example.order.")},
	} {
		if _, err := ap.Provision(ctx, r); err != nil {
			return nil, err
		}
	}
	if c.aws, err = crossbus.New(ap, opts...); err != nil {
		return nil, err
	}
	c.bus(c.aws)

	// Azure: Service Bus topic "orders", subscription "fulfilment".
	sb, err := sbtest.NewServer(sbtest.Options{})
	if err != nil {
		return nil, err
	}
	c.onClose(func() { _ = sb.Close() })
	if err := sb.CreateTopic("orders", sbtest.EntityOptions{}); err != nil {
		return nil, err
	}
	if err := sb.CreateSubscription("orders", "fulfilment", sbtest.EntityOptions{MaxDeliveryCount: 5}); err != nil {
		return nil, err
	}
	sp, err := servicebus.New(ctx, servicebus.Options{ConnectionString: sb.ConnectionString()})
	if err != nil {
		return nil, err
	}
	if c.azure, err = crossbus.New(sp, opts...); err != nil {
		return nil, err
	}
	c.bus(c.azure)

	// Google: Pub/Sub topic "orders", subscription "analytics" with a
	// dead-letter topic.
	ps := pstest.NewServer()
	c.onClose(func() { _ = ps.Close() })
	g, err := crossbus.Open(ctx, "gcppubsub://projects/shop?endpoint="+ps.Addr+"&insecure=true&publishdelay=1ms", opts...)
	if err != nil {
		return nil, err
	}
	c.gcp = c.bus(g)
	var gp *gcp.Provider
	if !g.As(&gp) {
		return nil, fmt.Errorf("not a Pub/Sub bus")
	}
	if err := gp.CreateTopic(ctx, "orders"); err != nil {
		return nil, err
	}
	if err := gp.CreateSubscription(ctx, "orders", "analytics", gcp.SubscriptionConfig{DeadLetterTopic: "orders-dead", MaxDeliveryAttempts: 5}); err != nil {
		return nil, err
	}
	return c, nil
}
