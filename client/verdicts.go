package client

import (
	"context"
	"encoding/hex"
	"errors"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
)

// bucketVerdicts: hex(conversation id) → []transport.Verdict not yet
// given to the server. A verdict is stored in the transaction that
// processed its commit (or Welcome), and given with the next
// acknowledgement of the conversation: the server keeps a commit's
// changes to other accounts' devices pending until the members' verdicts
// decide them (docs/protocol.md §14, "Verdicts"), so that a commit every
// member refuses cannot cut anyone off the group's delivery.
const bucketVerdicts = "verdict"

// maxVerdictsPerAck is the server's bound on one AckRequest's verdicts.
const maxVerdictsPerAck = 1000

// noteVerdict queues this device's verdict on the commit id of the
// conversation.
func noteVerdict(tx *profile.Tx, conv, commitID []byte, refuse bool) error {
	if len(commitID) != wire.MessageIDSize {
		return nil // the server would refuse it; there is nothing to judge
	}
	var vs []transport.Verdict
	if err := tx.GetJSON(bucketVerdicts, hexID(conv), &vs); err != nil && !errors.Is(err, profile.ErrNotFound) {
		return err
	}
	if len(vs) >= maxVerdictsPerAck {
		vs = vs[1:] // the oldest was long decided by others
	}
	vs = append(vs, transport.Verdict{CommitID: commitID, Refuse: refuse})
	return tx.PutJSON(bucketVerdicts, hexID(conv), vs)
}

// queuedVerdicts returns the verdicts waiting for the conversation.
func (c *Client) queuedVerdicts(conv []byte) ([]transport.Verdict, error) {
	var vs []transport.Verdict
	err := c.store.Update(func(tx *profile.Tx) error {
		err := tx.GetJSON(bucketVerdicts, hexID(conv), &vs)
		if errors.Is(err, profile.ErrNotFound) {
			return nil
		}
		return err
	})
	return vs, err
}

// clearVerdicts forgets the verdicts given (those queued since stay).
func (c *Client) clearVerdicts(conv []byte, given int) error {
	if given == 0 {
		return nil
	}
	return c.store.Update(func(tx *profile.Tx) error {
		var vs []transport.Verdict
		err := tx.GetJSON(bucketVerdicts, hexID(conv), &vs)
		if errors.Is(err, profile.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if given >= len(vs) {
			return tx.Delete(bucketVerdicts, hexID(conv))
		}
		return tx.PutJSON(bucketVerdicts, hexID(conv), vs[given:])
	})
}

// ackWithVerdicts acknowledges the conversation up to seq (0: none) with
// the verdicts queued for it.
func (c *Client) ackWithVerdicts(ctx context.Context, conn *transport.Conn, conv []byte, seq uint64) error {
	vs, err := c.queuedVerdicts(conv)
	if err != nil {
		return err
	}
	if seq == 0 && len(vs) == 0 {
		return nil
	}
	if err := conn.Ack(ctx, conv, seq, vs...); err != nil {
		if seq == 0 && (errors.Is(err, wire.ErrNotMember) || errors.Is(err, wire.ErrNotFound)) {
			// No longer a member (the members' verdicts undid this
			// device's addition): nothing left to judge.
			return c.clearVerdicts(conv, len(vs))
		}
		return err
	}
	return c.clearVerdicts(conv, len(vs))
}

// flushVerdicts gives every queued verdict (those of conversations with
// nothing new to acknowledge: a refused or just joined Welcome).
// Failures only warn: the verdicts stay queued for the next sync.
func (c *Client) flushVerdicts(ctx context.Context, conn *transport.Conn) {
	var items []profile.Item
	if err := c.store.Update(func(tx *profile.Tx) (err error) { items, err = tx.List(bucketVerdicts); return err }); err != nil {
		return
	}
	for _, it := range items {
		conv, err := hex.DecodeString(it.Key)
		if err != nil {
			continue
		}
		if err := c.ackWithVerdicts(ctx, conn, conv, 0); err != nil {
			c.warn(nil, nil, err)
		}
	}
}
