package index

import (
	"syscall"
	"unsafe"
)

// adviseHugePages asks Linux to back a large array with transparent huge
// pages when the system allows it (transparent_hugepage=madvise). Lookups
// touch the hash and posting arrays at random, and with 4 KiB pages nearly
// every candidate also misses the TLB. It is only advice: errors are
// ignored and the memory behaves the same either way.
func adviseHugePages[T any](s []T) {
	const min = 4 << 20
	var zero T
	n := uintptr(cap(s)) * unsafe.Sizeof(zero)
	if n < min {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:cap(s)]))), n)
	_ = syscall.Madvise(b, 14 /* MADV_HUGEPAGE */)
}
