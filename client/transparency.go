package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/devicelist"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/parleychat/parley/transparency/directory"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Key transparency (docs/transparency.md). Every device list this client
// trusts comes from the server's directory with proofs: the list is the
// one the directory committed to at an epoch whose checkpoint extends
// every checkpoint this client has accepted, so the server cannot show
// this client a list it does not show everyone, including the account's
// own devices, which check every version of their own account
// (monitorOwn).

// bucketKT holds the directory's keys (pinned at first use), the latest
// checkpoint accepted, and the own account's last verified leaf.
const bucketKT = "kt"

// ErrDirectory wraps every failed check of the directory's answers: a
// proof that does not verify, a fork or rollback of its log, a frozen
// view, or a version of this account it did not sign. All are security
// alerts.
var ErrDirectory = errors.New("client: the key transparency directory's answer does not check out")

type ktKeys struct {
	Origin    string   `json:"origin"`
	NoteKey   string   `json:"note_key"`
	VRFKey    []byte   `json:"vrf_key"`
	Witnesses []string `json:"witnesses,omitempty"`
}

// ktOwn is the own account's label as last verified.
type ktOwn struct {
	Leaf  []byte `json:"leaf"`
	Epoch uint64 `json:"epoch"`
	// Checked is when the history was last checked.
	Checked time.Time `json:"checked"`
}

const defaultKTMonitorEvery = 4 * time.Hour

type ktState struct {
	keys directory.Keys
	v    *log.Verifier
	note []byte // Latest().Note as last persisted
}

const defaultKTMaxAge = 24 * time.Hour

// ktVerifier returns the client's directory state, loading it from the
// profile, or pinning the server's directory keys the first time.
func (c *Client) ktVerifier(ctx context.Context, conn *transport.Conn) (*ktState, error) {
	if c.kt != nil {
		return c.kt, nil
	}
	var k ktKeys
	var trusted []byte
	err := c.store.Update(func(tx *profile.Tx) error {
		if err := tx.GetJSON(bucketKT, "keys", &k); err != nil {
			return err
		}
		b, err := tx.Get(bucketKT, "checkpoint")
		if err == nil {
			trusted = b
		} else if !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		return nil
	})
	if errors.Is(err, profile.ErrNotFound) {
		r, err := conn.KTKeys(ctx)
		if err != nil {
			return nil, err
		}
		k = ktKeys{Origin: r.Origin, NoteKey: r.NoteKey, VRFKey: r.VrfKey, Witnesses: r.Witnesses}
		if err := c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketKT, "keys", k) }); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	keys, err := c.directoryKeys(k)
	if err != nil {
		return nil, err
	}
	v, err := log.NewVerifier(keys.Policy, trusted)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored checkpoint: %w", ErrDirectory, err)
	}
	c.kt = &ktState{keys: keys, v: v, note: trusted}
	return c.kt, nil
}

func (c *Client) directoryKeys(k ktKeys) (directory.Keys, error) {
	lv, err := note.NewVerifier(k.NoteKey)
	if err != nil {
		return directory.Keys{}, fmt.Errorf("%w: the directory's note key: %w", ErrDirectory, err)
	}
	vk, err := vrf.ParsePublicKey(k.VRFKey)
	if err != nil {
		return directory.Keys{}, fmt.Errorf("%w: the directory's VRF key: %w", ErrDirectory, err)
	}
	policy := log.Policy{Origin: k.Origin, Log: lv}
	seen := map[string]bool{}
	for _, w := range append(append([]string(nil), k.Witnesses...), c.opts.KTWitnesses...) {
		if seen[w] {
			continue
		}
		seen[w] = true
		wv, err := note.NewVerifier(w)
		if err != nil {
			return directory.Keys{}, fmt.Errorf("key transparency auditor key %q: %w", w, err)
		}
		policy.Witnesses = append(policy.Witnesses, wv)
	}
	policy.Quorum = len(policy.Witnesses)
	maxAge := c.opts.KTMaxAge
	if maxAge == 0 {
		maxAge = defaultKTMaxAge
	}
	return directory.Keys{Policy: policy, VRF: vk, MaxAhead: 10 * time.Minute, MaxBehind: maxAge}, nil
}

// saveCheckpoint persists the verifier's latest checkpoint if it moved.
func (c *Client) saveCheckpoint(st *ktState) error {
	l := st.v.Latest()
	if l == nil || bytes.Equal(l.Note, st.note) {
		return nil
	}
	if err := c.store.Update(func(tx *profile.Tx) error { return tx.Put(bucketKT, "checkpoint", l.Note) }); err != nil {
		return err
	}
	st.note = l.Note
	return nil
}

func knownSize(v *log.Verifier) int64 {
	if l := v.Latest(); l != nil {
		return l.Size
	}
	return 0
}

// decodeAnswer turns the wire answer into the directory's, refusing
// malformed proofs (ErrDirectory).
func decodeAnswer(a *parleypb.KTAnswer) (*directory.Answer, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: the server sent no directory answer", ErrDirectory)
	}
	out := &directory.Answer{Lookup: directory.Lookup{Checkpoint: a.Checkpoint, Record: a.Entry, VRFProof: a.VrfProof}}
	var err error
	if len(a.Consistency) > 0 {
		if out.Consistency, err = log.DecodeProof(a.Consistency); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDirectory, err)
		}
	}
	if out.EntryProof, err = log.DecodeProof(a.EntryProof); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	if out.Proof, err = prefix.ParseProof(a.PrefixProof); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	if a.Current != nil {
		if out.Current, err = decodeVersion(a.Current); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeVersion(v *parleypb.KTVersion) (*directory.Opening, error) {
	o := &directory.Opening{Epoch: v.Epoch, Version: v.Version, Value: v.Value}
	if len(v.Prev) != len(o.Prev) || len(v.Opening) != len(o.Opening) {
		return nil, fmt.Errorf("%w: a version with a malformed opening", ErrDirectory)
	}
	copy(o.Prev[:], v.Prev)
	copy(o.Opening[:], v.Opening)
	return o, nil
}

// ktLookup fetches user's device list from the directory and verifies
// it. It returns the signed list (nil if the directory proves the user
// has none).
func (c *Client) ktLookup(ctx context.Context, conn *transport.Conn, user string) (*parleypb.SignedDeviceList, *directory.Result, error) {
	c.ktMu.Lock()
	defer c.ktMu.Unlock()
	st, err := c.ktVerifier(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	resp, err := conn.FetchDeviceList(ctx, user, knownSize(st.v))
	if err != nil {
		return nil, nil, err
	}
	a, err := decodeAnswer(resp.Kt)
	if err != nil {
		return nil, nil, err
	}
	r, err := directory.VerifySearch(st.v, st.keys, user, a, c.opts.now())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s's device list: %w", ErrDirectory, user, err)
	}
	if err := c.saveCheckpoint(st); err != nil {
		return nil, nil, err
	}
	if !r.Found {
		return nil, r, nil
	}
	var s parleypb.SignedDeviceList
	if err := proto.Unmarshal(r.Current.Value, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: %s's list in the directory: %w", devicelist.ErrMalformed, user, err)
	}
	return &s, r, nil
}

// maxOwnHistory bounds the versions of its own account one monitoring
// pass reads (pages of the server's).
const maxOwnHistory = 4096

// monitorOwn checks every version of this account's device list that the
// directory published since the last check: each must be signed by the
// account key this device pinned, for this account. A version that is
// not is a device (or account key) this account did not sign, shown to
// everyone who looked the account up: a security alert.
//
// Unless force is set, it checks only if the last check is older than
// Options.KTMonitorEvery: each check covers every epoch since the last.
func (c *Client) monitorOwn(ctx context.Context, conn *transport.Conn, force bool) error {
	c.ktMu.Lock()
	defer c.ktMu.Unlock()
	var own ktOwn
	var pinned pin
	err := c.store.Update(func(tx *profile.Tx) error {
		if err := tx.GetJSON(bucketKT, "own", &own); err != nil && !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		return tx.GetJSON(bucketPins, c.acct.User, &pinned)
	})
	if err != nil {
		return err
	}
	every := c.opts.KTMonitorEvery
	if every == 0 {
		every = defaultKTMonitorEvery
	}
	now := c.opts.now()
	if !force && every > 0 && !own.Checked.IsZero() && now.Sub(own.Checked) < every && !now.Before(own.Checked) {
		return nil
	}
	st, err := c.ktVerifier(ctx, conn)
	if err != nil {
		return err
	}
	var known directory.Known
	fromStart := len(own.Leaf) == 0
	if !fromStart {
		copy(known.Leaf[:], own.Leaf)
		known.Epoch = own.Epoch
	}
	var versions []directory.Opening
	var a *directory.Answer
	after := known.Epoch
	for {
		resp, err := conn.KTHistory(ctx, &parleypb.KTHistoryRequest{AfterEpoch: after, FromStart: fromStart && len(versions) == 0, KnownSize: knownSize(st.v)})
		if err != nil {
			return err
		}
		for _, v := range resp.Versions {
			o, err := decodeVersion(v)
			if err != nil {
				return err
			}
			versions = append(versions, *o)
			after = o.Epoch
		}
		if a, err = decodeAnswer(resp.Answer); err != nil {
			return err
		}
		if !resp.More || len(resp.Versions) == 0 {
			break
		}
		if len(versions) > maxOwnHistory {
			return fmt.Errorf("%w: more than %d versions of this account since the last check", ErrDirectory, maxOwnHistory)
		}
		fromStart = false
	}
	r, err := directory.VerifyHistory(st.v, st.keys, c.acct.User, known, a, versions, c.opts.now())
	if err != nil {
		return fmt.Errorf("%w: this account's own history: %w", ErrDirectory, err)
	}
	if err := c.saveCheckpoint(st); err != nil {
		return err
	}
	for _, o := range versions {
		if err := c.checkOwnVersion(o, pinned.AccountKey); err != nil {
			return err
		}
	}
	own.Checked = now.UTC()
	if r.Found {
		own.Leaf, own.Epoch = r.Leaf[:], r.Current.Epoch
	}
	return c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketKT, "own", own) })
}

// checkOwnVersion checks one version of this account in the directory.
func (c *Client) checkOwnVersion(o directory.Opening, accountKey []byte) error {
	var s parleypb.SignedDeviceList
	if err := proto.Unmarshal(o.Value, &s); err != nil {
		return fmt.Errorf("%w: version %d of this account's list in the directory (epoch %d) is malformed", ErrDirectory, o.Version, o.Epoch)
	}
	l, err := devicelist.Verify(&s)
	switch {
	case err != nil:
		return fmt.Errorf("%w: version %d of this account's list in the directory (epoch %d): %w", ErrDirectory, o.Version, o.Epoch, err)
	case l.Username != c.acct.User:
		return fmt.Errorf("%w: the directory holds %s's list under this account's name (epoch %d)", ErrDirectory, l.Username, o.Epoch)
	case len(accountKey) > 0 && !bytes.Equal(l.AccountKey, accountKey):
		var devs []string
		for _, d := range l.Devices {
			devs = append(devs, d.ID)
		}
		return fmt.Errorf("%w: the directory published a device list for this account (%s) that this account did not sign: version %d at epoch %d, account key %s, devices %v; everyone who looked up %s since may be sending to those devices",
			ErrDirectory, c.acct.User, o.Version, o.Epoch, fingerprint(l.AccountKey), devs, c.acct.User)
	}
	return nil
}

// waitForDirectory waits until the directory serves this account's list
// at version at least v (a list just published goes in at the next
// epoch), so that what this device does next sees it.
func (c *Client) waitForDirectory(ctx context.Context, conn *transport.Conn, v uint64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		s, _, err := c.ktLookup(ctx, conn, c.acct.User)
		if err != nil && ctx.Err() == nil && !isNotReady(err) {
			return err
		}
		if s != nil {
			if l, err := devicelist.Verify(s); err == nil && l.Version >= v {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the key transparency directory has not taken this account's new device list (version %d) within a minute; it goes in at the server's next epoch, try again shortly", v)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func isNotReady(err error) bool { return errors.Is(err, wire.ErrNotReady) }

// AuditReport is what "parley audit" shows: the directory this client
// trusts, the checkpoint it last accepted, this account's own history as
// last checked, and the epoch at which each contact's list was last
// verified.
type AuditReport struct {
	Origin     string         `json:"origin"`
	LogKey     string         `json:"log_key"`
	Witnesses  []string       `json:"witnesses,omitempty"`
	Size       int64          `json:"checkpoint_size"`
	Root       string         `json:"checkpoint_root"`
	OwnEpoch   uint64         `json:"own_epoch"`
	Contacts   []ContactAudit `json:"contacts"`
	Checkpoint string         `json:"checkpoint_note"`
	Alerts     []Warning      `json:"alerts,omitempty"`
}

// ContactAudit is one account's list as last verified.
type ContactAudit struct {
	User    string `json:"user"`
	Version uint64 `json:"version"`
	Epoch   uint64 `json:"epoch"`
	Devices int    `json:"devices"`
}

// Audit checks this account's own history in the directory now (as every
// sync does) and reports what the client trusts. Any alert raised is in
// the report and among the warnings.
func (c *Client) Audit(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		if err := c.monitorOwn(ctx, conn, true); err != nil {
			if !isAlert(err) {
				return err
			}
			c.warn(nil, nil, fmt.Errorf("checking this account in the key transparency directory: %w", err))
		}
		var k ktKeys
		var own ktOwn
		var pins []profile.Item
		if err := c.store.Update(func(tx *profile.Tx) error {
			if err := tx.GetJSON(bucketKT, "keys", &k); err != nil {
				return err
			}
			if err := tx.GetJSON(bucketKT, "own", &own); err != nil && !errors.Is(err, profile.ErrNotFound) {
				return err
			}
			pins, err = tx.List(bucketPins)
			return err
		}); err != nil {
			return err
		}
		rep = AuditReport{Origin: k.Origin, LogKey: k.NoteKey, Witnesses: append(k.Witnesses, c.opts.KTWitnesses...), OwnEpoch: own.Epoch}
		c.ktMu.Lock()
		if c.kt != nil {
			if l := c.kt.v.Latest(); l != nil {
				rep.Size, rep.Root, rep.Checkpoint = l.Size, l.Hash.String(), string(l.Note)
			}
		}
		c.ktMu.Unlock()
		for _, it := range pins {
			var p pin
			if err := json.Unmarshal(it.Value, &p); err != nil || it.Key == c.acct.User {
				continue
			}
			rep.Contacts = append(rep.Contacts, ContactAudit{User: it.Key, Version: p.Version, Epoch: p.Epoch, Devices: len(p.Devices)})
		}
		return nil
	})
	for _, w := range c.Warnings() {
		if w.Alert {
			rep.Alerts = append(rep.Alerts, w)
		}
	}
	return rep, err
}

// Split views (docs/transparency.md). Every message carries the latest
// checkpoint its sender's device accepted; a member's device checks that
// checkpoint against its own, with a consistency proof from the server.
// A server that shows two members different directories cannot prove
// both consistent, so whichever member receives the other's checkpoint
// raises the alert.

type peerView struct {
	conv   string
	sender Sender
	view   ktView
}

// maxPeerViews bounds the checkpoints waiting to be compared.
const maxPeerViews = 64

// latestView is the checkpoint to put in an outgoing message (nil if
// this device has not accepted one yet).
func (c *Client) latestView() *ktView {
	c.ktMu.Lock()
	defer c.ktMu.Unlock()
	if c.kt == nil {
		return nil
	}
	l := c.kt.v.Latest()
	if l == nil {
		return nil
	}
	return &ktView{Size: l.Size, Root: l.Hash[:]}
}

// notePeerView queues a member's checkpoint for comparison.
func (c *Client) notePeerView(r *convRecord, sender Sender, v *ktView) {
	c.ktMu.Lock()
	defer c.ktMu.Unlock()
	var root [32]byte
	copy(root[:], v.Root)
	if got, ok := c.viewsChecked[v.Size]; ok && got == root {
		return
	}
	for _, p := range c.peerViews {
		if p.view.Size == v.Size && bytes.Equal(p.view.Root, v.Root) {
			return
		}
	}
	if len(c.peerViews) < maxPeerViews {
		c.peerViews = append(c.peerViews, peerView{conv: r.label(), sender: sender, view: *v})
	}
}

// comparePeerViews checks the queued checkpoints against this device's.
// Failures are security alerts; a checkpoint ahead of what the server
// shows this device is kept for a later sync.
func (c *Client) comparePeerViews(ctx context.Context, conn *transport.Conn) {
	c.ktMu.Lock()
	views := c.peerViews
	c.peerViews = nil
	c.ktMu.Unlock()
	var later []peerView
	for _, pv := range views {
		ahead, err := c.comparePeerView(ctx, conn, pv)
		switch {
		case err != nil:
			c.warnLabel(pv.conv, err)
		case ahead:
			later = append(later, pv)
		}
	}
	c.ktMu.Lock()
	c.peerViews = append(c.peerViews, later...)
	c.ktMu.Unlock()
}

func (c *Client) comparePeerView(ctx context.Context, conn *transport.Conn, pv peerView) (ahead bool, err error) {
	mine, err := c.refreshedCheckpoint(ctx, conn, pv.view.Size)
	if err != nil && isAlert(err) {
		return false, err
	}
	if err != nil || mine == nil {
		return false, nil // nothing to compare with yet; not evidence
	}
	var root tlog.Hash
	copy(root[:], pv.view.Root)
	if pv.view.Size > mine.Size {
		return true, nil
	}
	split := func(reason error) error {
		return fmt.Errorf("%w: %s/%s's device was shown the key transparency checkpoint of %d epochs (root %v), which is not part of the log this device was shown (%d epochs, root %v): the server is showing you and %s different directories (a split view), so either of you may be sending to devices the other cannot see; compare safety numbers with %s: %v",
			ErrDirectory, pv.sender.User, pv.sender.Device, pv.view.Size, root, mine.Size, mine.Hash, pv.sender.User, pv.sender.User, reason)
	}
	if pv.view.Size == mine.Size {
		if root != mine.Hash {
			return false, split(errors.New("same size, another root"))
		}
	} else {
		b, err := conn.KTConsistency(ctx, pv.view.Size, mine.Size)
		if err != nil {
			return false, split(fmt.Errorf("the server cannot prove them consistent: %w", err))
		}
		proof, err := log.DecodeProof(b)
		if err != nil {
			return false, split(err)
		}
		if err := tlog.CheckTree(proof, mine.Size, mine.Hash, pv.view.Size, root); err != nil {
			return false, split(err)
		}
	}
	c.ktMu.Lock()
	if c.viewsChecked == nil {
		c.viewsChecked = map[int64][32]byte{}
	}
	if len(c.viewsChecked) > 4096 {
		clear(c.viewsChecked)
	}
	c.viewsChecked[pv.view.Size] = root
	c.ktMu.Unlock()
	return false, nil
}

// refreshedCheckpoint returns this device's latest checkpoint, first
// moving it forward (a lookup of its own account) if it is older than
// size.
func (c *Client) refreshedCheckpoint(ctx context.Context, conn *transport.Conn, size int64) (*log.SignedCheckpoint, error) {
	c.ktMu.Lock()
	st, err := c.ktVerifier(ctx, conn)
	c.ktMu.Unlock()
	if err != nil {
		return nil, err
	}
	if l := st.v.Latest(); l != nil && l.Size >= size {
		return l, nil
	}
	if _, _, err := c.ktLookup(ctx, conn, c.acct.User); err != nil && !isNotReady(err) {
		return nil, err
	}
	return st.v.Latest(), nil
}

// restartOwnHistory makes the directory's current version of this
// account, which must be version (just published under a new account
// key), the start of its monitored history.
func (c *Client) restartOwnHistory(ctx context.Context, conn *transport.Conn, version uint64) error {
	s, r, err := c.ktLookup(ctx, conn, c.acct.User)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("%w: this account's new list is not in the directory", ErrDirectory)
	}
	l, err := devicelist.Verify(s)
	if err != nil || l.Version != version || !bytes.Equal(l.AccountKey, ed25519.NewKeyFromSeed(c.acct.AccountKey).Public().(ed25519.PublicKey)) {
		return fmt.Errorf("%w: the directory does not serve the list this device just signed (version %d)", ErrDirectory, version)
	}
	own := ktOwn{Leaf: r.Leaf[:], Epoch: r.Current.Epoch, Checked: c.opts.now().UTC()}
	return c.store.Update(func(tx *profile.Tx) error { return tx.PutJSON(bucketKT, "own", own) })
}
