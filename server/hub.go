package server

import (
	"slices"
	"sync"
)

// hub tracks which devices are online, for pushes.
//
// Every message looks up its recipients' connections, and devices
// connect and disconnect far less often, so each device's list is
// copied on change and handed out as it is: conns allocates nothing.
type hub struct {
	mu sync.RWMutex
	m  map[string][]*conn
}

func newHub() *hub { return &hub{m: make(map[string][]*conn)} }

func (h *hub) add(device string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.m[device]
	if slices.Contains(old, c) {
		return
	}
	h.m[device] = append(slices.Clip(old), c) // Clip: never writes into a list handed out
}

func (h *hub) remove(device string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.m[device]
	i := slices.Index(old, c)
	if i < 0 {
		return
	}
	if len(old) == 1 {
		delete(h.m, device)
		return
	}
	h.m[device] = slices.Concat(old[:i], old[i+1:])
}

// devices returns the devices with connections, in no order.
func (h *hub) devices() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(h.m))
	for d := range h.m {
		out = append(out, d)
	}
	return out
}

// conns returns device's connections. The slice is shared: callers
// only read it.
func (h *hub) conns(device string) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.m[device]
}
