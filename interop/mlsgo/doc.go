// Package mlsgo tests Parley's MLS implementation (module
// github.com/parleychat/parley, package mls) against an independent one,
// github.com/thomas-vilte/mls-go, and benchmarks the two side by side.
//
// It is a separate Go module so that the product never depends on the other
// implementation; scripts/test runs it with `cd interop/mlsgo && go test ./...`.
// Everything is in the tests: both implementations sit behind the client
// interface, and each scenario runs with either one creating the group.
package mlsgo
