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

// clock is a test clock that moves only when told.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestWindowEndsAndExpires(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	lim := NewWithClock(c.now)
	l := Limit{N: 1, Per: 20 * time.Millisecond}
	lim.Allow("a", l)
	c.t = c.t.Add(19 * time.Millisecond)
	ok, after := lim.Allow("a", l)
	if ok || after != time.Millisecond {
		t.Fatalf("second event 19ms into a 20ms window: ok=%v retry after %v, want refused, retry after 1ms", ok, after)
	}
	if blocked, after := lim.Blocked("a", 1); !blocked || after != time.Millisecond {
		t.Fatalf("Blocked 19ms into the window: %v, %v; want true, 1ms", blocked, after)
	}
	c.t = c.t.Add(time.Millisecond)
	if blocked, _ := lim.Blocked("a", 1); blocked {
		t.Fatal("Blocked after the window ended")
	}
	if ok, _ := lim.Allow("a", l); !ok {
		t.Fatal("event just after the window ended refused")
	}
	lim.Expire(c.t.Add(19 * time.Millisecond))
	if n := lim.Len(); n != 1 {
		t.Fatalf("%d windows left before the new one ended, want 1", n)
	}
	lim.Expire(c.t.Add(20 * time.Millisecond))
	if n := lim.Len(); n != 0 {
		t.Fatalf("%d windows left after they all ended", n)
	}
}

// Allow itself drops ended windows once a minute, so that keys seen once
// do not stay in memory.
func TestAllowSweeps(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	lim := NewWithClock(c.now)
	for _, k := range []string{"a", "b", "c"} {
		lim.Allow(k, Limit{N: 1, Per: time.Second})
	}
	c.t = c.t.Add(sweepEvery - time.Millisecond)
	lim.Allow("d", Limit{N: 1, Per: time.Hour})
	if n := lim.Len(); n != 4 {
		t.Fatalf("%d windows before the sweep, want 4", n)
	}
	c.t = c.t.Add(time.Millisecond)
	lim.Allow("d", Limit{N: 1, Per: time.Hour})
	if n := lim.Len(); n != 1 {
		t.Fatalf("%d windows after the sweep, want 1 (d's)", n)
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
