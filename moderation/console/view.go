package console

import (
	"crypto/ed25519"
	"fmt"

	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/moderation"
)

// MessageView is a case message as moderators see it: whether its proof
// verifies now, under the server's franking key, and its text.
type MessageView struct {
	moderation.CaseMessage
	Verified bool   `json:"verified"`
	Problem  string `json:"problem,omitempty"`
	Text     string `json:"text"`
}

// VerifyMessages re-checks each message's proof of who sent it
// (franking.Verify under pub): a moderator sees whether the proof holds,
// not only that it held when the report came in. The console and
// "parleyd admin cases show" both use it.
func VerifyMessages(pub ed25519.PublicKey, msgs []moderation.CaseMessage) []MessageView {
	var views []MessageView
	for _, m := range msgs {
		v := MessageView{CaseMessage: m, Text: ContentText(m.Content)}
		err := franking.Verify(pub, franking.Reported{Context: franking.Context{Conversation: m.Conversation, SenderUser: m.SenderUser,
			SenderDevice: m.SenderDevice, Accepted: m.Accepted}, Content: m.Content, Salt: m.Salt, Tag: m.Tag, Frank: m.Frank}, m.Accepted, franking.DefaultMaxAge)
		v.Verified = err == nil
		if err != nil {
			v.Problem = err.Error()
		}
		views = append(views, v)
	}
	return views
}

// ContentText is the readable text of reported content, as far as the
// server can tell (the content if it is plain text, or a note that it is
// not).
func ContentText(b []byte) string {
	if s := string(b); isPrintable(s) {
		return s
	}
	return fmt.Sprintf("(%d bytes of content that is not plain text)", len(b))
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r == 0xFFFD || (r < 0x20 && r != '\n' && r != '\t') {
			return false
		}
	}
	return true
}
