package chain_test

import (
	"testing"

	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/stores/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.TestChainStore(t, func(t *testing.T) chain.Store { return chain.NewMemoryStore() })
}
