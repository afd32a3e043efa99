package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/client/historyfile"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/wire"
)

// Export and import of history ("parley export", "parley import").
//
// The file holds the history of every conversation but pending message
// requests (messages with their reactions, edits and receipts, the keys
// of their files) and this profile's settings and mutes, as JSON lines
// inside a client/historyfile container (Argon2id, XChaCha20-Poly1305). It holds
// NO key of this device and NO MLS group state: whoever has the file (and
// its passphrase) can read the past, but cannot read anything new, send
// as this device, or pass for it in any group. That is on purpose: a
// copy of MLS state on a second computer would be a second, unlisted
// device with this device's keys, breaking forward secrecy and the
// "no ghosts" rule (docs/transparency.md). A new computer becomes a
// device of its own with "parley devices link", and then imports the
// history, which it shows read-only (conversations it is not a member of
// are marked imported; in conversations it is in, the imported past is
// merged before what it receives itself). The same records, without the
// passphrase container, are what a history transfer carries
// (historytransfer.go).

// exportVersion is the version of the JSON lines inside the file.
const exportVersion = 1

// maxExportRecord bounds one line of an export when importing (a
// message with many long edits is the largest).
const maxExportRecord = 8 << 20

// Errors of import; callers branch on them.
var (
	ErrOtherAccount = errors.New("client: that history file is another account's: import it into a profile of the same account")
	ErrBadExport    = errors.New("client: the history file's contents are malformed")
)

type exportRecord struct {
	Type string `json:"type"` // header, conversation, message, file, receipt, reaction, end
	// header
	Version    int       `json:"version,omitempty"`
	User       string    `json:"user,omitempty"`
	Server     string    `json:"server,omitempty"`
	Device     string    `json:"device,omitempty"`
	ExportedAt time.Time `json:"exported_at,omitzero"`
	Settings   *Settings `json:"settings,omitempty"`
	Mutes      []Mute    `json:"mutes,omitempty"`
	// Messages is the number of message records (header, end).
	Messages int `json:"messages,omitempty"`
	// conversation
	Conv *exportConv `json:"conv,omitempty"`
	// message, file, receipt: the conversation (hex id)
	ConvID  string   `json:"conv_id,omitempty"`
	Message *Message `json:"message,omitempty"`
	// file, receipt: the message id
	ID    string          `json:"id,omitempty"`
	File  *fileDescriptor `json:"file,omitempty"`
	State *receiptState   `json:"state,omitempty"`
	// reaction: ID is the reaction message, Target the message it
	// reacts to (so that it can still be taken back).
	Target string `json:"target,omitempty"`
	// total is the number of messages to expect, for progress.
	total int64
}

type exportConv struct {
	ID      []byte    `json:"id"`
	Kind    string    `json:"kind"`
	Peer    string    `json:"peer,omitempty"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Last    time.Time `json:"last,omitzero"`
}

// ExportResult says what an export or import handled.
type ExportResult struct {
	Conversations int `json:"conversations"`
	Messages      int `json:"messages"`
	// Skipped (import): messages the profile already had.
	Skipped int `json:"skipped,omitempty"`
}

// Export writes this profile's history and settings to w, encrypted
// under passphrase with Argon2id costs kdf. progress, if set, is told
// how many messages of how many are written.
func (c *Client) Export(ctx context.Context, w io.Writer, passphrase []byte, kdf historyfile.KDF, progress Progress) (ExportResult, error) {
	var res ExportResult
	err := c.withLock(ctx, func() error {
		hw, err := historyfile.NewWriter(w, passphrase, kdf)
		if err != nil {
			return err
		}
		if res, err = c.writeHistory(ctx, hw, progress); err != nil {
			return err
		}
		return hw.Close()
	})
	return res, err
}

// writeHistory writes the records of an export (the plaintext inside an
// export file, or inside a history transfer) to w. Call with the lock
// held.
func (c *Client) writeHistory(ctx context.Context, w io.Writer, progress Progress) (ExportResult, error) {
	var res ExportResult
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	err := c.store.Update(func(tx *profile.Tx) error {
		convs, err := listConvs(tx)
		if err != nil {
			return err
		}
		// Pending message requests are not the user's conversations
		// yet: they stay behind.
		convs = slices.DeleteFunc(convs, func(r *convRecord) bool { return r.Request || r.Kind == ConvSelf })
		total := 0
		for _, r := range convs {
			n, err := tx.Count(historyPfx + hexID(r.ID))
			if err != nil {
				return err
			}
			total += n
		}
		s := loadSettings(tx)
		head := exportRecord{Type: "header", Version: exportVersion, User: c.acct.User, Server: c.acct.Server,
			Device: c.acct.DeviceID, ExportedAt: c.opts.now().UTC(), Settings: &s, Messages: total}
		items, err := tx.List(bucketMute)
		if err != nil {
			return err
		}
		for _, it := range items {
			id, err := hex.DecodeString(it.Key)
			if err != nil {
				continue
			}
			if m := muteOf(tx, id, c.opts.now()); m != nil {
				m.Conversation = it.Key
				head.Mutes = append(head.Mutes, *m)
			}
		}
		if err := enc.Encode(&head); err != nil {
			return err
		}
		for _, r := range convs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := enc.Encode(&exportRecord{Type: "conversation", Conv: &exportConv{ID: r.ID, Kind: r.Kind, Peer: r.Peer,
				Name: r.Name, Created: r.Created, Last: r.Last}}); err != nil {
				return err
			}
			res.Conversations++
			items, err := tx.List(historyPfx + hexID(r.ID))
			if err != nil {
				return err
			}
			for _, it := range items {
				var m Message
				if err := jsonUnmarshal(it.Value, &m); err != nil {
					return err
				}
				if c.expired(m.ExpiresAt) {
					continue // gone at the next sweep: never exported
				}
				conv := hexID(r.ID)
				if err := enc.Encode(&exportRecord{Type: "message", ConvID: conv, Message: &m}); err != nil {
					return err
				}
				var fd fileDescriptor
				if err := tx.GetJSON(bucketFiles, m.ID, &fd); err == nil {
					if err := enc.Encode(&exportRecord{Type: "file", ConvID: conv, ID: m.ID, File: &fd}); err != nil {
						return err
					}
				}
				rcpts, err := tx.List(receiptPfx + m.ID)
				if err != nil {
					return err
				}
				for _, rc := range rcpts {
					var st receiptState
					if json.Unmarshal(rc.Value, &st) != nil {
						continue
					}
					if err := enc.Encode(&exportRecord{Type: "receipt", ConvID: conv, ID: m.ID, User: rc.Key, State: &st}); err != nil {
						return err
					}
				}
				res.Messages++
				if progress != nil && res.Messages%64 == 0 {
					progress(int64(res.Messages), int64(total))
				}
			}
			rxs, err := tx.List(reactionPfx + hexID(r.ID))
			if err != nil {
				return err
			}
			for _, rx := range rxs {
				var target string
				if json.Unmarshal(rx.Value, &target) != nil {
					continue
				}
				if err := enc.Encode(&exportRecord{Type: "reaction", ConvID: hexID(r.ID), ID: rx.Key, Target: target}); err != nil {
					return err
				}
			}
		}
		if progress != nil {
			progress(int64(res.Messages), int64(total))
		}
		return enc.Encode(&exportRecord{Type: "end", Messages: res.Messages})
	})
	if err != nil {
		return ExportResult{}, err
	}
	return res, bw.Flush()
}

// importBatch is how often (in records) an import checks for
// cancellation and reports progress.
const importBatch = 512

// Import reads a history file made by Export of this account (on another
// device) and adds its history: messages this profile already has are
// kept as they are; conversations it does not have are added read-only
// (imported). Settings and mutes are applied. The file is untrusted
// input: anything malformed is an error (ErrBadExport,
// historyfile.ErrCorrupt...) and nothing is applied. progress, if set, is told how many messages of how many
// are read.
func (c *Client) Import(ctx context.Context, rd io.Reader, passphrase []byte, progress Progress) (ExportResult, error) {
	var res ExportResult
	hr, err := historyfile.NewReader(rd, passphrase)
	if err != nil {
		return res, err
	}
	err = c.withLock(ctx, func() (err error) {
		if res, err = c.readHistory(ctx, hr, progress); err == nil {
			// The settings and mutes it changed go to the account's
			// other devices, as if the user had set them here.
			c.shareOwnNow(ctx)
		}
		return err
	})
	return res, err
}

// readHistory applies the records of an export read from r (plaintext),
// all in one transaction: input that turns out damaged, cut short or
// malformed anywhere changes nothing. Call with the lock held.
func (c *Client) readHistory(ctx context.Context, r io.Reader, progress Progress) (ExportResult, error) {
	var res ExportResult
	err := c.store.UpdateContext(ctx, func(tx *profile.Tx) error {
		n := 0
		return readExport(r, c.acct.User, func(rec *exportRecord) error {
			if n++; n%importBatch == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				if progress != nil {
					progress(int64(res.Messages+res.Skipped), rec.total)
				}
			}
			if rec.Type == "header" {
				return c.importHead(tx, rec)
			}
			if rec.Type == "end" {
				if progress != nil {
					progress(int64(res.Messages+res.Skipped), int64(rec.Messages))
				}
				return nil
			}
			return c.importRecord(tx, rec, &res)
		})
	})
	if err != nil {
		return ExportResult{}, err
	}
	return res, nil
}

// readExport decodes and checks the records of an export (the plaintext
// of its file), calling apply for each in order: the header (of user
// self, else ErrOtherAccount), then every record, then the end, once the
// end is known to be the last. Anything malformed is an error. Pure: it
// is what FuzzReadExport runs.
func readExport(r io.Reader, self string, apply func(*exportRecord) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	next := func() (*exportRecord, error) {
		line, err := readLine(br, maxExportRecord)
		if err != nil {
			return nil, err
		}
		var rec exportRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadExport, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: two records on a line", ErrBadExport)
		}
		return &rec, nil
	}
	head, err := next()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: empty", ErrBadExport)
	}
	if err != nil {
		return err
	}
	if head.Type != "header" || head.Version != exportVersion || head.Messages < 0 {
		return fmt.Errorf("%w: no header of version %d", ErrBadExport, exportVersion)
	}
	if head.User != self {
		return fmt.Errorf("%w (it is %q's; this profile is %q's)", ErrOtherAccount, head.User, self)
	}
	for _, m := range head.Mutes {
		id, err := hex.DecodeString(m.Conversation)
		if err != nil || (len(id) != groupIDSize && len(id) != wire.DirectConversationIDSize) || (!m.Forever && m.Until.IsZero()) {
			return fmt.Errorf("%w: a malformed mute", ErrBadExport)
		}
	}
	total := int64(head.Messages)
	head.total = total
	if err := apply(head); err != nil {
		return err
	}
	convs := map[string]bool{}  // hex ids declared
	msgs := map[string]string{} // message id → its conversation
	for {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: it ends without its end record", ErrBadExport)
		}
		if err != nil {
			return err
		}
		if err := checkRecord(rec, self, convs, msgs); err != nil {
			return err
		}
		rec.total = max(total, int64(len(msgs)))
		if rec.Type == "end" {
			if rec.Messages != len(msgs) {
				return fmt.Errorf("%w: %d messages, the end record says %d", ErrBadExport, len(msgs), rec.Messages)
			}
			if _, err := next(); !errors.Is(err, io.EOF) {
				if err == nil {
					err = fmt.Errorf("%w: records after the end", ErrBadExport)
				}
				return err
			}
			return apply(rec)
		}
		if err := apply(rec); err != nil {
			return err
		}
	}
}

// readLine reads one newline-terminated line of at most limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("%w: a record over %d bytes", ErrBadExport, limit)
		}
		if err == nil {
			return line, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, fmt.Errorf("%w: a record cut short", ErrBadExport)
		}
		return nil, err
	}
}

// checkRecord validates one record against what came before.
func checkRecord(rec *exportRecord, self string, convs map[string]bool, msgs map[string]string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s record: %s", ErrBadExport, rec.Type, fmt.Sprintf(format, args...))
	}
	isMsgID := func(id string) bool {
		b, err := hex.DecodeString(id)
		return err == nil && len(b) == wire.MessageIDSize && hexID(b) == id
	}
	switch rec.Type {
	case "conversation":
		cv := rec.Conv
		if cv == nil {
			return bad("empty")
		}
		switch cv.Kind {
		case ConvDirect:
			if wire.CheckUsername(cv.Peer) != nil || cv.Peer == self || !bytes.Equal(cv.ID, directID(self, cv.Peer)) {
				return bad("a direct conversation whose id is not the one with %q", cv.Peer)
			}
		case ConvGroup:
			if len(cv.ID) != groupIDSize || (cv.Name != "" && checkGroupName(cv.Name) != nil) || cv.Peer != "" {
				return bad("a malformed group")
			}
		default:
			return bad("kind %q", cv.Kind)
		}
		if convs[hexID(cv.ID)] {
			return bad("conversation %s twice", hexID(cv.ID))
		}
		convs[hexID(cv.ID)] = true
	case "message":
		m := rec.Message
		if m == nil || !convs[rec.ConvID] || !isMsgID(m.ID) {
			return bad("no message, an unknown conversation, or a bad id")
		}
		if _, dup := msgs[m.ID]; dup {
			return bad("message %s twice", m.ID)
		}
		switch m.Kind {
		case KindText, KindFile, KindReceipt, KindMembership, KindUnsupported, KindTimer, KindJoinRequest:
		default:
			return bad("kind %q", m.Kind)
		}
		if wire.CheckUsername(m.Sender.User) != nil && !(m.Kind == KindMembership && m.Sender.User == "someone") {
			return bad("sender %q", m.Sender.User)
		}
		if !utf8.ValidString(m.Text) || len(m.Text) > maxTextBytes+1024 {
			return bad("text")
		}
		msgs[m.ID] = rec.ConvID
	case "file":
		f := rec.File
		if msgs[rec.ID] != rec.ConvID || rec.ConvID == "" || f == nil || f.Blob == "" || len(f.Key) != 32 || len(f.SHA256) != 32 ||
			f.Size < 0 || f.Name == "" || len(f.Name) > maxFileNameBytes {
			return bad("a malformed file, or one of no message of its conversation")
		}
	case "receipt":
		if msgs[rec.ID] != rec.ConvID || rec.ConvID == "" || rec.State == nil || wire.CheckUsername(rec.User) != nil {
			return bad("a malformed receipt, or one of no message of its conversation")
		}
	case "reaction":
		if !isMsgID(rec.ID) || msgs[rec.Target] != rec.ConvID || rec.ConvID == "" {
			return bad("a malformed reaction, or one to no message of its conversation")
		}
	case "end":
	default:
		return bad("unknown type")
	}
	return nil
}

// A setting or mute it changes is recorded for own-device sync (putOwn)
// like one the user makes here, so the account's other devices get it.
func (c *Client) importHead(tx *profile.Tx, head *exportRecord) error {
	if s := head.Settings; s != nil {
		if err := migrateTyping(tx); err != nil {
			return err
		}
		for _, name := range []string{SettingReadReceipts, SettingMessageRequests} {
			on := s.ReadReceipts
			if name == SettingMessageRequests {
				on = s.MessageRequests
			}
			v := "off"
			if on {
				v = "on"
			}
			if settingOn(tx, name) == on {
				continue // unchanged: nothing to tell the other devices
			}
			if err := tx.Put(bucketSettings, name, []byte(v)); err != nil {
				return err
			}
			if name == SettingMessageRequests && !on {
				if err := releaseRequests(tx); err != nil {
					return err
				}
			}
			if err := c.putOwn(tx, ownSetting+name, []byte(v), false); err != nil {
				return err
			}
		}
	}
	for _, m := range head.Mutes {
		id, _ := hex.DecodeString(m.Conversation) // checked by readExport
		if muteOf(tx, id, c.opts.now()) != nil {
			continue // this profile's own mute wins
		}
		m.Conversation = ""
		v, err := json.Marshal(&m)
		if err != nil {
			return err
		}
		if err := tx.Put(bucketMute, hexID(id), v); err != nil {
			return err
		}
		if err := c.putOwn(tx, ownMute+hexID(id), v, false); err != nil {
			return err
		}
	}
	return nil
}

// importRecord applies one checked record.
func (c *Client) importRecord(tx *profile.Tx, rec *exportRecord, res *ExportResult) error {
	switch rec.Type {
	case "conversation":
		cv := rec.Conv
		res.Conversations++
		if _, err := getConv(tx, cv.ID); err == nil {
			return nil // merged into the conversation this profile has
		} else if !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		return putConv(tx, &convRecord{ID: cv.ID, Kind: cv.Kind, Peer: cv.Peer, Name: cv.Name, Created: cv.Created,
			Last: cv.Last, Removed: true, Imported: true})
	case "message":
		m := rec.Message
		bucket := historyPfx + rec.ConvID
		var local Message
		switch err := tx.GetJSON(bucket, m.ID, &local); {
		case err == nil:
			res.Skipped++
			if local.Seq == 0 && m.Seq > 0 {
				// This device's note of the commit that added it (made
				// from the Welcome, which carries no log position) takes
				// the commit's place in the log, after the past.
				local.Seq = m.Seq
				return tx.PutJSON(bucket, m.ID, &local)
			}
			return nil
		case !errors.Is(err, profile.ErrNotFound):
			return err
		}
		if gone, err := tx.Has(bucketGone, m.ID); err != nil || gone {
			res.Skipped++
			return err
		}
		if c.expired(m.ExpiresAt) {
			res.Skipped++ // a disappearing message whose time passed
			return nil
		}
		m.Outgoing = false // sent by the exporting device, not this one
		m.Muted = false
		if err := tx.PutJSON(bucket, m.ID, m); err != nil {
			return err
		}
		// A disappearing message disappears here too, at the same time.
		convID, _ := hex.DecodeString(rec.ConvID) // checked by readExport
		if err := noteExpiring(tx, &convRecord{ID: convID}, m.ID, m.ExpiresAt, ""); err != nil {
			return err
		}
		// Not marked seen: if the log still holds it for this device
		// (a commit above all), it must be processed when it comes.
		res.Messages++
		return nil
	case "file":
		if has, err := tx.Has(bucketFiles, rec.ID); err != nil || has {
			return err
		}
		return tx.PutJSON(bucketFiles, rec.ID, rec.File)
	case "receipt":
		var st receiptState
		err := tx.GetJSON(receiptPfx+rec.ID, rec.User, &st)
		if err == nil {
			return nil
		}
		if !errors.Is(err, profile.ErrNotFound) {
			return err
		}
		return tx.PutJSON(receiptPfx+rec.ID, rec.User, rec.State)
	case "reaction":
		if has, err := tx.Has(reactionPfx+rec.ConvID, rec.ID); err != nil || has {
			return err
		}
		return tx.PutJSON(reactionPfx+rec.ConvID, rec.ID, rec.Target)
	}
	return nil
}
