// Package bridge forwards the events of a subscription on one bus to a topic
// on another — from AWS to Azure, from Azure to Google Cloud, from the
// in-process bus to a cloud — keeping what consumers rely on end to end:
// the event's id, source, time, partitionkey, trace context and every other
// extension. A consumer's idempotency (subscription + source + id) and
// per-key ordering work across the bridge as if the producer had published
// on the far side.
//
//	b, err := bridge.New(bridge.Config{Name: "orders-aws-azure", Target: azureBus, TargetTopic: "orders",
//		Filter: crossbus.TypePrefix("com.example.order.")})
//	err = b.Route(awsRouter, "orders", "to-azure", crossbus.WithOrdering())
//
// # Delivery
//
// The bridge is a handler of the source route: it acknowledges an event only
// after the target bus accepted it, so an event is forwarded at least once
// (a redelivery after an acknowledgement that was lost forwards a copy with
// the same id: consumers deduplicate it). A target that fails (an outage,
// throttling) fails the attempt: the source route retries it with its own
// RetryPolicy and backoff (DefaultRetry unless the route's options set
// one) and, after the last attempt, dead-letters it on the source side,
// where it failed, with the target's error as the reason. A target that
// refuses the event (too large, invalid) dead-letters it at once. With
// crossbus.WithOrdering on the source route, events of one partition key
// are forwarded one at a time in order, so a target with ordering keeps the
// per-key order.
//
// # Loops
//
// Each forwarded copy lists the bridges it crossed in the bridgedvia
// extension (comma-separated names). A bridge does not forward an event
// whose list has its own name: it is acknowledged and counted
// (Stats.LoopsStopped). Give the two directions of one link the same name,
// and an event never goes back where it came from; in a ring of bridges an
// event stops at the first bridge it meets again.
//
// # Claim checks
//
// An event whose data came through a claim check (package claimcheck) is
// fetched on the source side like any delivery. When the target bus uses a
// claim check on the same bucket, the forwarded copy carries the same
// dataref and nothing is written again; otherwise the target's claim check
// (or none) decides as for any publish.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crossbus/crossbus"
)

// ExtBridgedVia lists the bridges an event crossed, comma-separated.
const ExtBridgedVia = "bridgedvia"

// Config describes a bridge.
type Config struct {
	// Name identifies the bridge in the bridgedvia extension: a portable
	// name (crossbus.ValidateName). Required.
	Name string
	// Target is the bus the events go to, and TargetTopic its topic. Required.
	Target      crossbus.Publisher
	TargetTopic string
	// Filter selects the events to forward (an event pattern, say); the
	// others are acknowledged on the source and not forwarded. nil forwards
	// every event.
	Filter crossbus.Filter
	// Transform, when set, changes the copy about to be forwarded (its data,
	// its type, an extension). An error fails the attempt like a target
	// failure; crossbus.Permanent dead-letters at once. Changing the id or
	// source defeats consumers' deduplication.
	Transform func(ctx context.Context, e *crossbus.Event) error
}

// DefaultRetry is the source route's retry policy unless its options set
// one: a target outage of up to about half an hour is ridden out.
var DefaultRetry = crossbus.RetryPolicy{MaxAttempts: 40, InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.2}

// Stats counts what a bridge did.
type Stats struct {
	Forwarded    int64 // events the target accepted
	Failed       int64 // attempts that failed (target errors, transform errors)
	LoopsStopped int64 // events not forwarded because they already crossed this bridge
}

// Bridge forwards events to its target; it is a crossbus.Handler for the
// source route (see Route). It is safe for concurrent use.
type Bridge struct {
	cfg                       Config
	forwarded, failed, looped atomic.Int64
}

// New checks cfg and returns the bridge.
func New(cfg Config) (*Bridge, error) {
	if err := crossbus.ValidateName(cfg.Name); err != nil {
		return nil, fmt.Errorf("bridge: name: %w", err)
	}
	if cfg.Target == nil {
		return nil, fmt.Errorf("bridge %q: %w: no target bus", cfg.Name, crossbus.ErrInvalidOption)
	}
	if err := crossbus.ValidateName(cfg.TargetTopic); err != nil {
		return nil, fmt.Errorf("bridge %q: target topic: %w", cfg.Name, err)
	}
	return &Bridge{cfg: cfg}, nil
}

// Name is the bridge's name.
func (b *Bridge) Name() string { return b.cfg.Name }

// Stats returns the bridge's counts so far.
func (b *Bridge) Stats() Stats {
	return Stats{Forwarded: b.forwarded.Load(), Failed: b.failed.Load(), LoopsStopped: b.looped.Load()}
}

// Route adds the bridge to a router of the source bus as the handler of
// subscription of topic. The route's options come after the bridge's own
// (its Filter and DefaultRetry), so they may override the retry policy;
// add crossbus.WithOrdering to keep per-key order, and
// crossbus.WithDeadLetterTopic where the source has no native dead-letter
// queue.
func (b *Bridge) Route(r *crossbus.Router, topic, subscription string, opts ...crossbus.RouteOption) error {
	return r.Handle(topic, subscription, b, b.routeOptions(opts)...)
}

// Subscribe starts the bridge on a subscription of the source bus without a
// router; the options are as for Route.
func (b *Bridge) Subscribe(ctx context.Context, source crossbus.Subscriber, topic, subscription string, opts ...crossbus.RouteOption) (*crossbus.Subscription, error) {
	return source.Subscribe(ctx, topic, subscription, b, b.routeOptions(opts)...)
}

func (b *Bridge) routeOptions(opts []crossbus.RouteOption) []crossbus.RouteOption {
	own := []crossbus.RouteOption{crossbus.WithRetry(DefaultRetry)}
	if b.cfg.Filter != nil {
		own = append(own, crossbus.WithFilter(b.cfg.Filter))
	}
	return append(own, opts...)
}

// Crossed reports the bridges an event crossed (its bridgedvia list).
func Crossed(e *crossbus.Event) []string {
	v := crossbus.ExtensionString(e, ExtBridgedVia)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Handle forwards one event: it returns nil once the target accepted it.
func (b *Bridge) Handle(ctx context.Context, e *crossbus.Event) error {
	via := Crossed(e)
	if slices.Contains(via, b.cfg.Name) {
		b.looped.Add(1)
		return nil
	}
	out := e.Clone()
	out.SetExtension(ExtBridgedVia, strings.Join(append(via, b.cfg.Name), ","))
	if b.cfg.Transform != nil {
		if err := b.cfg.Transform(ctx, &out); err != nil {
			b.failed.Add(1)
			return fmt.Errorf("bridge %q: transform: %w", b.cfg.Name, err)
		}
	}
	if err := b.cfg.Target.Publish(ctx, b.cfg.TargetTopic, &out); err != nil {
		b.failed.Add(1)
		err = fmt.Errorf("bridge %q: target topic %q: %w", b.cfg.Name, b.cfg.TargetTopic, err)
		if refused(err) {
			return crossbus.Permanent(err) // the same event will be refused again
		}
		return err
	}
	b.forwarded.Add(1)
	return nil
}

// refused reports a target error about the event itself, which no retry
// can fix.
func refused(err error) bool {
	return errors.Is(err, crossbus.ErrTooLarge) || errors.Is(err, crossbus.ErrInvalidEvent)
}
