package server_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// rawConn speaks the protocol frame by frame, to send what the client
// library never would.
type rawConn struct {
	ws *websocket.Conn
	id uint64
}

func dialRaw(t testing.TB, ts *testServer) *rawConn {
	t.Helper()
	ws, _, err := websocket.Dial(bg, strings.Replace(ts.url, "http://", "ws://", 1)+wire.PathWebSocket, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(64 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &rawConn{ws: ws}
}

func (rc *rawConn) writeRaw(t *testing.T, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := rc.ws.Write(ctx, typ, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (rc *rawConn) read(t *testing.T) (*parleypb.ServerFrame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	_, b, err := rc.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	f, err := wire.DecodeServerFrame(b)
	if err != nil {
		t.Fatalf("server sent a malformed frame: %v", err)
	}
	return f, nil
}

func (rc *rawConn) call(t *testing.T, body parleypb.ClientFrameBody) *parleypb.ServerFrame {
	t.Helper()
	rc.id++
	b, err := wire.Encode(&parleypb.ClientFrame{RequestId: rc.id, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	rc.writeRaw(t, websocket.MessageBinary, b)
	f := rc.response(t, rc.id)
	if f.RequestId != rc.id {
		t.Fatalf("response for request %d, want %d", f.RequestId, rc.id)
	}
	return f
}

// response reads frames until one that is not a push.
func (rc *rawConn) response(t *testing.T, id uint64) *parleypb.ServerFrame {
	t.Helper()
	for {
		f, err := rc.read(t)
		if err != nil {
			t.Fatalf("read response to %d: %v", id, err)
		}
		if f.GetPush() == nil {
			return f
		}
	}
}

func (rc *rawConn) hello(t *testing.T) *parleypb.HelloResponse {
	t.Helper()
	f := rc.call(t, &parleypb.ClientFrame_Hello{Hello: &parleypb.Hello{ProtocolVersion: wire.ProtocolVersion}})
	if f.GetHello() == nil {
		t.Fatalf("hello answered with %v", f)
	}
	return f.GetHello()
}

func (rc *rawConn) ping(t *testing.T) {
	t.Helper()
	if f := rc.call(t, &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}}); f.GetEmpty() == nil {
		t.Fatalf("ping answered with %v", f)
	}
}

func TestBadFrames(t *testing.T) {
	const maxFrame = 4096
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.MaxFrame = maxFrame })
	alice := register(t, ts, "alice")
	conv := group(t, "g", alice)

	rc := dialRaw(t, ts)
	f := rc.call(t, &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}})
	if f.GetError().GetCode() != parleypb.ErrorCode_BAD_REQUEST {
		t.Fatalf("request before Hello: %v", f)
	}
	rc.hello(t)

	errorFrame := func(what string, code parleypb.ErrorCode) {
		t.Helper()
		f, err := rc.read(t)
		if err != nil {
			t.Fatalf("%s: connection closed: %v", what, err)
		}
		if f.RequestId != 0 || f.GetError().GetCode() != code {
			t.Fatalf("%s: got %v, want connection-level %v", what, f, code)
		}
	}
	// Malformed protobuf: error, connection survives.
	rc.writeRaw(t, websocket.MessageBinary, []byte{0xff, 0xff, 0xff, 0xff})
	errorFrame("malformed frame", parleypb.ErrorCode_BAD_FRAME)
	rc.ping(t)
	rc.writeRaw(t, websocket.MessageBinary, nil)
	errorFrame("empty frame", parleypb.ErrorCode_BAD_FRAME)
	rc.writeRaw(t, websocket.MessageText, []byte("hello"))
	errorFrame("text frame", parleypb.ErrorCode_BAD_FRAME)
	rc.ping(t)
	// Somewhat oversized: FRAME_TOO_LARGE, connection survives.
	rc.writeRaw(t, websocket.MessageBinary, make([]byte, maxFrame+1))
	errorFrame("oversized frame", parleypb.ErrorCode_FRAME_TOO_LARGE)
	rc.ping(t)
	// A frame of zero request id is refused.
	b, _ := wire.Encode(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.PingRequest{}}})
	rc.writeRaw(t, websocket.MessageBinary, b)
	errorFrame("request id 0", parleypb.ErrorCode_BAD_REQUEST)

	// An oversized request is answered to its request id when the id
	// comes first (as every encoder of this package writes it).
	b, _ = wire.Encode(&parleypb.ClientFrame{RequestId: 77, Body: &parleypb.ClientFrame_Send{Send: &parleypb.SendRequest{
		MessageId: transport.NewMessageID(), ConversationId: conv, Kind: parleypb.Kind_APPLICATION, Payload: make([]byte, maxFrame)}}})
	rc.writeRaw(t, websocket.MessageBinary, b)
	if f, err := rc.read(t); err != nil || f.RequestId != 77 || f.GetError().GetCode() != parleypb.ErrorCode_FRAME_TOO_LARGE {
		t.Fatalf("oversized request: %v, %v", f, err)
	}
	rc.ping(t)
	// The client library knows the limit from Hello and refuses locally.
	_, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 0, bytes.Repeat([]byte("x"), maxFrame*2))
	if !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Fatalf("oversized send: %v", err)
	}
	if err := alice.conn.Ping(bg); err != nil {
		t.Fatalf("connection did not survive: %v", err)
	}
	if ms := fetchAll(t, alice, conv); len(ms) != 0 {
		t.Fatalf("oversized message stored")
	}

	// Far too large (over 4x the limit): the connection is closed with 1009.
	rc.writeRaw(t, websocket.MessageBinary, make([]byte, 5*maxFrame))
	_, err = rc.read(t)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("huge frame: got %v, want close 1009", err)
	}
	// The server and other connections are unaffected.
	if err := alice.conn.Ping(bg); err != nil {
		t.Fatal(err)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	ts := newServer(t)
	rc := dialRaw(t, ts)
	f := rc.call(t, &parleypb.ClientFrame_Hello{Hello: &parleypb.Hello{ProtocolVersion: 99}})
	if f.GetError().GetCode() != parleypb.ErrorCode_UNSUPPORTED_VERSION || !strings.Contains(f.GetError().GetMessage(), "speaks 1") {
		t.Fatalf("version 99: %v", f)
	}
	if _, err := rc.read(t); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("connection not closed after unsupported version: %v", err)
	}
}

// TestAuthorization checks every request type against an unauthenticated
// caller and, where it names someone else's resource, a device of another
// account.
func TestAuthorization(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	mallory := register(t, ts, "mallory")
	conv := group(t, "alice-conv", alice)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 0, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	linker := dial(t, ts)
	code, _, err := linker.RequestLink(bg, "alice", newKey())
	if err != nil {
		t.Fatal(err)
	}
	anon := dial(t, ts)
	id := transport.NewMessageID()

	type op func(c *transport.Conn) error
	tests := []struct {
		name      string
		op        op
		otherCode parleypb.ErrorCode // for mallory; 0: nothing to refuse
	}{
		{"approve_link", func(c *transport.Conn) error { _, err := c.ApproveLink(bg, code); return err }, parleypb.ErrorCode_NOT_FOUND},
		{"list_devices", func(c *transport.Conn) error { _, err := c.ListDevices(bg); return err }, 0},
		{"remove_device", func(c *transport.Conn) error { return c.RemoveDevice(bg, alice.id) }, parleypb.ErrorCode_PERMISSION_DENIED},
		{"upload_key_packages", func(c *transport.Conn) error {
			_, err := c.UploadKeyPackages(bg, []transport.KeyPackage{{Ref: []byte("r"), Data: []byte("d")}}, nil)
			return err
		}, 0},
		{"fetch_key_packages", func(c *transport.Conn) error { _, err := c.FetchKeyPackages(bg, "alice"); return err }, 0},
		{"fetch_key_packages_foreign_device", func(c *transport.Conn) error {
			_, err := c.FetchKeyPackages(bg, "mallory", alice.id)
			return err
		}, parleypb.ErrorCode_UNKNOWN_DEVICE},
		{"create_conversation", func(c *transport.Conn) error { return c.CreateConversation(bg, conv) }, parleypb.ErrorCode_ALREADY_EXISTS},
		{"send_application", func(c *transport.Conn) error {
			_, err := c.SendApplication(bg, id, conv, 0, []byte("x"))
			return err
		}, parleypb.ErrorCode_NOT_MEMBER},
		{"send_commit", func(c *transport.Conn) error {
			_, err := c.SendCommit(bg, transport.Commit{ID: id, ConversationID: conv, Epoch: 0, Payload: []byte("x"), Added: []string{mallory.id}, Welcome: []byte("w")})
			return err
		}, parleypb.ErrorCode_NOT_MEMBER},
		{"send_proposal", func(c *transport.Conn) error {
			_, err := c.SendProposal(bg, id, conv, 0, []byte("x"))
			return err
		}, parleypb.ErrorCode_NOT_MEMBER},
		{"fetch", func(c *transport.Conn) error { _, _, err := c.Fetch(bg, conv, 0); return err }, parleypb.ErrorCode_NOT_MEMBER},
		{"ack", func(c *transport.Conn) error { return c.Ack(bg, conv, 1) }, parleypb.ErrorCode_NOT_MEMBER},
		{"list_conversations", func(c *transport.Conn) error { _, err := c.ListConversations(bg); return err }, 0},
		{"fetch_inbox", func(c *transport.Conn) error { _, _, err := c.FetchInbox(bg, 0); return err }, 0},
		{"ack_inbox", func(c *transport.Conn) error { return c.AckInbox(bg, 0) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, "unauthenticated", tc.op(anon), parleypb.ErrorCode_UNAUTHENTICATED)
			if tc.otherCode != 0 {
				wantCode(t, "other account", tc.op(mallory.conn), tc.otherCode)
			}
		})
	}
	// Nothing changed for alice.
	if devs, _ := alice.conn.ListDevices(bg); len(devs) != 1 {
		t.Fatalf("alice has %d devices", len(devs))
	}
	ms := fetchAll(t, alice, conv)
	if len(ms) != 0 {
		// alice's own message was auto-acknowledged; anything else is foreign.
		t.Fatalf("conversation changed: %v", payloads(ms))
	}
	if c, _ := ts.st.Conversation(bg, conv); len(c.Members) != 1 || c.Epoch != 0 {
		t.Fatalf("conversation state changed: %+v", c)
	}
	// mallory's own views do not show alice's data.
	if infos, _ := mallory.conn.ListConversations(bg); len(infos) != 0 {
		t.Fatalf("mallory sees %d conversations", len(infos))
	}
	if in, _, _ := mallory.conn.FetchInbox(bg, 0); len(in) != 0 {
		t.Fatalf("mallory's inbox has %d entries", len(in))
	}
}

// TestSlowReaderDisconnected: a client that stops reading is cut off
// once its queue fills, and catches up from its cursor on reconnect.
func TestSlowReaderDisconnected(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.OutboundQueue = 4
		c.WriteTimeout = time.Second
		c.MaxFrame = 2 << 20
		c.Limits.RequestsPerAccount = server.Unlimited // 60 MiB from alice in a hurry
	})
	alice := register(t, ts, "alice")
	bob := register(t, ts, "bob")
	conv := group(t, "g", alice, bob)

	// A raw connection for bob that never reads.
	rc := dialRaw(t, ts)
	h := rc.hello(t)
	sig := signAuth(bob, h)
	if f := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: sig}); f.GetSession() == nil {
		t.Fatalf("auth: %v", f)
	}
	big := bytes.Repeat([]byte("z"), 1<<20)
	sent := 0
	for i := range 60 {
		if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, big); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent++
	}
	// Reading now finds the connection closed by the server.
	var err error
	for range 100 {
		if _, err = rc.read(t); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("slow reader was not disconnected")
	}
	// It catches up from its cursor.
	n := 0
	for {
		ms, more, err := bob.conn.Fetch(bg, conv, 0)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ms)
		if len(ms) > 0 {
			bob.conn.Ack(bg, conv, ms[len(ms)-1].Seq)
		}
		if !more {
			break
		}
	}
	if n != sent {
		t.Fatalf("caught up with %d of %d", n, sent)
	}
}
