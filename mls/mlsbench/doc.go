// Package mlsbench holds benchmarks of package mls through its exported API
// only, with the primitive operations they are compared against measured
// in the same run, so that the ratios hold on any machine. It has no
// non-test code. Run:
//
//	go test ./mls/mlsbench -run '^$' -bench . -benchtime 20x
//
// docs/mls.md records the figures and the targets they are held to.
package mlsbench
