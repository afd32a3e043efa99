package channels_test

import "runtime"

// runtimeMem records the heap high-water mark the runtime reports.
type runtimeMem struct{ sys uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.sys = s.HeapSys
}

func (m *runtimeMem) peak() int64 { return int64(m.sys) }
