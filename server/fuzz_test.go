package server_test

import (
	"testing"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// FuzzServerFrames sends arbitrary frames on an authenticated connection
// of a real server: each must be answered (never a crash or a dropped
// connection), whatever the fields contain.
func FuzzServerFrames(f *testing.F) {
	conv := []byte("g")
	id := make([]byte, 16)
	for _, body := range []parleypb.ClientFrameBody{
		&parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}},
		&parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{MessageId: id, ConversationId: conv, Epoch: 1, Kind: parleypb.Kind_COMMIT, Payload: []byte("p"), AddedDeviceIds: []string{"x"}, Welcome: []byte("w")}},
		&parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{MessageId: id, ConversationId: conv, Kind: parleypb.Kind_APPLICATION, Payload: []byte("p")}},
		&parleypb.ClientFrame_Fetch{Fetch: &parleypb.FetchRequest{ConversationId: conv, Limit: 5000}},
		&parleypb.ClientFrame_Ack{Ack: &parleypb.AckRequest{ConversationId: conv, Seq: 1 << 63}},
		&parleypb.ClientFrame_Ack{Ack: &parleypb.AckRequest{ConversationId: conv, Verdicts: []*parleypb.CommitVerdict{{CommitId: id, Refuse: true}, {CommitId: []byte("x")}}}},
		&parleypb.ClientFrame_Ack{Ack: &parleypb.AckRequest{ConversationId: conv, Seq: 1, Verdicts: []*parleypb.CommitVerdict{{CommitId: id}}}},
		&parleypb.ClientFrame_UploadKeyPackages{UploadKeyPackages: &parleypb.UploadKeyPackagesRequest{KeyPackages: []*parleypb.KeyPackage{{Ref: []byte("r"), Data: []byte("d")}}, LastResort: &parleypb.KeyPackage{}}},
		&parleypb.ClientFrame_FetchKeyPackages{FetchKeyPackages: &parleypb.FetchKeyPackagesRequest{Username: "alice", DeviceIds: []string{""}}},
		&parleypb.ClientFrame_CreateConversation{CreateConversation: &parleypb.CreateConversationRequest{ConversationId: make([]byte, 65)}},
		&parleypb.ClientFrame_ApproveLink{ApproveLink: &parleypb.ApproveLinkRequest{Code: "12345678"}},
		&parleypb.ClientFrame_RemoveDevice{RemoveDevice: &parleypb.RemoveDeviceRequest{DeviceId: "nope"}},
		&parleypb.ClientFrame_Register{Register: &parleypb.RegisterRequest{Username: "x"}},
		&parleypb.ClientFrame_AckInbox{AckInbox: &parleypb.AckInboxRequest{Seq: 3}},
		&parleypb.ClientFrame_ListConversations{ListConversations: &parleypb.ListConversationsRequest{}},
		&parleypb.ClientFrame_DeleteAccount{DeleteAccount: &parleypb.DeleteAccountRequest{Username: "bob"}},
	} {
		b, _ := wire.Encode(&parleypb.ClientFrame{RequestId: 9, Body: body})
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x09, 0xff})

	ts := newServer(f)
	alice := register(f, ts, "alice")
	group(f, "g", alice, register(f, ts, "bob"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if cf, err := wire.DecodeClientFrame(data); err == nil && cf.GetDeleteAccount().GetUsername() == "alice" {
			return // it would end the account every input runs as (TestDeleteAccount covers it)
		}
		rc := dialRaw(t, ts)
		h := rc.hello(t)
		if r := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: signAuth(alice, h)}); r.GetSession() == nil {
			t.Fatalf("authenticate: %v", r)
		}
		rc.writeRaw(t, websocket.MessageBinary, data)
		rc.response(t, 0)
		rc.ping(t)
	})
}
