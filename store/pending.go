package store

// PendingChange is one pending addition or removal of a device by a
// commit, with the verdicts given on it so far: what backends read to
// decide it (Decide). It is the one place the rule of Store.Verdict is
// written, so that every backend decides alike.
type PendingChange struct {
	Removed bool
	// Own is the changed device's own verdict: 0 none, 1 accept, 2 refuse.
	Own uint8
	// Voters, Accepted and Refused count the commit's voters and their
	// verdicts.
	Voters, Accepted, Refused int
}

// Decision is what a pending change comes to.
type Decision uint8

const (
	KeepPending  Decision = iota // not decided yet
	ApplyRemoval                 // the device is removed, as of the commit
	DropRemoval                  // the removal is refused: the device stays
	KeepAddition                 // the addition is accepted
	UndoAddition                 // the addition is refused: the device goes
)

// MaxPendingRemovals bounds the pending removals a conversation holds.
// A commit that would take a conversation over it settles its oldest
// pending removals (in log order) without waiting: each is decided
// Expire's way, the device stays. Pending additions need no such bound:
// a device has at most one in a conversation, and it is a member while
// it waits, so they are bounded by the group's member limit. With
// Decide's rule that one refusal drops a removal, the bound is reached
// only while no voter answers (every honest voter refuses a hostile
// member's removals at its next sync), so what it costs is that an
// admin's legitimate removal waiting for absent voters may be dropped by
// a flood of later ones: the device stays on the delivery list, which
// cuts no one off.
const MaxPendingRemovals = 64

// Decide applies Store.Verdict's rule. With voters, a removal takes
// effect only once every voter accepted it, and is dropped (the device
// stays) at the first refusal: it can never take effect after one, so
// nothing of it is kept to wait for the others. An addition is undone
// only once every voter refused it, and kept at the first acceptance: a
// lone lying voter can neither cut a member off nor undo an addition.
// With no voters, the device's own verdict decides.
func (p PendingChange) Decide() Decision {
	if p.Voters > 0 {
		switch {
		case p.Removed && p.Refused > 0:
			return DropRemoval
		case p.Removed && p.Accepted == p.Voters:
			return ApplyRemoval
		case !p.Removed && p.Accepted > 0:
			return KeepAddition
		case !p.Removed && p.Refused == p.Voters:
			return UndoAddition
		}
		return KeepPending
	}
	switch {
	case p.Own == 1 && p.Removed:
		return ApplyRemoval
	case p.Own == 2 && p.Removed:
		return DropRemoval
	case p.Own == 1:
		return KeepAddition
	case p.Own == 2:
		return UndoAddition
	}
	return KeepPending
}

// Expire is what a pending change comes to when it must be settled
// without the verdicts it waits for: past MaxPendingRemovals, or past
// the server's retention (Store.DeleteExpired). The safe outcome, which
// cuts no one off: a removal is dropped and an addition kept, the device
// stays a member either way.
func (p PendingChange) Expire() Decision {
	if p.Removed {
		return DropRemoval
	}
	return KeepAddition
}

// RemovalsOverCap is how many of a conversation's oldest pending
// removals must be settled with Expire when it holds n of them.
func RemovalsOverCap(n int) int { return max(0, n-MaxPendingRemovals) }
