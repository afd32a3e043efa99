//go:build js && wasm

package main

import (
	"runtime"
	"syscall/js"
)

// exportStats adds memoryStats() → {"sys", "heap_alloc"}: the Go
// runtime's view of the module's memory (Sys is what it took from the
// WebAssembly linear memory, which never shrinks; HeapAlloc what is live
// now). The page's JS heap is the browser's to report (the DevTools
// protocol's Performance.getMetrics); the benchmarks add the two
// (docs/benchmarks.md). Nothing about keys or messages is in it.
func exportStats(export func(name string, fn func(args []js.Value) (any, error))) {
	export("memoryStats", func([]js.Value) (any, error) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return jsonText(map[string]uint64{"sys": m.Sys, "heap_alloc": m.HeapAlloc})
	})
}
