package egtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Webhook is a webhook event subscription of a basic topic.
type Webhook struct {
	// Name is the event subscription's name (aeg-subscription-name).
	Name string
	// URL is the endpoint events are pushed to.
	URL string
	// Client sends the pushes (default http.DefaultClient).
	Client *http.Client
	// MaxEventsPerBatch is the most events one push carries (default 1,
	// Event Grid's default).
	MaxEventsPerBatch int
	// MaxDeliveryAttempts bounds the pushes of one batch (default 30).
	MaxDeliveryAttempts int
	// RetryDelay separates the pushes of a failed batch (default 10s, Event
	// Grid's first retry).
	RetryDelay time.Duration
	// Headers are static delivery properties, sent with every push (not with
	// the validation handshake).
	Headers map[string]string
}

// Push is one push of a batch to a webhook.
type Push struct {
	DeliveryCount int // the aeg-delivery-count header sent: 0 on the first push
	Status        int // the response status; 0 when the request failed
	Events        int
}

// SubscriptionValidationEventType is the type of Event Grid's validation event.
const SubscriptionValidationEventType = "Microsoft.EventGrid.SubscriptionValidationEvent"

// Origin is the WebHook-Request-Origin Event Grid sends.
const Origin = "eventgrid.azure.net"

type webhookSub struct {
	s      *Server
	schema Schema
	topic  string
	cfg    Webhook
	queue  []json.RawMessage // guarded by s.mu
	pushes []Push            // guarded by s.mu
	dead   []DeadLetter      // guarded by s.mu
	wake   chan struct{}
}

// AddWebhook subscribes a webhook to a basic topic: it runs Event Grid's
// validation handshake for the topic's schema (the CloudEvents OPTIONS
// abuse-protection request, or a SubscriptionValidationEvent whose code the
// endpoint must echo) and then pushes every event published from now on.
func (s *Server) AddWebhook(ctx context.Context, topic string, hook Webhook) error {
	if hook.Name == "" {
		hook.Name = "webhook"
	}
	if hook.Client == nil {
		hook.Client = http.DefaultClient
	}
	if hook.MaxEventsPerBatch <= 0 {
		hook.MaxEventsPerBatch = 1
	}
	if hook.MaxDeliveryAttempts <= 0 {
		hook.MaxDeliveryAttempts = 30
	}
	if hook.RetryDelay <= 0 {
		hook.RetryDelay = 10 * time.Second
	}
	s.mu.Lock()
	t := s.basic[topic]
	s.mu.Unlock()
	if t == nil {
		return fmt.Errorf("egtest: basic topic %q does not exist", topic)
	}
	h := &webhookSub{s: s, schema: t.schema, topic: topic, cfg: hook, wake: make(chan struct{}, 1)}
	if err := h.handshake(ctx); err != nil {
		return fmt.Errorf("egtest: webhook %q: validation handshake failed: %w", hook.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.hooks = append(t.hooks, h)
	s.wg.Add(1)
	go h.run()
	return nil
}

// WebhookPushes returns the pushes made to a webhook subscription.
func (s *Server) WebhookPushes(topic, name string) []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hook(topic, name); h != nil {
		return append([]Push(nil), h.pushes...)
	}
	return nil
}

// WebhookDeadLetters returns the events a webhook subscription gave up on.
func (s *Server) WebhookDeadLetters(topic, name string) []DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hook(topic, name); h != nil {
		return append([]DeadLetter(nil), h.dead...)
	}
	return nil
}

func (s *Server) hook(topic, name string) *webhookSub {
	if t := s.basic[topic]; t != nil {
		for _, h := range t.hooks {
			if h.cfg.Name == name {
				return h
			}
		}
	}
	return nil
}

func (h *webhookSub) handshake(ctx context.Context) error {
	if h.schema == CloudEventsSchema {
		req, err := http.NewRequestWithContext(ctx, http.MethodOptions, h.cfg.URL, nil)
		if err != nil {
			return err
		}
		req.Header.Set("WebHook-Request-Origin", Origin)
		resp, err := h.cfg.Client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		allowed := resp.Header.Get("WebHook-Allowed-Origin")
		if resp.StatusCode != http.StatusOK || (allowed != Origin && allowed != "*") {
			return fmt.Errorf("OPTIONS answered %d with WebHook-Allowed-Origin %q", resp.StatusCode, allowed)
		}
		return nil
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	code := hex.EncodeToString(b[:])
	ev := map[string]any{
		"id": "validation-" + code[:8], "topic": resourceID(h.topic), "subject": "",
		"data":      map[string]string{"validationCode": code, "validationUrl": "https://egtest.invalid/validate?code=" + code},
		"eventType": SubscriptionValidationEventType, "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"metadataVersion": "1", "dataVersion": "2",
	}
	body, _ := json.Marshal([]any{ev})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("aeg-event-type", "SubscriptionValidation")
	req.Header.Set("aeg-subscription-name", h.cfg.Name)
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		ValidationResponse string `json:"validationResponse"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("validation event answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ValidationResponse != code {
		return fmt.Errorf("validation event answered without the validation code")
	}
	return nil
}

// enqueue adds published events. Call with s.mu held.
func (h *webhookSub) enqueue(evs []json.RawMessage) {
	h.queue = append(h.queue, evs...)
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *webhookSub) run() {
	defer h.s.wg.Done()
	for {
		h.s.mu.Lock()
		n := min(len(h.queue), h.cfg.MaxEventsPerBatch)
		batch := append([]json.RawMessage(nil), h.queue[:n]...)
		h.queue = h.queue[n:]
		h.s.mu.Unlock()
		if n == 0 {
			select {
			case <-h.wake:
				continue
			case <-h.s.done:
				return
			}
		}
		if !h.deliver(batch) {
			return
		}
	}
}

// deliver pushes a batch until it succeeds, fails for good, or runs out of
// attempts; it returns false when the server closes.
func (h *webhookSub) deliver(batch []json.RawMessage) bool {
	for count := 0; ; count++ {
		status := h.push(batch, count)
		h.s.mu.Lock()
		h.pushes = append(h.pushes, Push{DeliveryCount: count, Status: status, Events: len(batch)})
		reason := ""
		switch {
		case status >= 200 && status <= 204:
			h.s.mu.Unlock()
			return true
		case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge,
			status == http.StatusUnauthorized, status == http.StatusForbidden:
			reason = http.StatusText(status)
		case count+1 >= h.cfg.MaxDeliveryAttempts:
			reason = "MaxDeliveryAttemptsExceeded"
		}
		if reason != "" {
			for _, ev := range batch {
				h.dead = append(h.dead, DeadLetter{Event: ev, Reason: reason, DeliveryCount: count + 1, Time: time.Now()})
			}
			h.s.mu.Unlock()
			return true
		}
		h.s.mu.Unlock()
		select {
		case <-time.After(h.cfg.RetryDelay):
		case <-h.s.done:
			return false
		}
	}
}

// push makes one POST and returns its status (0 on a transport error).
func (h *webhookSub) push(batch []json.RawMessage, count int) int {
	var body []byte
	ct := "application/json"
	switch {
	case h.schema == EventGridSchema:
		body, _ = json.Marshal(batch)
	case len(batch) == 1 && h.cfg.MaxEventsPerBatch == 1:
		body, ct = batch[0], "application/cloudevents+json; charset=utf-8"
	default:
		body, _ = json.Marshal(batch)
		ct = "application/cloudevents-batch+json; charset=utf-8"
	}
	ctx, cancel := context.WithTimeout(h.s.ctx, 30*time.Second) // Event Grid waits 30 s
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-subscription-name", h.cfg.Name)
	req.Header.Set("aeg-delivery-count", strconv.Itoa(count))
	req.Header.Set("aeg-metadata-version", "1")
	if h.schema == CloudEventsSchema {
		req.Header.Set("WebHook-Request-Origin", Origin)
	}
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
