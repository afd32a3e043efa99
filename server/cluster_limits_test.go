package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store/blobpg"
	"github.com/parleychat/parley/store/pgstore"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

func TestMain(m *testing.M) {
	// Connections park on the idle poller after 20 ms without input
	// instead of 5 s, so that every test also exercises parking and
	// waking (poll.go) many times over.
	server.SetParkAfter(20 * time.Millisecond)
	os.Exit(pgtest.Main(m))
}

// pgNode is a parleyd node on a shared PostgreSQL database, with its
// attachments' files in a shared directory, as parleyd --db runs it.
type pgNode struct {
	url string
	st  *pgstore.Store
	srv *server.Server
}

func startPGNode(t *testing.T, dsn, blobDir string, mod func(*server.Config)) *pgNode {
	t.Helper()
	ctx := context.Background()
	st, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobpg.Open(ctx, blobDir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, Blobs: blobs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
		blobs.Close()
	})
	return &pgNode{url: "http://" + ln.Addr().String(), st: st, srv: srv}
}

// twoPGNodes starts two nodes on one new database with the same blob
// token key (as an operator copies blob-token.key) and mod's settings.
func twoPGNodes(t *testing.T, mod func(*server.Config)) (a, b *pgNode, key []byte) {
	dsn := pgtest.DB(t)
	blobDir := filepath.Join(t.TempDir(), "blobs")
	key = bytes.Repeat([]byte{0x5a}, server.BlobTokenKeySize)
	withKey := func(cfg *server.Config) {
		cfg.BlobTokenKey = key
		if mod != nil {
			mod(cfg)
		}
	}
	return startPGNode(t, dsn, blobDir, withKey), startPGNode(t, dsn, blobDir, withKey), key
}

func dialURL(t *testing.T, url string) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The attacker's move against per-node limits: one account connects to
// two nodes and alternates between them, sending messages and uploading
// attachments. Each limit holds near its value across both nodes (within
// a lease per node either way), not at twice it, as it did when each
// node counted alone.
func TestTwoNodesSharedLimits(t *testing.T) {
	ctx := context.Background()
	sends := server.Limit{N: 64, Per: time.Hour}   // lease 4
	uploads := server.Limit{N: 16, Per: time.Hour} // lease 1
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) {
		cfg.Limits.SendPerAccount = sends
		cfg.Limits.UploadPerAccount = uploads
	})
	key := newKey()
	onA := dialURL(t, a.url)
	if _, err := onA.Register(ctx, "mallory", key, ""); err != nil {
		t.Fatal(err)
	}
	onB := dialURL(t, b.url)
	if _, err := onB.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	conns := []*transport.Conn{onA, onB}
	conv := transport.NewMessageID()
	if err := onA.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}

	within := func(what string, got int, l server.Limit) {
		t.Helper()
		lease := l.N / 16
		t.Logf("%s over two nodes: %d accepted of a limit of %d", what, got, l.N)
		if got > l.N+2*lease || got < l.N-2*lease {
			t.Fatalf("%s over two nodes: %d accepted; want %d ± %d (each node counting alone gives %d)", what, got, l.N, 2*lease, 2*l.N)
		}
	}
	within("sends", sendUntilRefused(t, conns, [][]byte{conv, conv}, sends), sends)

	uploaded, refused := 0, 0
	for i := 0; refused < 4; i++ {
		_, err := conns[i%2].UploadBlob(ctx, strings.NewReader("x"), 1, nil)
		switch {
		case err == nil:
			uploaded++
		case strings.Contains(err.Error(), "RATE_LIMITED"):
			refused++
		default:
			t.Fatalf("upload %d: %v", i, err)
		}
		if i > 4*uploads.N {
			t.Fatal("uploads over two nodes were never refused")
		}
	}
	within("uploads", uploaded, uploads)
}

// The same move from one source address: registering accounts
// alternately through two nodes, and sending from two accounts on it.
// The limits per address hold across both nodes, not at twice their
// value as when each node counted alone.
func TestTwoNodesSharedAddressLimits(t *testing.T) {
	regs := server.Limit{N: 6, Per: time.Hour}   // under 16: exact
	sends := server.Limit{N: 64, Per: time.Hour} // lease 4
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) {
		cfg.Limits.RegisterPerAddr = regs
		cfg.Limits.SendPerAddr = sends
	})
	nodes := []*pgNode{a, b}
	registered := 0
	var conns []*transport.Conn
	for i := range 3 * regs.N {
		c := dialURL(t, nodes[i%2].url)
		_, err := c.Register(bg, fmt.Sprintf("user%02d", i), newKey(), "")
		if errors.Is(err, &wire.Error{Code: parleypb.ErrorCode_RATE_LIMITED}) {
			continue
		}
		if err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
		registered++
		conns = append(conns, c)
	}
	if registered != regs.N {
		t.Fatalf("%d accounts registered from one address over two nodes, limit %d (each node counting alone gives %d)", registered, regs.N, 2*regs.N)
	}
	convs := make([][]byte, 2)
	for i := range convs {
		convs[i] = transport.NewMessageID()
		if err := conns[i].CreateConversation(bg, convs[i]); err != nil {
			t.Fatal(err)
		}
	}
	sent := sendUntilRefused(t, conns[:2], convs, sends)
	lease := sends.N / 16
	if sent > sends.N+2*lease || sent < sends.N-2*lease {
		t.Fatalf("%d sends from one address over two nodes; want %d ± %d (each node counting alone gives %d)", sent, sends.N, 2*lease, 2*sends.N)
	}
}

// sendUntilRefused sends through conns[i] to convs[i] in turn until four
// sends were refused RATE_LIMITED, and returns how many were accepted;
// l is the limit expected to refuse them.
func sendUntilRefused(t *testing.T, conns []*transport.Conn, convs [][]byte, l server.Limit) int {
	t.Helper()
	sent, refused := 0, 0
	for i := 0; refused < 4; i++ {
		k := i % len(conns)
		_, err := conns[k].SendApplication(bg, transport.NewMessageID(), convs[k], 0, []byte("spam"))
		switch {
		case err == nil:
			sent++
		case errors.Is(err, &wire.Error{Code: parleypb.ErrorCode_RATE_LIMITED}):
			refused++
		default:
			t.Fatalf("send %d: %v", i, err)
		}
		if i > 4*l.N {
			t.Fatal("sends over two nodes were never refused")
		}
	}
	return sent
}

// httpDo sends one request with a bearer token and returns its status and
// body.
func httpDo(t *testing.T, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A blob token issued by node A uploads and downloads on node B; once the
// device is removed through node A, its token is refused on B (and on A)
// at once, not at its expiry. A token made with another key is refused.
func TestTwoNodesBlobTokens(t *testing.T) {
	ctx := context.Background()
	a, b, key := twoPGNodes(t, nil)
	onA := dialURL(t, a.url)
	sess, err := onA.Register(ctx, "alice", newKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	tok := sess.BlobToken
	data := []byte("ciphertext of an attachment")
	code, body := httpDo(t, "POST", b.url+"/v1/blobs", tok, bytes.NewReader(data))
	if code != http.StatusCreated {
		t.Fatalf("upload on node B with node A's token: HTTP %d: %s", code, body)
	}
	id := string(body[strings.Index(string(body), `"id":"`)+6:])
	id = id[:strings.IndexByte(id, '"')]
	if code, got := httpDo(t, "GET", b.url+"/v1/blobs/"+id, tok, nil); code != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download on node B with node A's token: HTTP %d: %q", code, got)
	}

	// Tokens for alice's device made with another key (a forger's) or
	// past their expiry are refused by both nodes; the same token under
	// the nodes' key is accepted, so it is the key that tells them apart.
	if code, _ := httpDo(t, "GET", b.url+"/v1/blobs/"+id, server.BlobTokenFor(key, sess.DeviceID, time.Hour), nil); code != http.StatusOK {
		t.Fatalf("a token made with the nodes' key: HTTP %d", code)
	}
	forged := server.BlobTokenFor(bytes.Repeat([]byte{0x11}, server.BlobTokenKeySize), sess.DeviceID, time.Hour)
	expired := server.BlobTokenFor(key, sess.DeviceID, -time.Minute)
	for _, n := range []*pgNode{a, b} {
		for what, tok := range map[string]string{"under another key": forged, "expired": expired, "none": ""} {
			if code, _ := httpDo(t, "GET", n.url+"/v1/blobs/"+id, tok, nil); code != http.StatusUnauthorized {
				t.Fatalf("a token %s: HTTP %d, want 401", what, code)
			}
		}
	}

	if err := onA.RemoveDevice(ctx, sess.DeviceID); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*pgNode{"B": b, "A": a} {
		if code, _ := httpDo(t, "GET", n.url+"/v1/blobs/"+id, tok, nil); code != http.StatusUnauthorized {
			t.Fatalf("the removed device's token downloads on node %s: HTTP %d", name, code)
		}
		if code, _ := httpDo(t, "POST", n.url+"/v1/blobs", tok, strings.NewReader("more")); code != http.StatusUnauthorized {
			t.Fatalf("the removed device's token uploads on node %s: HTTP %d", name, code)
		}
	}
}

// A token issued before the account was suspended ends with the
// decision (Config.Sanction is asked on every use), not at its expiry.
func TestBlobTokenEndsWhenBarred(t *testing.T) {
	var barred atomic.Bool
	ts := startServer(t, t.TempDir(), func(cfg *server.Config) {
		cfg.Sanction = func(ctx context.Context, user string) (bool, string, error) {
			return barred.Load(), "suspended", nil
		}
	})
	d := register(t, ts, "carol")
	tok := d.conn.Session().BlobToken
	if code, body := httpDo(t, "POST", ts.url+"/v1/blobs", tok, strings.NewReader("x")); code != http.StatusCreated {
		t.Fatalf("upload before the suspension: HTTP %d: %s", code, body)
	}
	barred.Store(true)
	if code, _ := httpDo(t, "POST", ts.url+"/v1/blobs", tok, strings.NewReader("x")); code != http.StatusUnauthorized {
		t.Fatalf("upload with a token from before the suspension: HTTP %d, want 401", code)
	}
}

// An account holding connections on two nodes is capped across both:
// with a cap of 2, one on A and one on B leave no room for a third on
// either (each node counting alone would take two each); closing one
// makes room again.
func TestTwoNodesConnsPerAccount(t *testing.T) {
	ctx := context.Background()
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) { cfg.MaxConnsPerAccount = 2 })
	key := newKey()
	first := dialURL(t, a.url)
	if _, err := first.Register(ctx, "mallory", key, ""); err != nil {
		t.Fatal(err)
	}
	second := dialURL(t, b.url)
	if _, err := second.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*pgNode{"A": a, "B": b} {
		_, err := dialURL(t, n.url).Authenticate(ctx, key)
		wantCode(t, "a third connection on node "+name, err, parleypb.ErrorCode_RATE_LIMITED)
	}
	second.Close()
	// B releases the count when it sees the close; A then has room.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := dialURL(t, a.url).Authenticate(ctx, key)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room on A after closing the connection on B: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Uploads in progress are capped across nodes too: with a cap of one,
// an upload held open on node A makes the account's upload on node B
// TOO_MANY_UPLOADS (each node counting alone would take it); once A's
// finishes, B takes one.
func TestTwoNodesUploadsInProgress(t *testing.T) {
	ctx := context.Background()
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) { cfg.MaxUploadsPerAccount = 1 })
	c := dialURL(t, a.url)
	sess, err := c.Register(ctx, "mallory", newKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", a.url+"/v1/blobs", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 2
	req.Header.Set("Authorization", "Bearer "+sess.BlobToken)
	held := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	if _, err := pw.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// A takes the place when it starts reading the body. Wait for it in
	// the shared store, reading the count: probing with uploads on B (or
	// AcquireSlot) would hold the one place now and then, and A's own
	// acquisition could meet it and be refused.
	deadline := time.Now().Add(30 * time.Second) // generous: A may be slow to start its handler under -race on a loaded machine
	for {
		var held int64
		if err := a.st.Pool().QueryRow(ctx, `SELECT COALESCE(SUM(n), 0) FROM slots WHERE key = $1 AND lease_ends > $2`,
			"uploads:mallory", time.Now().UnixMilli()).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held > 0 {
			break
		}
		if time.Now().After(deadline) {
			// B's answer below says what went wrong (it takes the upload
			// when A does not share its count).
			t.Log("node A has not counted the upload it holds open in the shared store")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := httpDo(t, "POST", b.url+"/v1/blobs", sess.BlobToken, strings.NewReader("y")); code != http.StatusTooManyRequests || !strings.HasPrefix(string(body), "TOO_MANY_UPLOADS") {
		t.Fatalf("an upload on B while one was held open on A, with a cap of one: HTTP %d: %s; want TOO_MANY_UPLOADS", code, body)
	}
	pw.Write([]byte("x"))
	pw.Close()
	if code := <-held; code != http.StatusCreated {
		t.Fatalf("the held upload on A: HTTP %d", code)
	}
	if code, body := httpDo(t, "POST", b.url+"/v1/blobs", sess.BlobToken, strings.NewReader("y")); code != http.StatusCreated {
		t.Fatalf("upload on B after A's finished: HTTP %d: %s", code, body)
	}
}
