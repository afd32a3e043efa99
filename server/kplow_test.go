package server

import (
	"testing"
	"time"
)

// A device is told once that its key packages of a suite run low, until
// it uploads more; and, since an upload through another node does not
// reach this one, again after kpLowRetell at the earliest.
func TestKeyPackagesLowToldOnce(t *testing.T) {
	k := kpLowNotices{told: make(map[kpLowKey]time.Time)}
	now := time.Unix(1_765_000_000, 0)
	if !k.first("d", 1, now) {
		t.Fatal("the first notice was not told")
	}
	if k.first("d", 1, now.Add(kpLowRetell-time.Second)) {
		t.Fatal("told again within kpLowRetell")
	}
	if !k.first("d", 2, now) {
		t.Fatal("another suite is news")
	}
	k.uploaded("d", 1)
	if !k.first("d", 1, now.Add(time.Minute)) {
		t.Fatal("not told after an upload")
	}
	if !k.first("d", 1, now.Add(time.Minute+kpLowRetell)) {
		t.Fatal("not told again after kpLowRetell")
	}
	k.expire(now.Add(time.Minute + 2*kpLowRetell))
	if len(k.told) != 0 {
		t.Fatalf("%d notices kept past kpLowRetell", len(k.told))
	}
}
