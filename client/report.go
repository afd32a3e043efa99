package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/content"
	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/wire/parleypb"
)

// Abuse reports with proof (docs/moderation.md). Every message this
// device receives from someone else carries a franking tag that commits
// to its exact content; the client checks it and keeps, with the
// message, what a report needs: the content, the salt and tag, and the
// server's frank.

// bucketFranks holds, per received message id, its franking record.
const bucketFranks = "franks"

// ErrBarred: moderators suspended or banned this account; the error
// says until when, why, and how to appeal (Client.Appeal).
var ErrBarred = errors.New("client: this account is suspended or banned")

// ErrTampered: a message whose franking tag does not commit to its
// content (its sender's client misbehaved); it is dropped.
var ErrTampered = errors.New("client: a message's franking tag does not match its content (tampered by its sender)")

type frankRecord struct {
	Conversation []byte    `json:"conversation"`
	SenderUser   string    `json:"sender_user"`
	SenderDevice string    `json:"sender_device"`
	Accepted     time.Time `json:"accepted"`
	Content      []byte    `json:"content"`
	Salt         []byte    `json:"salt"`
	Tag          []byte    `json:"tag"`
	Frank        []byte    `json:"frank,omitempty"`
	Seq          uint64    `json:"seq"`
}

// keepFrank checks a received message's franking tag and keeps what a
// report of it needs. Messages without a tag (clients from before
// franking) are taken but cannot be reported.
func (c *Client) keepFrank(tx *profile.Tx, r *convRecord, m transport.Message, sender Sender, cont *content.Content, plaintext, aad []byte, own bool) error {
	tag, err := franking.TagFromAAD(aad)
	if errors.Is(err, franking.ErrNoTag) {
		return nil
	}
	if err != nil || !franking.Opens(tag, cont.Salt[:], plaintext) {
		return fmt.Errorf("%w: from %s; dropped", ErrTampered, sender.User)
	}
	if own {
		return nil
	}
	rec := frankRecord{Conversation: r.ID, SenderUser: sender.User, SenderDevice: sender.Device, Accepted: m.Accepted,
		Content: plaintext, Salt: cont.Salt[:], Tag: tag, Frank: m.Frank, Seq: m.Seq}
	return tx.PutJSON(bucketFranks, hexID(m.ID), rec)
}

// ReportedMessage is a message as a report would send it.
type ReportedMessage struct {
	ID      string    `json:"id"`
	Sender  Sender    `json:"sender"`
	At      time.Time `json:"at"`
	Text    string    `json:"text"`
	Content []byte    `json:"content"`
}

// ReportPlan is what a report will send, for the user to see first.
type ReportPlan struct {
	Conversation string            `json:"conversation"`
	Reason       string            `json:"reason"`
	Note         string            `json:"note,omitempty"`
	Messages     []ReportedMessage `json:"messages"`

	convID []byte
	recs   []frankRecord
}

// PlanReport gathers the messages to report in a conversation: those
// named by id, and the last n received from others. It sends nothing.
func (c *Client) PlanReport(ctx context.Context, target string, ids []string, last int, reason, note string) (*ReportPlan, error) {
	if !slices.Contains(franking.Reasons, reason) {
		return nil, fmt.Errorf("client: --reason must be one of %s", strings.Join(franking.Reasons, ", "))
	}
	if len(note) > franking.MaxNote {
		return nil, fmt.Errorf("client: the note is %d bytes; at most %d", len(note), franking.MaxNote)
	}
	var plan *ReportPlan
	err := c.withLock(ctx, func() error {
		r, err := c.resolve(ctx, target, false)
		if err != nil {
			return err
		}
		plan = &ReportPlan{Conversation: r.label(), Reason: reason, Note: note, convID: r.ID}
		return c.store.Update(func(tx *profile.Tx) error {
			items, err := tx.List(bucketFranks)
			if err != nil {
				return err
			}
			type kept struct {
				id  string
				rec frankRecord
			}
			var inConv []kept
			for _, it := range items {
				var rec frankRecord
				if err := jsonUnmarshal(it.Value, &rec); err != nil || !bytes.Equal(rec.Conversation, r.ID) {
					continue
				}
				inConv = append(inConv, kept{it.Key, rec})
			}
			sort.Slice(inConv, func(i, j int) bool { return inConv[i].rec.Seq < inConv[j].rec.Seq })
			chosen := map[string]bool{}
			for _, id := range ids {
				found := false
				for _, k := range inConv {
					if k.id == id || strings.HasPrefix(k.id, id) && len(id) >= 8 {
						chosen[k.id], found = true, true
					}
				}
				if !found {
					return fmt.Errorf("client: no message %s from someone else in %s can be reported (only messages received with franking can)", id, r.label())
				}
			}
			for i := len(inConv) - 1; i >= 0 && last > 0; i-- {
				chosen[inConv[i].id] = true
				last--
			}
			for _, k := range inConv {
				if !chosen[k.id] {
					continue
				}
				text := "(not text)"
				if cont, err := content.Decode(k.rec.Content); err == nil {
					if p, err := interpret(cont); err == nil && p.text != "" {
						text = p.text
					}
				}
				plan.Messages = append(plan.Messages, ReportedMessage{ID: k.id, Sender: Sender{User: k.rec.SenderUser, Device: k.rec.SenderDevice},
					At: k.rec.Accepted, Text: text, Content: k.rec.Content})
				plan.recs = append(plan.recs, k.rec)
			}
			if len(plan.Messages) == 0 {
				return errors.New("client: name the messages to report (--message ID, or --last N)")
			}
			if len(plan.Messages) > franking.MaxMessages {
				return fmt.Errorf("client: a report holds at most %d messages", franking.MaxMessages)
			}
			return nil
		})
	})
	return plan, err
}

// Report sends a planned report and returns the server's case id.
func (c *Client) Report(ctx context.Context, plan *ReportPlan) (string, error) {
	req := &parleypb.ReportRequest{ConversationId: plan.convID, Reason: plan.Reason, Note: plan.Note}
	for _, rec := range plan.recs {
		if len(rec.Frank) == 0 {
			return "", errors.New("client: a chosen message came without the server's frank (a server without franking): it cannot be reported")
		}
		req.Messages = append(req.Messages, &parleypb.ReportedMessage{SenderUser: rec.SenderUser, SenderDeviceId: rec.SenderDevice,
			AcceptedUnixMs: rec.Accepted.UnixMilli(), Content: rec.Content, Salt: rec.Salt, FrankingTag: rec.Tag, Frank: rec.Frank})
	}
	var id string
	err := c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil {
			return err
		}
		id, err = conn.Report(ctx, req)
		return err
	})
	return id, err
}

// Appeal appeals a moderation decision on this account's case (it works
// while the account is barred).
func (c *Client) Appeal(ctx context.Context, caseID, text string) error {
	return c.withLock(ctx, func() error {
		conn, err := c.connection(ctx)
		if err != nil && !errors.Is(err, ErrBarred) {
			return err
		}
		return conn.Appeal(ctx, caseID, text)
	})
}

// ModerationNotice is one moderators' decision about this account, as the
// server tells it at every sign-in (docs/moderation.md "What the reported
// user is told").
type ModerationNotice = transport.ModerationNotice

// bucketNotices keeps the decisions this profile has been told, by case,
// time and action.
const bucketNotices = "moderation_notices"

func noticeKey(n ModerationNotice) string {
	return fmt.Sprintf("%s:%d:%s", n.Case, n.Decided.UnixMilli(), n.Action)
}

// keepNotices stores the decisions the server told and calls
// Options.OnModerationNotice for each one this profile had not seen.
func (c *Client) keepNotices(ns []ModerationNotice) error {
	var fresh []ModerationNotice
	err := c.store.Update(func(tx *profile.Tx) error {
		for _, n := range ns {
			key := noticeKey(n)
			var old ModerationNotice
			err := tx.GetJSON(bucketNotices, key, &old)
			if err == nil {
				if old.Appealable != n.Appealable {
					if err := tx.PutJSON(bucketNotices, key, n); err != nil {
						return err
					}
				}
				continue
			}
			if !errors.Is(err, profile.ErrNotFound) {
				return err
			}
			if err := tx.PutJSON(bucketNotices, key, n); err != nil {
				return err
			}
			fresh = append(fresh, n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("client: keep the moderators' decisions: %w", err)
	}
	if f := c.opts.OnModerationNotice; f != nil {
		for i := len(fresh) - 1; i >= 0; i-- { // oldest first
			f(fresh[i])
		}
	}
	return nil
}

// ModerationDecisions returns the moderators' decisions about this account
// that this profile has been told, newest first.
func (c *Client) ModerationDecisions() ([]ModerationNotice, error) {
	items, err := c.store.List(bucketNotices)
	if err != nil {
		return nil, err
	}
	out := make([]ModerationNotice, 0, len(items))
	for _, it := range items {
		var n ModerationNotice
		if err := json.Unmarshal(it.Value, &n); err != nil {
			return nil, fmt.Errorf("client: a stored moderation decision: %w", err)
		}
		out = append(out, n)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Decided.After(out[j].Decided) })
	return out, nil
}

// DescribeNotice says a moderators' decision in a sentence for the user.
func DescribeNotice(n ModerationNotice) string {
	var what string
	switch n.Action {
	case "warn":
		what = "Moderators warned this account"
	case "suspend":
		what = "Moderators suspended this account until " + n.Until.Format(time.DateOnly)
	case "ban":
		what = "Moderators banned this account"
	case "dismiss":
		what = "Moderators lifted their decision"
	default:
		what = "Moderators decided: " + n.Action
	}
	if n.AppealDecided {
		if n.Action == "dismiss" {
			what = "Your appeal succeeded: moderators lifted their decision"
		} else {
			what = "Your appeal was decided, and the decision stands: " + strings.ToLower(what[:1]) + what[1:]
		}
	}
	s := fmt.Sprintf("%s (case %s, %s): %s", what, n.Case, n.Decided.Format(time.DateOnly), n.Reason)
	if n.Appealable {
		s += fmt.Sprintf(". You can appeal once: parley appeal %s \"why\"", n.Case)
	}
	return s
}

// FetchModerationDecisions connects (which brings the server's latest
// decisions about this account; a suspended or banned account can still
// read them) and returns every decision this profile has been told,
// newest first.
func (c *Client) FetchModerationDecisions(ctx context.Context) ([]ModerationNotice, error) {
	err := c.withLock(ctx, func() error {
		_, err := c.connection(ctx)
		if errors.Is(err, ErrBarred) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.ModerationDecisions()
}
