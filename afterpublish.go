package crossbus

import (
	"context"

	"github.com/crossbus/crossbus/internal/publishhook"
)

// After-publish hooks (internal/publishhook) see what a bus published: the
// ops package's archive installs one with its BusOption.
func init() {
	publishhook.Install = func(bus any, h publishhook.Hook) error {
		b, ok := bus.(*Bus)
		if !ok || b == nil || h == nil {
			return errorf("%w: an after-publish hook needs a bus and a hook", ErrInvalidOption)
		}
		b.afterPublish = append(b.afterPublish, h)
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
