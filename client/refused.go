package client

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
)

// noteRefused handles a refused notice from the inbox (an entry of kind
// transport.KindRefused): the members' verdicts undid this device's
// addition by the commit the entry names (docs/protocol.md §14,
// "Verdicts"). This happens to a device added by a member that was no
// admin but wrote itself into the admin list in the same commit: the
// device could not tell when it joined (checkJoin sees only the state
// after the commit), every other member refused the commit, and the
// device shares its copy of the group with the committer alone. The
// conversation is marked refused (and removed: the server no longer
// delivers it) and a security alert is raised.
//
// The notice is from the server and not signed by the members, so it is
// trusted only to stop: it applies only to the group this device joined
// by that very commit and is still in, and all it can do is make this
// device stop using that group, which a server can do anyway by no
// longer delivering it. A notice for anything else is ignored.
func (c *Client) noteRefused(m transport.Message) error {
	var r *convRecord
	err := c.store.Update(func(tx *profile.Tx) error {
		got, err := getConv(tx, m.ConversationID)
		if errors.Is(err, profile.ErrNotFound) {
			return nil // never joined (its Welcome refused or unusable)
		}
		if err != nil {
			return err
		}
		if got.Removed || got.Kind == ConvSelf || !bytes.Equal(got.JoinedBy, m.ID) {
			return nil // stale or not ours: added again since, or left
		}
		got.Refused, got.Removed = true, true
		r = got
		return putConv(tx, r)
	})
	if err != nil || r == nil {
		return err
	}
	c.warn(r, m.ID, refusedError(r))
	return nil
}

// refusedError says what happened to a refused group and what to do.
func refusedError(r *convRecord) error {
	by := r.AddedBy
	if by == "" {
		by = "the member who added you"
	}
	// The notice is the server's word: the text reports it rather than
	// accusing the committer as a fact (a lying server could send it).
	return fmt.Errorf("%w: %s: the server reports that the other members refused the commit in which %s added this device "+
		"(as when someone who is not an admin adds people by claiming to be one), so this device has only a copy of the group "+
		"shared with %s, and nothing you send there reaches the others; sending to it is refused. Ask an admin of the group to add you",
		ErrRefusedByMembers, r.label(), by, by)
}
