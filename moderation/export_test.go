package moderation

// SetServePageBytes sets the byte bound of served exchange pages for a
// test and returns a function that restores it.
func SetServePageBytes(n int) (restore func()) {
	old := servePageBytes
	servePageBytes = n
	return func() { servePageBytes = old }
}

// VideoEntryForms counts the service's indexed TMK entries held in full
// (their level-2 vectors or their list value in memory) and in the compact
// form.
func VideoEntryForms(s *Service) (full, compact int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.videos {
		if v.tmk == nil {
			continue
		}
		if v.tmk.level1.Cos != nil || v.tmk.level1.Sin != nil || v.entry.Value != "" {
			full++
		} else {
			compact++
		}
	}
	return full, compact
}
