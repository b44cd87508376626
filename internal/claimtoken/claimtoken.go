// Package claimtoken makes the random tokens the stores' claims and leases
// are held by, and keeps the claims an inbox store's CompleteInTx is
// running (InTx).
package claimtoken

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a random 128-bit token as 32 hexadecimal characters.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
