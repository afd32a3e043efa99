package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// frankedPayload is what a franking client sends: an MLS PrivateMessage
// whose authenticated data carries the tag of content (the ciphertext is
// opaque to the server, so any bytes do here).
func frankedPayload(t *testing.T, conv, content []byte) (payload, salt, tag []byte) {
	t.Helper()
	salt = make([]byte, franking.SaltSize)
	rand.Read(salt)
	tag, err := franking.Tag(salt, content)
	if err != nil {
		t.Fatal(err)
	}
	m := mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatPrivateMessage, PrivateMessage: &mls.PrivateMessage{
		GroupID: conv, Epoch: 1, ContentType: mls.ContentTypeApplication, AuthenticatedData: franking.AAD(tag),
		EncryptedSenderData: bytes.Repeat([]byte{1}, 20), Ciphertext: bytes.Repeat([]byte{2}, 40)}}
	return m.Marshal(), salt, tag
}

// A report through the real parleyd: mallory's messages reach alice
// franked; alice reports them and the server files a case; every lie in a
// report is refused with its reason; reports coalesce; a moderator
// decides the case with "parleyd admin cases", and the decision is in the
// append-only log.
func TestReportToCase(t *testing.T) {
	ctx := context.Background()
	data, url, _ := legalServer(t)
	malloryKey := newKey(t)
	reg := func(name string, key ed25519.PrivateKey) *transport.Conn {
		c, err := transport.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Register(ctx, name, key, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	mallory, alice, eve := reg("mallory", malloryKey), reg("alice", newKey(t)), reg("eve", newKey(t))
	conv := []byte("conversation-with-mallory")
	if err := mallory.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	ad, _ := alice.ListDevices(ctx)
	if _, err := mallory.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0, Payload: []byte("c"),
		Added: []string{ad[0].ID}, Welcome: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	contents := [][]byte{[]byte("you will regret this"), []byte("I know where you live")}
	salts := map[string][]byte{}
	for _, c := range contents {
		p, salt, _ := frankedPayload(t, conv, c)
		salts[string(c)] = salt
		if _, err := mallory.SendApplication(ctx, transport.NewMessageID(), conv, 1, p); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _, err := alice.Fetch(ctx, conv, 10)
	if err != nil {
		t.Fatal(err)
	}
	var reported []*parleypb.ReportedMessage
	for _, m := range msgs {
		if m.Kind != parleypb.Kind_APPLICATION {
			continue
		}
		if m.Frank == nil || m.SenderUser != "mallory" {
			t.Fatalf("an application message came unfranked: %+v", m)
		}
		var mm mls.MLSMessage
		if err := mm.Unmarshal(m.Payload); err != nil {
			t.Fatal(err)
		}
		tag, _ := franking.TagFromAAD(mm.PrivateMessage.AuthenticatedData)
		content := contents[len(reported)]
		reported = append(reported, &parleypb.ReportedMessage{SenderUser: m.SenderUser, SenderDeviceId: m.Sender,
			AcceptedUnixMs: m.Accepted.UnixMilli(), Content: content, Salt: salts[string(content)], FrankingTag: tag, Frank: m.Frank})
	}
	if len(reported) != 2 {
		t.Fatalf("%d application messages", len(reported))
	}
	report := func(c *transport.Conn, mutate func(m *parleypb.ReportedMessage)) (string, error) {
		var ms []*parleypb.ReportedMessage
		for _, m := range reported {
			cp := &parleypb.ReportedMessage{SenderUser: m.SenderUser, SenderDeviceId: m.SenderDeviceId, AcceptedUnixMs: m.AcceptedUnixMs,
				Content: m.Content, Salt: m.Salt, FrankingTag: m.FrankingTag, Frank: m.Frank}
			if mutate != nil {
				mutate(cp)
			}
			ms = append(ms, cp)
		}
		return c.Report(ctx, &parleypb.ReportRequest{ConversationId: conv, Reason: "harassment", Note: "threats", Messages: ms})
	}
	for _, tc := range []struct {
		name   string
		mutate func(m *parleypb.ReportedMessage)
		want   string
	}{
		{"altered", func(m *parleypb.ReportedMessage) { m.Content = []byte("worse words mallory never sent") }, "altered"},
		{"re-attributed", func(m *parleypb.ReportedMessage) { m.SenderUser = "eve" }, "forged"},
		{"another time", func(m *parleypb.ReportedMessage) { m.AcceptedUnixMs -= 1000 }, "forged"},
		{"forged frank", func(m *parleypb.ReportedMessage) { m.Frank = bytes.Repeat([]byte{9}, 64) }, "forged"},
		{"dated 40 days back", func(m *parleypb.ReportedMessage) { m.AcceptedUnixMs = time.Now().Add(-40 * 24 * time.Hour).UnixMilli() }, "forged"}, // a genuine old report: client TestReportTooOld
	} {
		if _, err := report(alice, tc.mutate); !errors.Is(err, wire.ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s report: %v, want BAD_REQUEST naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := report(eve, nil); !errors.Is(err, wire.ErrNotMember) {
		t.Errorf("a report by someone outside the conversation: %v", err)
	}
	if _, err := alice.Report(ctx, &parleypb.ReportRequest{ConversationId: conv, Reason: "because", Messages: reported}); !errors.Is(err, wire.ErrBadRequest) {
		t.Errorf("an unknown reason: %v", err)
	}
	if _, err := alice.Report(ctx, &parleypb.ReportRequest{ConversationId: conv, Reason: "spam", Note: strings.Repeat("x", 3000), Messages: reported}); !errors.Is(err, wire.ErrBadRequest) {
		t.Errorf("a huge note: %v", err)
	}
	id, err := report(alice, nil)
	if err != nil {
		t.Fatalf("the genuine report: %v", err)
	}
	again, err := report(alice, nil)
	if err != nil || again != id {
		t.Fatalf("the same messages reported again: case %q, %v (want the same case %q)", again, err, id)
	}

	list := legalCmd(t, 0, "cases", "list", "--data", data)
	if !strings.Contains(list, "mallory") || !strings.Contains(list, "open") {
		t.Fatalf("cases list: %s", list)
	}
	shown := legalCmd(t, 0, "cases", "show", id, "--data", data, "--json")
	type shownMessage struct {
		Verified bool   `json:"verified"`
		Text     string `json:"text"`
	}
	var c struct {
		Messages []shownMessage `json:"messages"`
	}
	// Messages are in the order accepted; two accepted in the same
	// millisecond are in tag order, which is random.
	if err := json.Unmarshal([]byte(shown), &c); err != nil || len(c.Messages) != 2 || !c.Messages[0].Verified || !c.Messages[1].Verified ||
		!slices.ContainsFunc(c.Messages, func(m shownMessage) bool { return m.Text == "I know where you live" }) {
		t.Fatalf("cases show: %s", shown)
	}
	legalCmd(t, 1, "cases", "decide", id, "--data", data, "--action", "smite", "--moderator", "mod1", "--reason", "x")
	legalCmd(t, 0, "cases", "decide", id, "--data", data, "--action", "suspend", "--until", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--moderator", "mod1", "--reason", "threats of violence")
	legalCmd(t, 1, "cases", "decide", id, "--data", data, "--action", "ban", "--moderator", "mod1", "--reason", "again")
	if out := legalCmd(t, 0, "cases", "show", id, "--data", data); !strings.Contains(out, "suspend by mod1: threats of violence") || !strings.Contains(out, "decided") {
		t.Fatalf("the decided case: %s", out)
	}

	// mallory is told at her next sign-in, can do nothing else, and may
	// appeal once; the appeal goes to another moderator.
	mc, err := transport.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	sess, err := mc.Authenticate(ctx, malloryKey)
	if err != nil || !strings.Contains(sess.Barred, "suspended until") || !strings.Contains(sess.Barred, "threats of violence") {
		t.Fatalf("mallory's session: %+v %v", sess, err)
	}
	if _, err := mc.SendApplication(ctx, transport.NewMessageID(), conv, 1, []byte("x")); !errors.Is(err, wire.ErrPermissionDenied) || !strings.Contains(err.Error(), "appeal") {
		t.Fatalf("a suspended account sending: %v", err)
	}
	if err := alice.Appeal(ctx, id, "not me"); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("appealing someone else's case: %v", err)
	}
	if err := mc.Appeal(ctx, id, "it was a joke between friends"); err != nil {
		t.Fatalf("appeal: %v", err)
	}
	if err := mc.Appeal(ctx, id, "again"); !errors.Is(err, wire.ErrAlreadyExists) {
		t.Fatalf("a second appeal: %v", err)
	}
	if out := legalCmd(t, 1, "cases", "decide", id, "--data", data, "--action", "dismiss", "--moderator", "mod1", "--reason", "fine"); !strings.Contains(out, "another moderator") {
		t.Fatalf("the same moderator deciding the appeal: %s", out)
	}
	legalCmd(t, 0, "cases", "decide", id, "--data", data, "--action", "dismiss", "--moderator", "lead1", "--reason", "appeal upheld")
	mc2, err := transport.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc2.Close()
	if sess, err := mc2.Authenticate(ctx, malloryKey); err != nil || sess.Barred != "" {
		t.Fatalf("still barred after the appeal was upheld: %q", sess.Barred)
	}
}
