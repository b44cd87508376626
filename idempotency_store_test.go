package crossbus_test

import (
	"testing"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/stores/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.TestIdempotencyStore(t, func(t *testing.T) crossbus.IdempotencyStore { return crossbus.NewMemoryIdempotencyStore(0) })
}
