package store

import "testing"

// TestDecide: the rule every backend applies (Store.Verdict). The cases
// with a lying voter are the point: one voter alone can neither make a
// removal take effect nor undo an addition.
func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name string
		p    PendingChange
		want Decision
	}{
		{"removal, no verdict yet", PendingChange{Removed: true, Voters: 2}, KeepPending},
		{"removal, one of two accepted", PendingChange{Removed: true, Voters: 2, Accepted: 1}, KeepPending},
		{"removal, every voter accepted", PendingChange{Removed: true, Voters: 2, Accepted: 2}, ApplyRemoval},
		{"removal, one refusal among acceptances", PendingChange{Removed: true, Voters: 3, Accepted: 2, Refused: 1}, DropRemoval},
		{"removal, the first refusal, others still to answer", PendingChange{Removed: true, Voters: 3, Refused: 1}, DropRemoval},
		{"removal, every voter refused", PendingChange{Removed: true, Voters: 2, Refused: 2}, DropRemoval},
		{"removal, the removed device's own acceptance while others have a say", PendingChange{Removed: true, Own: 1, Voters: 1}, KeepPending},
		{"removal without voters, accepted by the device", PendingChange{Removed: true, Own: 1}, ApplyRemoval},
		{"removal without voters, refused by the device", PendingChange{Removed: true, Own: 2}, DropRemoval},
		{"removal without voters, no verdict", PendingChange{Removed: true}, KeepPending},
		{"addition, one acceptance", PendingChange{Voters: 3, Accepted: 1, Refused: 2}, KeepAddition},
		{"addition, one of two refused", PendingChange{Voters: 2, Refused: 1}, KeepPending},
		{"addition, every voter refused", PendingChange{Voters: 2, Refused: 2}, UndoAddition},
		{"addition, the joiner's refusal while others have a say", PendingChange{Own: 2, Voters: 1}, KeepPending},
		{"addition without voters, refused by the joiner", PendingChange{Own: 2}, UndoAddition},
		{"addition without voters, accepted by the joiner", PendingChange{Own: 1}, KeepAddition},
	} {
		if got := c.p.Decide(); got != c.want {
			t.Errorf("%s: %+v decides %d, want %d", c.name, c.p, got, c.want)
		}
	}
}

// TestExpire: settled without its verdicts (over MaxPendingRemovals, or
// past retention), a change leaves the device a member.
func TestExpire(t *testing.T) {
	if got := (PendingChange{Removed: true, Voters: 3, Accepted: 2}).Expire(); got != DropRemoval {
		t.Errorf("a removal expires as %d, want DropRemoval", got)
	}
	if got := (PendingChange{Voters: 3, Refused: 2}).Expire(); got != KeepAddition {
		t.Errorf("an addition expires as %d, want KeepAddition", got)
	}
	for _, c := range []struct{ n, want int }{{0, 0}, {MaxPendingRemovals, 0}, {MaxPendingRemovals + 1, 1}, {3 * MaxPendingRemovals, 2 * MaxPendingRemovals}} {
		if got := RemovalsOverCap(c.n); got != c.want {
			t.Errorf("RemovalsOverCap(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}
