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

// Decide applies Store.Verdict's rule. With voters, a removal takes
// effect only once every voter accepted it (one refusal keeps the device
// a member) and an addition is undone only once every voter refused it
// (one acceptance keeps it): a lone lying voter can neither cut a member
// off nor undo an addition. With none, the device's own verdict decides.
func (p PendingChange) Decide() Decision {
	if p.Voters > 0 {
		switch {
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
