package claimtoken

import "sync"

// InTx is the set of claims whose handler an inbox store's CompleteInTx is
// running, by key and token, so that the store's Renew can tell that the
// claim is held by the handler's own transaction. The zero value is empty.
type InTx struct {
	mu   sync.Mutex
	keys map[string]string // key -> token
}

// Enter records that CompleteInTx runs the handler of key's claim token.
func (s *InTx) Enter(key, token string) {
	s.mu.Lock()
	if s.keys == nil {
		s.keys = make(map[string]string)
	}
	s.keys[key] = token
	s.mu.Unlock()
}

// Leave forgets what Enter recorded (nothing when key was entered again
// with another token since).
func (s *InTx) Leave(key, token string) {
	s.mu.Lock()
	if s.keys[key] == token {
		delete(s.keys, key)
	}
	s.mu.Unlock()
}

// Running reports whether CompleteInTx runs the handler of key's claim
// token.
func (s *InTx) Running(key, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.keys[key]
	return ok && t == token
}
