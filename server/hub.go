package server

import "sync"

// hub tracks which devices are online, for pushes.
type hub struct {
	mu sync.RWMutex
	m  map[string]map[*conn]struct{}
}

func newHub() *hub { return &hub{m: make(map[string]map[*conn]struct{})} }

func (h *hub) add(device string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m[device] == nil {
		h.m[device] = make(map[*conn]struct{})
	}
	h.m[device][c] = struct{}{}
}

func (h *hub) remove(device string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m[device], c)
	if len(h.m[device]) == 0 {
		delete(h.m, device)
	}
}

func (h *hub) conns(device string) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*conn, 0, len(h.m[device]))
	for c := range h.m[device] {
		out = append(out, c)
	}
	return out
}
