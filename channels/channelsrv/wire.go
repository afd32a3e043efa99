package channelsrv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// Wire connects the delivery server to public channels and moderation,
// as "parleyd serve" runs them (and the end-to-end tests, through this
// same function): the channel routes, account deletion forgetting the
// user's channels, and abuse reports, sanctions and appeals going to the
// moderation cases.
func (s *Server) Wire(cfg *server.Config) {
	if cfg.Mount == nil {
		cfg.Mount = map[string]http.Handler{}
	}
	for p, h := range s.Routes() {
		cfg.Mount[p] = h
	}
	cfg.ForgetAccount = s.Channels.ForgetUser
	ms := s.Moderation.Store()
	cfg.Report = fileReport(ms)
	cfg.Sanction = sanctionOf(ms)
	cfg.Sanctions = sanctionsOf(ms)
	cfg.Appeal = appealTo(ms)
	cfg.Notices = noticesOf(ms)
}

// maxNotices bounds the decisions told at each sign-in.
const maxNotices = 20

// noticesOf tells an account the moderators' decisions about it
// (moderation.NoticesOf says which).
func noticesOf(ms moderation.Store) func(context.Context, string) ([]*parleypb.ModerationNotice, error) {
	return func(ctx context.Context, user string) ([]*parleypb.ModerationNotice, error) {
		cs, err := ms.CasesAbout(ctx, user, maxNotices)
		if err != nil {
			return nil, err
		}
		var out []*parleypb.ModerationNotice
		for _, n := range moderation.NoticesOf(cs) {
			if len(out) == maxNotices {
				break
			}
			pn := &parleypb.ModerationNotice{CaseId: strconv.FormatInt(n.Case, 10), Action: n.Action, Reason: n.Reason,
				DecidedUnixMs: n.Decided.UnixMilli(), AppealDecided: n.Appeal, Appealable: n.Appealable}
			if !n.Until.IsZero() {
				pn.UntilUnixMs = n.Until.UnixMilli()
			}
			out = append(out, pn)
		}
		return out, nil
	}
}

// fileReport turns a verified report into a moderation case. A report
// names messages of one sender per case: a report spanning several
// senders files one case each.
func fileReport(ms moderation.Store) func(context.Context, server.Report) (string, error) {
	return func(ctx context.Context, r server.Report) (string, error) {
		bySender := map[string][]moderation.CaseMessage{}
		var order []string
		for _, m := range r.Messages {
			if _, ok := bySender[m.SenderUser]; !ok {
				order = append(order, m.SenderUser)
			}
			bySender[m.SenderUser] = append(bySender[m.SenderUser], moderation.CaseMessage{Tag: m.Tag, Conversation: m.Conversation,
				SenderUser: m.SenderUser, SenderDevice: m.SenderDevice, Accepted: m.Accepted, Content: m.Content, Salt: m.Salt, Frank: m.Frank})
		}
		var ids []string
		for _, sender := range order {
			id, err := ms.FileReport(ctx, moderation.CaseReport{Reporter: r.Reporter, Reason: r.Reason, Note: r.Note, Received: r.Received}, sender, bySender[sender])
			if err != nil {
				return "", err
			}
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		return strings.Join(ids, ","), nil
	}
}

// sanctionOf asks the moderation store whether an account is barred.
func sanctionOf(ms moderation.Store) func(context.Context, string) (bool, string, error) {
	return func(ctx context.Context, user string) (bool, string, error) {
		sn, err := ms.Sanction(ctx, user, time.Now())
		if err != nil || !sn.Active() {
			return false, "", err
		}
		return true, barredMessage(sn), nil
	}
}

// sanctionsOf asks the moderation store which of many accounts are
// barred, and says why for each.
func sanctionsOf(ms moderation.Store) func(context.Context, []string) (map[string]string, error) {
	return func(ctx context.Context, users []string) (map[string]string, error) {
		sns, err := ms.Sanctions(ctx, users, time.Now())
		if err != nil {
			return nil, err
		}
		out := make(map[string]string, len(sns))
		for user, sn := range sns {
			out[user] = barredMessage(sn)
		}
		return out, nil
	}
}

// barredMessage is what a barred account is told (Session.barred, and
// every refused request).
func barredMessage(sn moderation.Sanction) string {
	what := "banned"
	if !sn.Banned {
		what = "suspended until " + sn.Until.Format(time.DateOnly)
	}
	return fmt.Sprintf("this account is %s by moderators' decision on case %d: %s. You can appeal once: parley appeal %d \"why\"", what, sn.Case, sn.Reason, sn.Case)
}

// appealTo files an account's appeal of a decision on its own case.
func appealTo(ms moderation.Store) func(ctx context.Context, user, caseID, text string) error {
	return func(ctx context.Context, user, caseID, text string) error {
		id, err := strconv.ParseInt(caseID, 10, 64)
		if err != nil {
			return &wire.Error{Code: parleypb.ErrorCode_BAD_REQUEST, Message: "a case id is a number"}
		}
		c, err := ms.Case(ctx, id)
		if errors.Is(err, moderation.ErrNotFound) || err == nil && c.Reported != user {
			return &wire.Error{Code: parleypb.ErrorCode_NOT_FOUND, Message: fmt.Sprintf("no decision on case %d concerns your account", id)}
		}
		if err != nil {
			return err
		}
		if _, err := ms.ActOnCase(ctx, id, moderation.CaseEvent{Action: "appeal", Reason: text}); errors.Is(err, moderation.ErrCaseState) {
			return &wire.Error{Code: parleypb.ErrorCode_ALREADY_EXISTS, Message: fmt.Sprintf("case %d is %s: a decision can be appealed once, after it is made", id, c.State)}
		} else if err != nil {
			return err
		}
		return nil
	}
}
