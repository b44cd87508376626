package sequence_test

import (
	"testing"

	"github.com/crossbus/crossbus/sequence"
	"github.com/crossbus/crossbus/stores/storetest"
)

func TestMemorySequenceStore(t *testing.T) {
	storetest.TestSequenceStore(t, func(t *testing.T) sequence.Store { return sequence.NewMemoryStore() })
}
