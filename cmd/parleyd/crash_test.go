package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite"

	"github.com/parleychat/parley/devicelist"
	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/transparency/directory"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/prefix"
	"github.com/parleychat/parley/transparency/vrf"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"
)

// The crash test re-executes this test binary as the server: with
// PARLEYD_CRASH_CHILD set, TestMain runs "parleyd serve" instead of the
// tests, so the server is a real separate process that can be SIGKILLed.
const childEnv = "PARLEYD_CRASH_CHILD"

// More settings of a child node, for the cluster test.
const (
	childDBEnv     = "PARLEYD_CHILD_DB"
	childNATSEnv   = "PARLEYD_CHILD_NATS"
	childFollowEnv = "PARLEYD_CHILD_KT_FOLLOW"
)

// ffmpegEnv sets the child's --ffmpeg and --ffprobe.
const ffmpegEnv = "PARLEYD_TEST_FFMPEG"

var crashKills = flag.Int("crash-kills", 5, "SIGKILLs in TestCrashRecovery (PARLEY_LOAD_LARGE=1 makes it 50)")

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		var f serveFlags
		f.data, f.listen = filepath.Dir(args), filepath.Base(args)
		f.registration = "open"
		f.retention, f.shutdownTimeout = 720*time.Hour, 10*time.Second
		f.maxAttachment, f.maxFrame = 1<<20, 1<<20
		// Hash-list changes reach the child only through its own
		// checks, never through the poll.
		f.listPoll = time.Hour
		// Key transparency epochs often, so that crashes land mid-epoch.
		f.kt = ktFlags{origin: defaultKTOrigin, interval: 20 * time.Millisecond, heartbeat: 200 * time.Millisecond}
		// A cluster node (TestClusterThreeNodes): one shared database and
		// NATS; all but the first follow the first's directory.
		f.db, f.nats = os.Getenv(childDBEnv), os.Getenv(childNATSEnv)
		f.kt.follow = os.Getenv(childFollowEnv) != ""
		// --ffmpeg and --ffprobe (TestServeWithoutFFmpeg points them at
		// nothing).
		if v := os.Getenv(ffmpegEnv); v != "" {
			f.ffmpeg, f.ffprobe = v, v
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := serveWith(context.Background(), f, log, nil); err != nil {
			fmt.Fprintln(os.Stderr, "child parleyd:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// pgtest.Main stops the PostgreSQL server the --db tests start.
	os.Exit(pgtest.Main(m))
}

// crashServer is a parleyd child process on a fixed address.
type crashServer struct {
	t    *testing.T
	data string
	addr string
	env  []string // more environment for the child
	cmd  *exec.Cmd
	// wrap, when set, is a command the server runs under (strace in
	// TestFsyncBeforeAck); pid is then the server's own process id.
	wrap []string
	pid  int
}

// startCrashServer starts a parleyd child on a free loopback port with a
// fresh data directory; it is killed at the end of the test if still up.
func startCrashServer(t *testing.T) *crashServer {
	t.Helper()
	return startCrashServerWith(t, t.TempDir(), nil)
}

// startCrashServerWith starts a child on data with more environment.
func startCrashServerWith(t *testing.T, data string, env []string) *crashServer {
	t.Helper()
	return launchCrashServer(t, data, env, nil)
}

// startServerUnder starts a parleyd child as startCrashServer does, run
// under the command wrap (its arguments followed by the child's).
func startServerUnder(t *testing.T, wrap []string) *crashServer {
	t.Helper()
	return launchCrashServer(t, t.TempDir(), nil, wrap)
}

func launchCrashServer(t *testing.T, data string, env, wrap []string) *crashServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := &crashServer{t: t, data: data, addr: addr, env: env, wrap: wrap}
	srv.start()
	t.Cleanup(func() {
		if srv.cmd.ProcessState == nil {
			srv.kill()
		}
	})
	return srv
}

func (s *crashServer) start() {
	s.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if len(s.wrap) > 0 {
		cmd = exec.Command(s.wrap[0], append(s.wrap[1:], os.Args[0], "-test.run=^$")...)
	}
	// The data dir and listen address travel in one variable (dir/addr).
	cmd.Env = append(append(os.Environ(), childEnv+"="+filepath.Join(s.data, s.addr)), s.env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			s.pid = cmd.Process.Pid
			if len(s.wrap) > 0 {
				s.pid = childPid(s.t, cmd.Process.Pid)
			}
			return
		}
	}
	s.t.Fatal("server did not come up")
}

func (s *crashServer) kill() {
	if s.pid != 0 {
		syscall.Kill(s.pid, syscall.SIGKILL)
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

func (s *crashServer) stop() {
	// Signal the server itself: a tracer given SIGTERM would detach and
	// leave the server running.
	syscall.Kill(s.pid, syscall.SIGTERM)
	s.cmd.Wait()
}

// childPid returns the one child process of pid (the program a wrapper
// such as strace started).
func childPid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("the wrapped server's process: %v", err)
	}
	var child int
	if _, err := fmt.Sscan(string(b), &child); err != nil {
		t.Fatalf("the wrapped server's process: %q: %v", b, err)
	}
	return child
}

func (s *crashServer) url() string { return "http://" + s.addr }

// device is a test client that reconnects whenever the server is gone.
type crashDevice struct {
	s   *crashServer
	key ed25519.PrivateKey
	id  string
	c   *transport.Conn
}

// do runs fn with a connected client, reconnecting and retrying until it
// succeeds or ctx ends. fn must be idempotent (sends reuse their id).
func (d *crashDevice) do(ctx context.Context, fn func(c *transport.Conn) error) error {
	for {
		if d.c == nil {
			c, _, err := transport.Connect(ctx, d.s.url(), d.key, nil)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			d.c = c
		}
		err := fn(d.c)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A protocol error is a real answer (give up), except those
		// telling us to come back; anything else is a lost connection or a
		// token from before a restart: reconnect and retry.
		var we *wire.Error
		if errors.As(err, &we) && we.Code != parleypb.ErrorCode_SHUTTING_DOWN && we.Code != parleypb.ErrorCode_STORAGE_UNAVAILABLE {
			return err
		}
		d.c.Close()
		d.c = nil
	}
}

// TestCrashRecovery SIGKILLs the server at random moments while two
// devices send (and retry with the same message id after losing a
// response), receivers fetch and ack, and attachments are uploaded. After
// the last restart every acknowledged message must reach every recipient
// device, in order per sender, under one sequence number (counted before
// any de-duplication: a retried send stored twice shows as one id under
// two numbers; a redelivery after a lost ack repeats the same number);
// the database must pass PRAGMA integrity_check and every acknowledged
// blob must match its digest.
func TestCrashRecovery(t *testing.T) {
	kills := *crashKills
	if os.Getenv("PARLEY_LOAD_LARGE") != "" && kills == 5 {
		kills = 50
	}
	srv := startCrashServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// alice and carol send; bob has two devices; everyone is in one group.
	reg := func(name string) *crashDevice {
		d := &crashDevice{s: srv, key: newKey(t)}
		c, err := transport.Dial(ctx, srv.url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Register(ctx, name, d.key, "")
		if err != nil {
			t.Fatal(err)
		}
		d.id, d.c = s.DeviceID, c
		return d
	}
	alice, bob1, carol := reg("alice"), reg("bob"), reg("carol")
	bob2 := &crashDevice{s: srv, key: newKey(t)}
	{
		c, err := transport.Dial(ctx, srv.url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		code, _, err := c.RequestLink(ctx, "bob", bob2.key)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := bob1.c.ApproveLink(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, bob2.key); err != nil {
			t.Fatal(err)
		}
		bob2.id, bob2.c = dev.ID, c
	}
	conv := []byte("crash-test-group")
	if err := alice.c.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0,
		Payload: []byte("commit"), Added: []string{bob1.id, bob2.id, carol.id}, Welcome: []byte("welcome")}); err != nil {
		t.Fatal(err)
	}
	devices := []*crashDevice{alice, bob1, bob2, carol}

	// Senders: acked records the ids the server acknowledged, in order.
	type sent struct {
		mu    sync.Mutex
		acked [][]byte
	}
	senders := map[string]*sent{alice.id: {}, carol.id: {}}
	stopSend := make(chan struct{})
	var wg sync.WaitGroup
	for _, d := range []*crashDevice{alice, carol} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := senders[d.id]
			for i := 0; ; i++ {
				select {
				case <-stopSend:
					return
				default:
				}
				// Every attempt carries the id and the first-send time
				// of the first, as Parley's clients send them.
				id, firstSent := transport.NewMessageID(), time.Now()
				payload := fmt.Appendf(nil, "%s message %d", d.id, i)
				err := d.do(ctx, func(c *transport.Conn) error {
					_, err := c.SendExpiringApplication(ctx, id, conv, 1, payload, time.Time{}, firstSent)
					return err
				})
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				rec.mu.Lock()
				rec.acked = append(rec.acked, id)
				rec.mu.Unlock()
				// Every fourth message is sent again, as a client does
				// whose answer was lost: it must not be stored twice.
				if i%4 == 3 {
					err := d.do(ctx, func(c *transport.Conn) error {
						_, err := c.SendExpiringApplication(ctx, id, conv, 1, payload, time.Time{}, firstSent)
						return err
					})
					if err != nil {
						t.Errorf("send again: %v", err)
						return
					}
				}
			}
		}()
	}
	// Attachments: acknowledged uploads must survive with their digest.
	var blobMu sync.Mutex
	blobs := map[string][32]byte{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		up := &crashDevice{s: srv, key: bob1.key}
		for {
			select {
			case <-stopSend:
				return
			default:
			}
			data := make([]byte, 1+mrand.IntN(200_000))
			rand.Read(data)
			var id string
			err := up.do(ctx, func(c *transport.Conn) error {
				var err error
				id, err = c.UploadBlob(ctx, bytes.NewReader(data), int64(len(data)), nil)
				return err
			})
			if err != nil {
				if ctx.Err() == nil {
					continue
				}
				return
			}
			blobMu.Lock()
			blobs[id] = sha256.Sum256(data)
			blobMu.Unlock()
		}
	}()
	// Key transparency: carol publishes a new device list every few
	// milliseconds, and bob looks it up with a client's checks, keeping
	// one Verifier across every crash. A crash mid-epoch must never make
	// the directory serve a checkpoint that does not extend one it served
	// before (a fork or rollback to a client), and every acknowledged list
	// must end up in the directory.
	var ktAcked atomic.Uint64
	var ktChecks atomic.Int64
	var ktMu sync.Mutex // guards ktVerifier, ktKeys
	var ktVerifier *log.Verifier
	var ktKeys directory.Keys
	ktLookup := func(c *transport.Conn) (*directory.Result, error) {
		ktMu.Lock()
		defer ktMu.Unlock()
		if ktVerifier == nil {
			k, err := c.KTKeys(ctx)
			if err != nil {
				return nil, err
			}
			lv, err := note.NewVerifier(k.NoteKey)
			if err != nil {
				return nil, err
			}
			vk, err := vrf.ParsePublicKey(k.VrfKey)
			if err != nil {
				return nil, err
			}
			ktKeys = directory.Keys{Policy: log.Policy{Origin: k.Origin, Log: lv}, VRF: vk}
			if ktVerifier, err = log.NewVerifier(ktKeys.Policy, nil); err != nil {
				return nil, err
			}
		}
		var known int64
		if l := ktVerifier.Latest(); l != nil {
			known = l.Size
		}
		resp, err := c.FetchDeviceList(ctx, "carol", known)
		if err != nil {
			return nil, err
		}
		a, err := decodeKTAnswer(resp.Kt)
		if err != nil {
			return nil, &directoryError{err}
		}
		r, err := directory.VerifySearch(ktVerifier, ktKeys, "carol", a, time.Now())
		if err != nil {
			return nil, &directoryError{err}
		}
		ktChecks.Add(1)
		return r, nil
	}
	listVersion := func(r *directory.Result) uint64 {
		if r == nil || !r.Found {
			return 0
		}
		var s parleypb.SignedDeviceList
		if err := proto.Unmarshal(r.Current.Value, &s); err != nil {
			t.Errorf("carol's list in the directory: %v", err)
			return 0
		}
		l, err := devicelist.Verify(&s)
		if err != nil {
			t.Errorf("carol's list in the directory: %v", err)
			return 0
		}
		return l.Version
	}
	accountPub, accountPriv, _ := ed25519.GenerateKey(rand.Reader)
	carolPub := carol.key.Public().(ed25519.PublicKey)
	wg.Add(2)
	go func() {
		defer wg.Done()
		pub := &crashDevice{s: srv, key: carol.key}
		for v := uint64(1); ; v++ {
			select {
			case <-stopSend:
				return
			case <-time.After(20 * time.Millisecond):
			}
			l := devicelist.List{Username: "carol", AccountKey: accountPub, Version: v, Signed: time.Now(),
				Devices: []devicelist.Device{{ID: carol.id, AuthKey: carolPub, MLSKey: carolPub, Added: time.Now()}}}
			s, err := devicelist.Sign(l, accountPriv)
			if err != nil {
				t.Error(err)
				return
			}
			err = pub.do(ctx, func(c *transport.Conn) error { return c.PublishDeviceList(ctx, s) })
			if err != nil && !errors.Is(err, wire.ErrAlreadyExists) { // a retry of one stored before a crash
				if ctx.Err() == nil {
					t.Errorf("publish device list: %v", err)
				}
				return
			}
			ktAcked.Store(v)
		}
	}()
	go func() {
		defer wg.Done()
		look := &crashDevice{s: srv, key: bob1.key}
		for {
			select {
			case <-stopSend:
				return
			case <-time.After(10 * time.Millisecond):
			}
			err := look.do(ctx, func(c *transport.Conn) error { _, err := ktLookup(c); return err })
			var de *directoryError
			if errors.As(err, &de) {
				t.Errorf("directory answer after a crash: %v", err)
				return
			}
		}
	}()

	// Receivers fetch and ack while the server crashes; received keeps
	// every message in arrival order (duplicates included).
	received := make(map[string][]transport.Message)
	var recvMu sync.Mutex
	fetchAll := func(d *crashDevice) error {
		return d.do(ctx, func(c *transport.Conn) error {
			for {
				msgs, more, err := c.Fetch(ctx, conv, 50)
				if err != nil {
					return err
				}
				recvMu.Lock()
				received[d.id] = append(received[d.id], msgs...)
				recvMu.Unlock()
				if len(msgs) > 0 {
					if err := c.Ack(ctx, conv, msgs[len(msgs)-1].Seq); err != nil {
						return err
					}
				}
				if !more {
					return nil
				}
			}
		})
	}
	for _, d := range devices[1:3] { // bob1, bob2 fetch during the run
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopSend:
					return
				case <-time.After(time.Duration(mrand.IntN(50)) * time.Millisecond):
				}
				if err := fetchAll(d); err != nil && ctx.Err() == nil {
					t.Errorf("fetch: %v", err)
					return
				}
			}
		}()
	}

	for k := range kills {
		time.Sleep(time.Duration(100+mrand.IntN(400)) * time.Millisecond)
		srv.kill()
		t.Logf("kill %d", k+1)
		srv.start()
	}
	time.Sleep(200 * time.Millisecond)
	close(stopSend)
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, d := range devices {
		if err := fetchAll(d); err != nil {
			t.Fatalf("final fetch: %v", err)
		}
	}
	// Count before any de-duplication. A message fetched twice under the
	// same sequence number is a redelivery (the device's ack was lost in a
	// crash) and is allowed; one id under two sequence numbers is a
	// message stored twice (a retried send the server did not recognise),
	// and an acknowledged id a device never received is lost.
	total, lost, stored2 := 0, 0, 0
	seqOf := map[string]uint64{} // message id -> its sequence number, across every device
	for _, d := range devices {
		seqs := map[string]map[uint64]bool{}
		for _, m := range received[d.id] {
			if seqs[string(m.ID)] == nil {
				seqs[string(m.ID)] = map[uint64]bool{}
			}
			seqs[string(m.ID)][m.Seq] = true
			if s, ok := seqOf[string(m.ID)]; ok && s != m.Seq {
				t.Errorf("device %s: message %x at seq %d, another device has it at %d", d.id, m.ID, m.Seq, s)
			}
			seqOf[string(m.ID)] = m.Seq
		}
		for id, ss := range seqs {
			if len(ss) > 1 {
				stored2++
				t.Errorf("device %s: message %x stored %d times (seqs %v)", d.id, id, len(ss), ss)
			}
		}
		// Expected: every acked message of every other sender, in order
		// of their sequence numbers.
		for sender, rec := range senders {
			if sender == d.id {
				continue
			}
			var got [][]byte
			seen := map[string]bool{}
			for _, m := range received[d.id] {
				if m.Sender != sender || seen[string(m.ID)] {
					continue
				}
				seen[string(m.ID)] = true
				got = append(got, m.ID)
			}
			for _, id := range rec.acked {
				if !seen[string(id)] {
					lost++
				}
			}
			// got may hold messages sent but never acknowledged (the
			// response was lost in a crash and the retry was cut off at
			// the end): they may only appear after the acked ones.
			want := rec.acked
			if len(got) < len(want) {
				t.Errorf("device %s: %d of %d acknowledged messages from %s", d.id, len(got), len(want), sender)
				continue
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("device %s: message %d from %s out of order or missing", d.id, i, sender)
					break
				}
			}
			total += len(want)
		}
		// Sequence numbers must never repeat for different ids.
		bySeq := map[uint64]string{}
		for _, m := range received[d.id] {
			if prev, ok := bySeq[m.Seq]; ok && prev != string(m.ID) {
				t.Errorf("device %s: seq %d carries two different messages", d.id, m.Seq)
			}
			bySeq[m.Seq] = string(m.ID)
		}
	}
	t.Logf("before de-duplication: %d acknowledged deliveries lost, %d messages stored twice", lost, stored2)
	if lost > 0 || stored2 > 0 {
		t.Errorf("%d acknowledged deliveries lost and %d messages stored twice, want 0 and 0", lost, stored2)
	}
	// Every acknowledged list reaches the directory, with answers that
	// still extend every checkpoint seen before.
	look := &crashDevice{s: srv, key: bob1.key}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var r *directory.Result
		err := look.do(ctx, func(c *transport.Conn) error {
			var err error
			r, err = ktLookup(c)
			return err
		})
		if err != nil && !errors.Is(err, wire.ErrNotReady) {
			t.Fatalf("final directory lookup: %v", err)
		}
		if v := listVersion(r); v >= ktAcked.Load() && v > 0 {
			t.Logf("directory: carol's list at version %d (%d acknowledged), %d answers verified across the crashes", v, ktAcked.Load(), ktChecks.Load())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the directory never took carol's acknowledged list version %d (serves %d)", ktAcked.Load(), listVersion(r))
		}
	}
	if look.c != nil {
		look.c.Close()
	}
	t.Logf("%d kills; %d acknowledged messages, %d deliveries checked, %d blobs", kills, len(senders[alice.id].acked)+len(senders[carol.id].acked), total, len(blobs))
	if len(senders[alice.id].acked) == 0 || len(senders[carol.id].acked) == 0 {
		t.Error("a sender got nothing acknowledged")
	}
	for _, d := range devices {
		if d.c != nil {
			d.c.Close()
		}
	}
	srv.stop()

	// The database is intact and the blobs match their digests.
	db, err := sql.Open("sqlite", filepath.Join(srv.data, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatal(err)
	}
	if res != "ok" {
		t.Errorf("integrity_check: %s", res)
	}
	for id, sum := range blobs {
		data, err := os.ReadFile(filepath.Join(srv.data, "blobs", id))
		if err != nil {
			t.Errorf("acknowledged blob %s: %v", id, err)
			continue
		}
		if got := sha256.Sum256(data); got != sum {
			t.Errorf("blob %s: digest %s, want %s", id, hex.EncodeToString(got[:]), hex.EncodeToString(sum[:]))
		}
	}
}

// directoryError marks a directory answer that failed the client's checks
// (as opposed to a lost connection).
type directoryError struct{ err error }

func (e *directoryError) Error() string { return e.err.Error() }
func (e *directoryError) Unwrap() error { return e.err }

// decodeKTAnswer decodes a directory answer as a client does.
func decodeKTAnswer(a *parleypb.KTAnswer) (*directory.Answer, error) {
	if a == nil {
		return nil, errors.New("no directory answer")
	}
	out := &directory.Answer{Lookup: directory.Lookup{Checkpoint: a.Checkpoint, Record: a.Entry, VRFProof: a.VrfProof}}
	var err error
	if len(a.Consistency) > 0 {
		if out.Consistency, err = log.DecodeProof(a.Consistency); err != nil {
			return nil, err
		}
	}
	if out.EntryProof, err = log.DecodeProof(a.EntryProof); err != nil {
		return nil, err
	}
	if out.Proof, err = prefix.ParseProof(a.PrefixProof); err != nil {
		return nil, err
	}
	if v := a.Current; v != nil {
		o := &directory.Opening{Epoch: v.Epoch, Version: v.Version, Value: v.Value}
		if len(v.Prev) != 32 || len(v.Opening) != 16 {
			return nil, errors.New("malformed opening")
		}
		copy(o.Prev[:], v.Prev)
		copy(o.Opening[:], v.Opening)
		out.Current = o
	}
	return out, nil
}
