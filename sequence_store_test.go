package crossbus_test

import (
	"testing"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/stores/storetest"
)

func TestMemorySequenceStore(t *testing.T) {
	storetest.TestSequenceStore(t, func(t *testing.T) crossbus.SequenceStore { return crossbus.NewMemorySequenceStore() })
}
