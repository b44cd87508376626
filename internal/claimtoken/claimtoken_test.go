package claimtoken_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/crossbus/crossbus/internal/claimtoken"
)

func TestNew(t *testing.T) {
	a, b := claimtoken.New(), claimtoken.New()
	assert.Len(t, a, 32)
	assert.NotEqual(t, a, b)
}

func TestInTx(t *testing.T) {
	var s claimtoken.InTx
	assert.False(t, s.Running("k", "t1"))
	s.Enter("k", "t1")
	assert.True(t, s.Running("k", "t1"))
	assert.False(t, s.Running("k", "t2"), "another token of the key is not the handler's")
	s.Enter("k", "t2")
	s.Leave("k", "t1")
	assert.True(t, s.Running("k", "t2"), "leaving with an old token keeps the new one")
	s.Leave("k", "t2")
	assert.False(t, s.Running("k", "t2"))
}
