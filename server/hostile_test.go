package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// stillServes asserts that a well-behaved pair of devices can exchange a
// message promptly while an attack is going on.
func stillServes(t *testing.T, a, b *device, conv []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	payload := fmt.Appendf(nil, "still served %d", time.Now().UnixNano())
	if _, err := a.conn.SendApplication(ctx, transport.NewMessageID(), conv, 1, payload); err != nil {
		t.Fatalf("well-behaved send during attack: %v", err)
	}
	ms, _, err := b.conn.Fetch(ctx, conv, 1000)
	if err != nil {
		t.Fatalf("well-behaved fetch during attack: %v", err)
	}
	if len(ms) == 0 || !bytes.Equal(ms[len(ms)-1].Payload, payload) {
		t.Fatalf("well-behaved device did not get its message")
	}
	if err := b.conn.Ack(ctx, conv, ms[len(ms)-1].Seq); err != nil {
		t.Fatal(err)
	}
}

// A client that pipelines requests and never reads the responses is
// disconnected once its bounded outbound queue fills (in bytes, not only
// frames), and the server keeps serving others.
func TestHostileNeverReads(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.WriteTimeout = time.Second
		c.OutboundBytes = 1 << 20 // raised to 4 × MaxFrame + 64 KiB
		c.MaxFrame = 64 << 10
	})
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	mallory, eve := register(t, ts, "mallory"), register(t, ts, "eve")
	mconv := group(t, "m", mallory, eve)
	for range 8 {
		if _, err := mallory.conn.SendApplication(bg, transport.NewMessageID(), mconv, 1, bytes.Repeat([]byte("x"), 60<<10)); err != nil {
			t.Fatal(err)
		}
	}
	rc := dialRaw(t, ts)
	h := rc.hello(t)
	if f := rc.call(t, &parleypb.ClientFrame_Authenticate{Authenticate: signAuth(eve, h)}); f.GetSession() == nil {
		t.Fatalf("auth: %v", f)
	}
	// Each Fetch answer is ~480 KiB; ask for many without reading.
	fetch, _ := wire.Encode(&parleypb.ClientFrame{RequestId: 99, Body: &parleypb.ClientFrame_Fetch{Fetch: &parleypb.FetchRequest{ConversationId: mconv, Limit: 1000}}})
	const requests = 200 // ~96 MiB of responses, far beyond socket buffers
	for i := 0; i < requests; i++ {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		err := rc.ws.Write(ctx, websocket.MessageBinary, fetch)
		cancel()
		if err != nil {
			break // the server already closed the connection
		}
		if i == 20 {
			stillServes(t, alice, bob, conv)
		}
	}
	// Without reading, wait for the server to cut the connection off
	// (its queue full), then read what it did send: the connection must
	// end before all responses arrive.
	for deadline := time.Now().Add(time.Minute); ts.srv.SlowClientsDisconnected() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client that never reads was not disconnected")
		}
	}
	got := 0
	for {
		_, err := rc.read(t)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("client that never reads was not disconnected")
			}
			break
		}
		got++
	}
	if got >= requests {
		t.Fatalf("all %d responses were queued for a client that did not read", got)
	}
	// The server held at most its bounded queue for the attacker, never
	// the 96 MiB it asked for: measured on the queue itself, not on the
	// heap of a process other tests share.
	if peak := ts.srv.OutboundQueuePeak(); peak > 1<<20 || peak == 0 {
		t.Errorf("most bytes queued for one connection: %d, want at most OutboundBytes (1 MiB)", peak)
	}
	stillServes(t, alice, bob, conv)
}

// Frames over 4 × max-frame close the connection (1009); an endless frame
// is cut off at the same limit, never buffered whole.
func TestHostileHugeAndEndlessFrames(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.MaxFrame = 64 << 10 })
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)

	rc := dialRaw(t, ts)
	rc.hello(t)
	rc.writeRaw(t, websocket.MessageBinary, bytes.Repeat([]byte{1}, 4*(64<<10)+1))
	if _, err := rc.read(t); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("huge frame: got %v, want close 1009", err)
	}

	// An endless message: write chunks into one frame until the server
	// closes the connection.
	rc2 := dialRaw(t, ts)
	rc2.hello(t)
	done := make(chan error, 1)
	go func() {
		w, err := rc2.ws.Writer(bg, websocket.MessageBinary)
		if err != nil {
			done <- err
			return
		}
		chunk := bytes.Repeat([]byte{7}, 32<<10)
		for i := 0; ; i++ {
			if _, err := w.Write(chunk); err != nil {
				done <- nil
				return
			}
			if i > 4096 { // 128 MiB and still accepted: the limit failed
				done <- errors.New("server accepted 128 MiB in one frame")
				return
			}
		}
	}()
	go func() {
		// Reading processes the server's close frame.
		for {
			if _, _, err := rc2.ws.Read(bg); err != nil {
				rc2.ws.CloseNow()
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("endless frame not cut off")
	}
	stillServes(t, alice, bob, conv)
}

// Connections must authenticate within the timeout, and unauthenticated
// connections are capped per source address.
func TestHostileUnauthenticated(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		// Long enough that registering and filling the cap finish well
		// inside it even under -race on a loaded machine.
		c.AuthTimeout = 3 * time.Second
		c.MaxUnauthenticatedPerAddr = 5
	})
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)

	// Fill the cap with connections that never authenticate.
	var idle []*rawConn
	for range 5 {
		rc := dialRaw(t, ts)
		rc.hello(t)
		idle = append(idle, rc)
	}
	_, resp, err := websocket.Dial(bg, strings.Replace(ts.url, "http://", "ws://", 1)+wire.PathWebSocket, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connection over the unauthenticated cap: err %v, resp %v; want 503", err, resp)
	}
	stillServes(t, alice, bob, conv) // authenticated connections are not counted
	// The timeout closes them, which frees the cap.
	for _, rc := range idle {
		if _, err := rc.read(t); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("unauthenticated connection: got %v, want close 1008 after the auth timeout", err)
		}
	}
	var ok bool
	for range 250 {
		ws, _, err := websocket.Dial(bg, strings.Replace(ts.url, "http://", "ws://", 1)+wire.PathWebSocket, nil)
		if err == nil {
			ws.CloseNow()
			ok = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ok {
		t.Fatal("cap not released after the auth timeout")
	}
	// An authenticated connection is not closed by the timeout.
	time.Sleep(3500 * time.Millisecond)
	stillServes(t, alice, bob, conv)
}

// A captured Authenticate or Register frame replayed on another
// connection fails: signatures cover the per-connection challenge.
func TestHostileReplay(t *testing.T) {
	ts := newServer(t)
	alice := register(t, ts, "alice")
	rc := dialRaw(t, ts)
	h := rc.hello(t)
	auth := &parleypb.ClientFrame_Authenticate{Authenticate: signAuth(alice, h)}
	if f := rc.call(t, auth); f.GetSession() == nil {
		t.Fatalf("auth: %v", f)
	}
	key := newKey()
	reg := &parleypb.ClientFrame_Register{Register: &parleypb.RegisterRequest{Username: "carol", PublicKey: key.Public().(ed25519.PublicKey)}}
	rc3 := dialRaw(t, ts)
	h3 := rc3.hello(t)
	reg.Register.Signature = ed25519.Sign(key, wire.ChallengeMessage(h3.Challenge, h3.AuthContext, wire.PurposeRegister))

	rc2 := dialRaw(t, ts)
	rc2.hello(t)
	if f := rc2.call(t, auth); f.GetError().GetCode() != parleypb.ErrorCode_UNAUTHENTICATED {
		t.Fatalf("replayed authenticate: %v", f)
	}
	if f := rc2.call(t, reg); f.GetError().GetCode() != parleypb.ErrorCode_UNAUTHENTICATED {
		t.Fatalf("register signed for another connection: %v", f)
	}
	// The same signature on its own connection works once.
	if f := rc3.call(t, reg); f.GetSession() == nil {
		t.Fatalf("register: %v", f)
	}
}

// Draining another account's key packages: the ordinary ones run out, the
// last-resort package keeps being handed out (never consumed), and the
// drainer hits RATE_LIMITED with a retry-after, while others can still
// fetch.
func TestHostileKeyPackageDrain(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.KeyPackageFetchPerDev = server.Limit{N: 6, Per: time.Minute}
	})
	bob := register(t, ts, "bob")
	if _, err := bob.conn.UploadKeyPackages(bg, []transport.KeyPackage{{Ref: []byte("r1"), Data: []byte("k1")}, {Ref: []byte("r2"), Data: []byte("k2")}},
		&transport.KeyPackage{Ref: []byte("last"), Data: []byte("last-resort")}); err != nil {
		t.Fatal(err)
	}
	mallory, alice := register(t, ts, "mallory"), register(t, ts, "alice")
	var got []string
	for range 6 {
		kps, err := mallory.conn.FetchKeyPackages(bg, "bob")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(kps[0].KeyPackage.Data))
	}
	if want := "k1 k2 last-resort last-resort last-resort last-resort"; strings.Join(got, " ") != want {
		t.Fatalf("fetched %q, want %q", got, want)
	}
	_, err := mallory.conn.FetchKeyPackages(bg, "bob")
	wantCode(t, "7th fetch", err, parleypb.ErrorCode_RATE_LIMITED)
	var we *wire.Error
	if !errors.As(err, &we) || we.RetryAfter <= 0 || we.RetryAfter > time.Minute {
		t.Fatalf("RATE_LIMITED without a sensible retry-after: %v", err)
	}
	kps, err := alice.conn.FetchKeyPackages(bg, "bob")
	if err != nil || len(kps) != 1 || string(kps[0].KeyPackage.Data) != "last-resort" {
		t.Fatalf("alice after the drain: %v %v", kps, err)
	}
}

func TestRateLimits(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.Limits.RegisterPerAddr = server.Limit{N: 3, Per: time.Hour}
		c.Limits.SendPerAccount = server.Limit{N: 5, Per: time.Hour}
	})
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	register(t, ts, "carol")
	c := dial(t, ts)
	_, err := c.Register(bg, "dave", newKey(), "")
	wantCode(t, "4th registration from one address", err, parleypb.ErrorCode_RATE_LIMITED)
	var we *wire.Error
	if !errors.As(err, &we) || we.RetryAfter < 59*time.Minute {
		t.Fatalf("registration retry-after: %v", err)
	}
	conv := group(t, "g", alice, bob) // the add commit is send 1
	for i := range 4 {
		if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("hi")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_, err = alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("one too many"))
	wantCode(t, "6th send", err, parleypb.ErrorCode_RATE_LIMITED)
	// Another account is not affected.
	if _, err := bob.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("bob")); err != nil {
		t.Fatal(err)
	}
	// Counters live in memory only: a restart on the same data resets them.
	ts.stop()
	ts2 := startServer(t, ts.dir, func(c *server.Config) {
		c.Limits.SendPerAccount = server.Limit{N: 5, Per: time.Hour}
	})
	alice.reconnect(t, ts2)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("after restart")); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
}

// faultStore makes every write fail as a full or read-only disk would
// (store.ErrUnavailable) while failing is set; reads pass through.
type faultStore struct {
	store.Store
	failing atomic.Bool
}

var errDiskFull = fmt.Errorf("%w: injected: %w", store.ErrUnavailable, syscall.ENOSPC)

func (f *faultStore) Append(ctx context.Context, a store.Append) (store.AppendResult, error) {
	if f.failing.Load() {
		return store.AppendResult{}, errDiskFull
	}
	return f.Store.Append(ctx, a)
}

func (f *faultStore) Ack(ctx context.Context, dev string, conv []byte, seq uint64) error {
	if f.failing.Load() {
		return errDiskFull
	}
	return f.Store.Ack(ctx, dev, conv, seq)
}

func (f *faultStore) CreateConversation(ctx context.Context, id []byte, creator string) error {
	if f.failing.Load() {
		return errDiskFull
	}
	return f.Store.CreateConversation(ctx, id, creator)
}

type faultBlobs struct {
	store.Blobs
	failing *atomic.Bool
}

func (f faultBlobs) Put(ctx context.Context, owner string, r io.Reader, lim store.PutLimits) (string, int64, error) {
	if f.failing.Load() {
		io.Copy(io.Discard, io.LimitReader(r, 4096))
		return "", 0, fmt.Errorf("blobstore: write: %w", syscall.ENOSPC)
	}
	return f.Blobs.Put(ctx, owner, r, lim)
}

// With the disk full (simulated by a store wrapper: root ignores
// read-only permissions and no small tmpfs can be mounted unprivileged),
// sends are refused with STORAGE_UNAVAILABLE and a retry-after, uploads
// with 507, reads keep working, and everything works again when space
// returns; nothing acknowledged is lost. sqlitestore's own mapping of a
// real SQLITE_FULL is tested in package sqlitestore.
func TestStorageUnavailable(t *testing.T) {
	var fs *faultStore
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		fs = &faultStore{Store: c.Store}
		c.Store = fs
		c.Blobs = faultBlobs{Blobs: c.Blobs, failing: &fs.failing}
	})
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("before")); err != nil {
		t.Fatal(err)
	}
	fs.failing.Store(true)
	_, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("while full"))
	wantCode(t, "send on a full disk", err, parleypb.ErrorCode_STORAGE_UNAVAILABLE)
	var we *wire.Error
	if !errors.As(err, &we) || we.RetryAfter <= 0 {
		t.Fatalf("no retry-after: %v", err)
	}
	if err := alice.conn.CreateConversation(bg, []byte("new")); !errors.Is(err, wire.ErrStorageUnavailable) {
		t.Fatalf("create conversation on a full disk: %v", err)
	}
	_, err = alice.conn.UploadBlob(bg, bytes.NewReader(make([]byte, 10_000)), 10_000, nil)
	var he *transport.HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("upload on a full disk: %v, want 507", err)
	}
	// Reads still work.
	ms, _, err := bob.conn.Fetch(bg, conv, 0)
	if err != nil || len(ms) != 1 || string(ms[0].Payload) != "before" {
		t.Fatalf("fetch on a full disk: %v %v", payloads(ms), err)
	}
	if _, err := bob.conn.ListConversations(bg); err != nil {
		t.Fatal(err)
	}
	fs.failing.Store(false)
	if _, err := alice.conn.SendApplication(bg, transport.NewMessageID(), conv, 1, []byte("after")); err != nil {
		t.Fatalf("send after space returned: %v", err)
	}
	if _, err := alice.conn.UploadBlob(bg, bytes.NewReader(make([]byte, 10_000)), 10_000, nil); err != nil {
		t.Fatalf("upload after space returned: %v", err)
	}
	ms = fetchAll(t, bob, conv)
	if got := strings.Join(payloads(ms), ","); got != "before,after" {
		t.Fatalf("after recovery bob has %q", got)
	}
}

// A third user cannot take the id of someone else's direct conversation
// (it would keep them from ever talking directly); the two users can,
// and 32-byte ids are for direct conversations only.
func TestDirectConversationIDsReserved(t *testing.T) {
	ts := newServer(t)
	alice, bob, mallory := register(t, ts, "alice"), register(t, ts, "bob"), register(t, ts, "mallory")
	id := wire.DirectConversationID("alice", "bob")
	wantCode(t, "squat without a peer", mallory.conn.CreateConversation(bg, id), parleypb.ErrorCode_BAD_REQUEST)
	wantCode(t, "squat naming a peer", mallory.conn.CreateDirectConversation(bg, id, "bob"), parleypb.ErrorCode_BAD_REQUEST)
	wantCode(t, "squat naming both", mallory.conn.CreateDirectConversation(bg, id, "alice"), parleypb.ErrorCode_BAD_REQUEST)
	wantCode(t, "direct with oneself", alice.conn.CreateDirectConversation(bg, wire.DirectConversationID("alice", "alice"), "alice"), parleypb.ErrorCode_BAD_REQUEST)
	wantCode(t, "other id naming a peer", alice.conn.CreateDirectConversation(bg, []byte("short"), "bob"), parleypb.ErrorCode_BAD_REQUEST)
	if err := bob.conn.CreateDirectConversation(bg, id, "alice"); err != nil {
		t.Fatalf("bob creates his direct conversation with alice: %v", err)
	}
	wantCode(t, "created twice", alice.conn.CreateDirectConversation(bg, id, "bob"), parleypb.ErrorCode_ALREADY_EXISTS)
	if err := mallory.conn.CreateConversation(bg, bytes.Repeat([]byte{7}, 16)); err != nil {
		t.Fatalf("a 16-byte group id: %v", err)
	}
}

// Deleting an account needs the caller's own name as confirmation,
// removes its devices from every conversation, closes its connections
// and keeps the name taken.
func TestDeleteAccount(t *testing.T) {
	ts := newServer(t)
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", bob, alice)
	alice2 := dial(t, ts)
	if _, err := alice2.Authenticate(bg, alice.key); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "delete with another name", alice.conn.DeleteAccount(bg, "bob"), parleypb.ErrorCode_BAD_REQUEST)
	if err := alice.conn.DeleteAccount(bg, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	// Both of alice's connections are closed.
	for i, c := range []*transport.Conn{alice.conn, alice2} {
		deadline := time.Now().Add(5 * time.Second)
		for c.Ping(bg) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("alice's connection %d still open after the deletion", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// alice can no longer sign in, and no one can take her name.
	if _, err := dial(t, ts).Authenticate(bg, alice.key); err == nil {
		t.Fatal("a deleted account's key still signs in")
	}
	if _, err := dial(t, ts).Register(bg, "alice", newKey(), ""); !errors.Is(err, wire.ErrAlreadyExists) {
		t.Fatalf("registering a deleted name: %v, want ALREADY_EXISTS", err)
	}
	convs, err := bob.conn.ListConversations(bg)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(convs, func(ci transport.ConversationInfo) bool { return bytes.Equal(ci.ID, conv) })
	if i < 0 || !slices.Equal(convs[i].Members, []string{bob.id}) {
		t.Fatalf("bob's conversations after alice's deletion: %+v, want the group with only bob's device", convs)
	}
	if kps, err := bob.conn.FetchKeyPackages(bg, "alice"); err == nil && len(kps) != 0 {
		t.Fatalf("key packages of a deleted account: %d", len(kps))
	}
}

// Account deletion runs Config.ForgetAccount first (parleyd deletes the
// user's public channels there); if it fails, the account is kept and the
// user is told to retry.
func TestDeleteAccountForgetsFirst(t *testing.T) {
	var fail atomic.Bool
	var forgotten []string
	var mu sync.Mutex
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.ForgetAccount = func(ctx context.Context, user string) error {
			if fail.Load() {
				return errors.New("channels database is locked")
			}
			mu.Lock()
			forgotten = append(forgotten, user)
			mu.Unlock()
			return nil
		}
	})
	alice := register(t, ts, "alice")
	fail.Store(true)
	wantCode(t, "delete while forgetting fails", alice.conn.DeleteAccount(bg, "alice"), parleypb.ErrorCode_STORAGE_UNAVAILABLE)
	if _, err := dial(t, ts).Authenticate(bg, alice.key); err != nil {
		t.Fatalf("account gone although its deletion failed: %v", err)
	}
	fail.Store(false)
	if err := alice.conn.DeleteAccount(bg, "alice"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forgotten) != 1 || forgotten[0] != "alice" {
		t.Fatalf("ForgetAccount calls %v, want [alice]", forgotten)
	}
}

// Sockets that never send a request are capped per source address and
// closed by the header timeout; keep-alive connections that send no next
// request are closed by the idle timeout. Neither can use up the server's
// file descriptors, and the cap frees as they go.
func TestHostileSilentSockets(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.MaxUnauthenticatedPerAddr = 3
		c.HeaderTimeout = 2 * time.Second
		c.IdleTimeout = 500 * time.Millisecond
	})
	alice, bob := register(t, ts, "alice"), register(t, ts, "bob")
	conv := group(t, "g", alice, bob)
	addr := strings.TrimPrefix(ts.url, "http://")

	var silent []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// The fourth is closed at once, before any timeout.
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := over.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Fatalf("socket over the cap: read %v, want the server to close it", err)
	}
	stillServes(t, alice, bob, conv) // existing connections are not affected
	// The header timeout closes the silent ones.
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
			t.Fatalf("silent socket %d: read %v, want closed by the header timeout", i, err)
		}
	}
	// The cap is free again: a keep-alive request is answered, and the
	// connection is closed once it has been idle for IdleTimeout.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: parley\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("request after the cap freed: %v %v (want 404: /metrics is not on the main listener)", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	// Nothing else closes an idle keep-alive connection (the header
	// timeout starts with a request): without IdleTimeout the read below
	// would wait for its own generous deadline and fail. The close may
	// come late on a busy machine, never early: at least IdleTimeout
	// after the response.
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Fatalf("idle keep-alive connection: read %v, want closed by the idle timeout", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before the idle timeout (500ms): something else closed it", d)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
