package kafka

import "github.com/crossbus/crossbus/internal/cewire"

// sources caches parsed event sources for the decoders (bounded; emptied
// when full).
var sources = cewire.NewSourceCache(4096)
