package ratelimit

import (
	"testing"
	"time"
)

func TestAllowCountsPerKeyAndWindow(t *testing.T) {
	lim := New()
	l := Limit{N: 3, Per: time.Hour}
	for i := range 3 {
		if ok, _ := lim.Allow("a", l); !ok {
			t.Fatalf("event %d of 3 refused", i+1)
		}
	}
	ok, after := lim.Allow("a", l)
	if ok || after <= 0 || after > time.Hour {
		t.Fatalf("4th event: ok=%v retry after %v; want refused with 0 < retry <= 1h", ok, after)
	}
	if ok, _ := lim.Allow("b", l); !ok {
		t.Fatal("another key shares the first key's count")
	}
	if blocked, _ := lim.Blocked("a", 3); !blocked {
		t.Fatal("Blocked does not see a used-up window")
	}
	if blocked, _ := lim.Blocked("b", 3); blocked {
		t.Fatal("Blocked reports a key with room left")
	}
}

func TestWindowEndsAndExpires(t *testing.T) {
	lim := New()
	l := Limit{N: 1, Per: 20 * time.Millisecond}
	lim.Allow("a", l)
	if ok, _ := lim.Allow("a", l); ok {
		t.Fatal("second event in the window allowed")
	}
	time.Sleep(30 * time.Millisecond)
	if ok, _ := lim.Allow("a", l); !ok {
		t.Fatal("event after the window ended refused")
	}
	lim.Expire(time.Now().Add(time.Second))
	if n := lim.Len(); n != 0 {
		t.Fatalf("%d windows left after they all ended", n)
	}
}

func TestAllowNChargesEachEvent(t *testing.T) {
	lim := New()
	l := Limit{N: 10, Per: time.Hour}
	if ok, _ := lim.AllowN("a", 7, l); !ok {
		t.Fatal("7 of 10 refused")
	}
	if ok, after := lim.AllowN("a", 4, l); ok || after <= 0 {
		t.Fatalf("7+4 of 10: ok=%v after=%v, want refused", ok, after)
	}
	// The refused batch used up nothing: 3 more still fit, then no more.
	if ok, _ := lim.AllowN("a", 3, l); !ok {
		t.Fatal("7+3 of 10 refused after a refused batch")
	}
	if ok, _ := lim.Allow("a", l); ok {
		t.Fatal("11th event allowed")
	}
}
