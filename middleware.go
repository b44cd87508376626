package crossbus

import (
	"context"
	"log/slog"
	"time"
)

// timeout bounds each attempt of the handlers it wraps (WithTimeout). The
// deadline applies to a derived context; the delivery's own context is
// untouched, so retries get a fresh deadline.
func timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, e *Event) error {
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next.Handle(tctx, e)
			if err == nil && tctx.Err() != nil && ctx.Err() == nil {
				// Finished after the deadline without noticing it: accept.
				return nil
			}
			if err != nil && tctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
				return errorf("handler exceeded its timeout of %v: %w", d, err)
			}
			return err
		})
	}
}

// Logging returns middleware that logs each handling with structured
// attributes: event id, type, source, subscription, attempt, outcome and
// duration. Event data is never logged. A nil logger is refused.
func Logging(l *slog.Logger) (Middleware, error) {
	if l == nil {
		return nil, errNilOption("Logging")
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, e *Event) error {
			start := time.Now()
			err := next.Handle(ctx, e)
			attrs := []slog.Attr{
				slog.String("eventID", e.ID()), slog.String("eventType", e.Type()), slog.String("source", e.Source()),
				slog.Duration("duration", time.Since(start)),
			}
			if info, ok := DeliveryInfoFrom(ctx); ok {
				attrs = append(attrs, slog.String("subscription", info.Subscription), slog.Int("attempt", info.Attempt))
			}
			if err != nil {
				outcome := "error"
				if IsPermanent(err) {
					outcome = "permanent error"
				}
				attrs = append(attrs, slog.String("outcome", outcome), slog.String("error", err.Error()))
				l.LogAttrs(ctx, slog.LevelWarn, "crossbus: event handled", attrs...)
				return err
			}
			attrs = append(attrs, slog.String("outcome", "ok"))
			l.LogAttrs(ctx, slog.LevelInfo, "crossbus: event handled", attrs...)
			return nil
		})
	}, nil
}
