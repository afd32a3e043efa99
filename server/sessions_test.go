package server_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// fanoutBus is an in-process server.Bus between nodes: a notice goes to
// every subscribed node (its publisher's too, as on NATS), each on a
// goroutine of its own.
type fanoutBus struct {
	mu  sync.Mutex
	fns []func([]byte)
	off atomic.Bool // drop every notice, as a NATS outage does
	// delivered counts notices handled by a subscriber.
	delivered atomic.Int64
}

func (b *fanoutBus) Publish(p []byte) error {
	if b.off.Load() {
		return nil
	}
	b.mu.Lock()
	fns := append([]func([]byte){}, b.fns...)
	b.mu.Unlock()
	for _, fn := range fns {
		go func() {
			fn(append([]byte(nil), p...))
			b.delivered.Add(1)
		}()
	}
	return nil
}

func (b *fanoutBus) Subscribe(fn func([]byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fns = append(b.fns, fn)
	return func() {}, nil
}

// stolenLaptop sets up alice: her phone on node a, her laptop linked and
// signed in on node b with n connections (the thief's).
func stolenLaptop(t *testing.T, a, b *pgNode, n int) (phone *transport.Conn, phoneID, laptopID string, laptop []*transport.Conn) {
	t.Helper()
	phone = dialURL(t, a.url)
	sess, err := phone.Register(bg, "alice", newKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	lk := newKey()
	code, _, err := dialURL(t, b.url).RequestLink(bg, "alice", lk)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := phone.ApproveLink(bg, code)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		c := dialURL(t, b.url)
		if _, err := c.Authenticate(bg, lk); err != nil {
			t.Fatal(err)
		}
		laptop = append(laptop, c)
	}
	return phone, sess.DeviceID, ld.ID, laptop
}

// waitClosed waits until the server closes c and returns the reason.
func waitClosed(t *testing.T, c *transport.Conn, within time.Duration) string {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err().Error()
	case <-time.After(within):
		t.Fatalf("the connection is still open after %v", within)
		return ""
	}
}

// The attacker's move: alice's laptop is stolen while signed in on node
// b. She removes it from her phone on node a. Nothing tells node b (no
// bus, no periodic check within the test), yet the thief's connections
// there can neither approve a device of his own into her account, nor
// remove her phone, nor delete her account: account requests look the
// device up again. Each refused connection is closed.
func TestRemovedDeviceActsOnOtherNode(t *testing.T) {
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) { cfg.SessionCheck = time.Hour })
	phone, phoneID, laptopID, laptop := stolenLaptop(t, a, b, 4)
	if err := phone.RemoveDevice(bg, laptopID); err != nil {
		t.Fatal(err)
	}

	thiefKey := newKey()
	code, _, err := dialURL(t, b.url).RequestLink(bg, "alice", thiefKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = laptop[0].ApproveLink(bg, code)
	wantCode(t, "the removed laptop approving a link", err, parleypb.ErrorCode_UNAUTHENTICATED)
	wantCode(t, "the removed laptop removing the phone", laptop[1].RemoveDevice(bg, phoneID), parleypb.ErrorCode_UNAUTHENTICATED)
	wantCode(t, "the removed laptop deleting the account", laptop[2].DeleteAccount(bg, "alice"), parleypb.ErrorCode_UNAUTHENTICATED)
	if _, err := laptop[3].UploadKeyPackages(bg, []transport.KeyPackage{{Ref: []byte("r"), Data: []byte("d")}}, nil); !errors.Is(err, &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED}) {
		t.Errorf("the removed laptop uploading key packages: %v", err)
	}
	for i, c := range laptop {
		if reason := waitClosed(t, c, 10*time.Second); !strings.Contains(reason, "device removed") {
			t.Errorf("laptop connection %d closed with %q, want \"device removed\"", i, reason)
		}
	}

	// Nothing happened to alice's account.
	devs, err := phone.ListDevices(bg)
	if err != nil || len(devs) != 1 || devs[0].ID != phoneID {
		t.Fatalf("alice's devices after the attack: %v %v", devs, err)
	}
	if _, err := dialURL(t, a.url).Authenticate(bg, thiefKey); err == nil {
		t.Fatal("the thief's own device signed in to alice's account")
	}
	if _, err := dialURL(t, b.url).Authenticate(bg, thiefKey); err == nil {
		t.Fatal("the thief's own device signed in to alice's account")
	}
}

// With a bus, removing a device (or deleting the account) through node a
// ends its sessions on node b at once, without any request from them.
func TestRemovalEndsSessionsAcrossNodes(t *testing.T) {
	bus := &fanoutBus{}
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) {
		cfg.Bus = bus
		cfg.SessionCheck = time.Hour
	})
	phone, _, laptopID, laptop := stolenLaptop(t, a, b, 1)
	if err := phone.RemoveDevice(bg, laptopID); err != nil {
		t.Fatal(err)
	}
	if reason := waitClosed(t, laptop[0], 10*time.Second); !strings.Contains(reason, "device removed") {
		t.Errorf("closed with %q, want \"device removed\"", reason)
	}

	// Bob deletes his account on node a; his other device on node b is
	// signed out.
	bobPhone := dialURL(t, a.url)
	if _, err := bobPhone.Register(bg, "bob", newKey(), ""); err != nil {
		t.Fatal(err)
	}
	tk := newKey()
	code, _, err := dialURL(t, b.url).RequestLink(bg, "bob", tk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bobPhone.ApproveLink(bg, code); err != nil {
		t.Fatal(err)
	}
	tablet := dialURL(t, b.url)
	if _, err := tablet.Authenticate(bg, tk); err != nil {
		t.Fatal(err)
	}
	if err := bobPhone.DeleteAccount(bg, "bob"); err != nil {
		t.Fatal(err)
	}
	if reason := waitClosed(t, tablet, 10*time.Second); !strings.Contains(reason, "account deleted") {
		t.Errorf("closed with %q, want \"account deleted\"", reason)
	}
}

// A notice only says where to look: one naming a device that is still
// alice's (forged, or replayed) ends nothing.
func TestForgedRecheckEndsNothing(t *testing.T) {
	bus := &loopBus{}
	ts := startServer(t, t.TempDir(), func(c *server.Config) { c.Bus = bus })
	alice := register(t, ts, "alice")
	n, _ := proto.Marshal(&parleypb.ClusterNotice{Node: "other", Recipients: []string{alice.id, alice.id, "nobody"}, Recheck: true})
	bus.deliver(n)
	if err := alice.conn.Ping(bg); err != nil {
		t.Fatalf("alice after a forged recheck: %v", err)
	}
	select {
	case <-alice.conn.Done():
		t.Fatalf("a forged recheck closed alice's connection: %v", alice.conn.Err())
	case <-time.After(200 * time.Millisecond):
	}
}

// Without a bus, and with the device idle, the periodic session check
// ends a removed device's session on the other node.
func TestSessionCheckEndsRemovedDevice(t *testing.T) {
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) { cfg.SessionCheck = 50 * time.Millisecond })
	phone, _, laptopID, laptop := stolenLaptop(t, a, b, 1)
	if err := phone.RemoveDevice(bg, laptopID); err != nil {
		t.Fatal(err)
	}
	if reason := waitClosed(t, laptop[0], 10*time.Second); !strings.Contains(reason, "device removed") {
		t.Errorf("closed with %q, want \"device removed\"", reason)
	}
}

// A suspension decided while mallory is connected (from another process,
// as "parleyd admin cases decide" does) ends her session at the next
// session check; signing in again, she is told and can only appeal. When
// the suspension is lifted her barred session ends the same way. The
// check asks for many accounts at once when the server can (Sanctions),
// else for each.
func TestSanctionEndsSession(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			var barred atomic.Bool
			var batches atomic.Int32
			msg := func(user string) string {
				if user == "mallory" && barred.Load() {
					return "suspended until tomorrow"
				}
				return ""
			}
			ts := startServer(t, t.TempDir(), func(c *server.Config) {
				c.SessionCheck = 50 * time.Millisecond
				c.Sanction = func(ctx context.Context, user string) (bool, string, error) {
					return msg(user) != "", msg(user), nil
				}
				if batch {
					c.Sanctions = func(ctx context.Context, users []string) (map[string]string, error) {
						batches.Add(1)
						out := map[string]string{}
						for _, u := range users {
							if m := msg(u); m != "" {
								out[u] = m
							}
						}
						return out, nil
					}
				}
			})
			mallory := register(t, ts, "mallory")
			bob := register(t, ts, "bob")
			barred.Store(true)
			if reason := waitClosed(t, mallory.conn, 10*time.Second); !strings.Contains(reason, "decision") {
				t.Errorf("closed with %q, want the decision named", reason)
			}
			again := dial(t, ts)
			sess, err := again.Authenticate(bg, mallory.key)
			if err != nil || sess.Barred != "suspended until tomorrow" {
				t.Fatalf("mallory signing in again: %+v %v", sess, err)
			}
			if _, err := again.ListDevices(bg); !errors.Is(err, &wire.Error{Code: parleypb.ErrorCode_PERMISSION_DENIED}) {
				t.Fatalf("a suspended account listing devices: %v", err)
			}
			barred.Store(false)
			waitClosed(t, again, 10*time.Second)
			if err := bob.conn.Ping(bg); err != nil {
				t.Fatalf("bob, never sanctioned: %v", err)
			}
			select {
			case <-bob.conn.Done():
				t.Fatalf("bob's session ended: %v", bob.conn.Err())
			default:
			}
			if batch && batches.Load() == 0 {
				t.Fatal("the session check never asked for many accounts at once")
			}
		})
	}
}

// An account request made between a decision and the next session check
// is refused too: it looks the sanction up itself.
func TestSanctionCheckedByAccountRequest(t *testing.T) {
	var barred atomic.Bool
	ts := startServer(t, t.TempDir(), func(c *server.Config) {
		c.SessionCheck = time.Hour
		c.Sanction = func(ctx context.Context, user string) (bool, string, error) {
			return barred.Load(), "banned", nil
		}
	})
	mallory := register(t, ts, "mallory")
	barred.Store(true)
	code, _, err := dial(t, ts).RequestLink(bg, "mallory", ed25519.NewKeyFromSeed(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = mallory.conn.ApproveLink(bg, code)
	wantCode(t, "approving a link after a ban", err, parleypb.ErrorCode_UNAUTHENTICATED)
	waitClosed(t, mallory.conn, 10*time.Second)
}

// A moderation decision taken through one node (parleyd's console calls
// RecheckAccount) signs the account out on every node at once, before
// any session check; other accounts stay signed in.
func TestRecheckAccountAcrossNodes(t *testing.T) {
	var barred atomic.Bool
	bus := &fanoutBus{}
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) {
		cfg.Bus = bus
		cfg.SessionCheck = time.Hour
		cfg.Sanction = func(ctx context.Context, user string) (bool, string, error) {
			if user == "mallory" && barred.Load() {
				return true, "banned", nil
			}
			return false, "", nil
		}
	})
	mk := newKey()
	onA := dialURL(t, a.url)
	if _, err := onA.Register(bg, "mallory", mk, ""); err != nil {
		t.Fatal(err)
	}
	onB := dialURL(t, b.url)
	if _, err := onB.Authenticate(bg, mk); err != nil {
		t.Fatal(err)
	}
	bob := dialURL(t, b.url)
	if _, err := bob.Register(bg, "bob", newKey(), ""); err != nil {
		t.Fatal(err)
	}
	barred.Store(true)
	if err := a.srv.RecheckAccount(bg, "mallory"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*transport.Conn{onA, onB} {
		if reason := waitClosed(t, c, 10*time.Second); !strings.Contains(reason, "decision") {
			t.Errorf("closed with %q, want the decision named", reason)
		}
	}
	if err := bob.Ping(bg); err != nil {
		t.Fatalf("bob after mallory's ban: %v", err)
	}
}

// A device signing in on node b while node a removes it, in the worst
// order: node b found the device, then the removal commits and its
// notice reaches node b before the connection is where a notice finds
// it. The sign-in is still refused (or its session ended at once): the
// node looks the device up again once the connection is in place. No
// session check runs.
func TestRemovalRacesSignIn(t *testing.T) {
	bus := &fanoutBus{}
	var armed atomic.Bool
	paused, resume := make(chan struct{}), make(chan struct{})
	a, b, _ := twoPGNodes(t, func(cfg *server.Config) {
		cfg.Bus = bus
		cfg.SessionCheck = time.Hour
		server.SetBeforeHubAdd(cfg, func() {
			if armed.CompareAndSwap(true, false) {
				close(paused)
				<-resume
			}
		})
	})
	phone, _ := signUp(t, a.url, "alice")
	lk := newKey()
	code, _, err := dialURL(t, b.url).RequestLink(bg, "alice", lk)
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := phone.ApproveLink(bg, code)
	if err != nil {
		t.Fatal(err)
	}
	c := dialURL(t, b.url)
	armed.Store(true)
	signedIn := make(chan error, 1)
	go func() { _, err := c.Authenticate(bg, lk); signedIn <- err }()
	<-paused
	before := bus.delivered.Load()
	if err := phone.RemoveDevice(bg, laptop.ID); err != nil {
		t.Fatal(err)
	}
	// The recheck notice, handled by both nodes (it ends nothing on b:
	// the connection is not where a notice finds it yet).
	for deadline := time.Now().Add(10 * time.Second); bus.delivered.Load() < before+2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the recheck notice was not delivered")
		}
	}
	close(resume)
	if err := <-signedIn; err == nil {
		if reason := waitClosed(t, c, 5*time.Second); !strings.Contains(reason, "device removed") {
			t.Fatalf("the removed device signed in and kept its session (closed with %q)", reason)
		}
	} else if !errors.Is(err, &wire.Error{Code: parleypb.ErrorCode_UNAUTHENTICATED}) {
		t.Fatalf("sign-in of the removed device: %v", err)
	}
}

// BenchmarkSessionCheck is one node's periodic session check, per
// connected device: 2 000 devices of 2 000 accounts signed in on a
// SQLite node, as parleyd runs it (devices 500 to a query, sanctions
// batched), against the baseline of a query per device and per account.
// At 100 000 devices a node runs about 50 times the figure per device,
// once a minute.
func BenchmarkSessionCheck(b *testing.B) {
	const devices = 2000
	ts := startServer(b, b.TempDir(), func(c *server.Config) {
		c.SessionCheck = time.Hour // only the benchmark checks
		c.Limits.RegisterPerAddr = server.Limit{N: 1 << 30, Per: time.Hour}
		c.Sanction = func(context.Context, string) (bool, string, error) { return false, "", nil }
		c.Sanctions = func(context.Context, []string) (map[string]string, error) { return nil, nil }
	})
	for i := range devices {
		register(b, ts, fmt.Sprintf("user%05d", i))
	}
	for _, bc := range []struct {
		name  string
		check func(*server.Server)
	}{{"batched", server.CheckSessions}, {"one_by_one", server.CheckSessionsOneByOne}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bc.check(ts.srv)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/device")
		})
	}
}
