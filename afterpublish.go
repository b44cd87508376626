package crossbus

import "context"

// WithAfterPublish calls hook after every Publish on the bus with the events
// the provider accepted (never the refused or failed ones), in order, before
// Publish returns. Hooks run one after another in the publishing goroutine,
// so they add to Publish's latency; they must not modify or keep the events
// (clone what they keep) and cannot fail the publish. The ops package's
// archive is such a hook.
func WithAfterPublish(hook func(ctx context.Context, topic string, events []*Event)) BusOption {
	return func(b *Bus) error {
		if hook == nil {
			return errNilOption("WithAfterPublish")
		}
		b.afterPublish = append(b.afterPublish, hook)
		return nil
	}
}

// published runs the after-publish hooks with the events of send that did
// not fail (index maps send to positions in the caller's slice; nil is the
// identity; failed holds those positions).
func (b *Bus) published(ctx context.Context, topic string, send []*Event, index []int, failed []EventError) {
	if len(b.afterPublish) == 0 || len(send) == 0 {
		return
	}
	ok := send
	if len(failed) > 0 {
		bad := make(map[int]bool, len(failed))
		for _, f := range failed {
			bad[f.Index] = true
		}
		ok = make([]*Event, 0, len(send))
		for i, e := range send {
			pos := i
			if index != nil {
				pos = index[i]
			}
			if !bad[pos] {
				ok = append(ok, e)
			}
		}
		if len(ok) == 0 {
			return
		}
	}
	for _, h := range b.afterPublish {
		h(ctx, topic, ok)
	}
}
