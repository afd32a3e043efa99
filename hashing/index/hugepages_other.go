//go:build !linux

package index

func adviseHugePages[T any](s []T) {}
