package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"os/exec"
	"regexp"
	"sync"
	"syscall"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/channels/channelsrv"
	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/mls/ciphersuite"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/admincmd"
	"github.com/parleychat/parley/moderation/modsqlite"
	"github.com/parleychat/parley/wire"
	"github.com/parleychat/parley/wire/parleypb"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/sqlitestore"
)

func TestMain(m *testing.M) {
	testscript.Main(removeBinary{m}, map[string]func(){
		"parley": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// removeBinary removes the parleyd the tests built once they have run.
type removeBinary struct{ m *testing.M }

func (r removeBinary) Run() int {
	code := r.m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// TestScripts runs testdata/*.txtar. Each script gets a real parleyd on
// 127.0.0.1 (the built program, run as "parleyd serve") whose data and log live in
// $WORK/server; $SERVER is its URL. Profiles live in $WORK.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup:               setupServer,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"nocanary":   cmdNoCanary,
			"jsonlines":  cmdJSONLines,
			"jsoneq":     cmdJSONEq,
			"waitfile":   cmdWaitFile,
			"setfrom":    cmdSetFrom,
			"admin":      cmdAdmin,
			"decide":     cmdDecide,
			"adminwait":  cmdAdminWait,
			"ghost":      cmdGhost,
			"tamperlist": cmdTamperList,
			"server":     cmdServer,
		},
	})
}

func setupServer(e *testscript.Env) error {
	dataDir := filepath.Join(e.WorkDir, "server")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	ss := &scriptServer{dataDir: dataDir}
	if err := ss.start("127.0.0.1:0"); err != nil {
		return err
	}
	e.Values[scriptServerKey{}] = ss
	e.Defer(func() {
		if err := ss.stop(); err != nil {
			e.T().Log("shutdown:", err)
		}
	})
	e.Setenv("SERVER", "http://"+ss.addr)
	if d, err := shareddata.Dir(); err == nil {
		e.Setenv("SHARED", d)
	}
	// Cheap Argon2id: the scripts create many profiles.
	e.Setenv("PARLEY_KDF", "t=1,m=64,p=1")
	e.Setenv("PARLEY_PASSPHRASE", "correct horse battery staple")
	return nil
}

type scriptServerKey struct{}

// scriptServer is a script's parleyd: the real program, built from
// cmd/parleyd and run as "parleyd serve", so that the end-to-end tests
// exercise the wiring users run (never a copy of it). "server stop" and
// "server start" stop and start it again on the same address and data.
type scriptServer struct {
	dataDir string
	addr    string
	cmd     *exec.Cmd
	exited  chan error
	logFile *os.File
}

// parleydBinary builds cmd/parleyd once per test process (with the race
// detector when these tests have it) into binDir.
var (
	binDir        string
	parleydBinary = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "parleyd-bin-")
		if err != nil {
			return "", err
		}
		binDir = dir
		bin := filepath.Join(dir, "parleyd")
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			return "", fmt.Errorf("the end-to-end tests build parleyd with the go command: %w", err)
		}
		out, err := exec.Command(goTool, append(args, "github.com/parleychat/parley/cmd/parleyd")...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build parleyd: %v\n%s", err, out)
		}
		return bin, nil
	})
)

// start runs "parleyd serve" on addr (127.0.0.1:0: a free port), with its
// log in the data directory, and returns once it accepts connections.
func (ss *scriptServer) start(addr string) error {
	bin, err := parleydBinary()
	if err != nil {
		return err
	}
	if strings.HasSuffix(addr, ":0") {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	ss.logFile, err = os.OpenFile(filepath.Join(ss.dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// Key transparency epochs every 20ms, so that scripts see new device
	// lists at once; no metrics listener (scripts run in parallel).
	cmd := exec.Command(bin, "serve", "--data", ss.dataDir, "--listen", addr, "--metrics-listen", "off",
		"--kt-interval", "20ms", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = ss.logFile, ss.logFile
	if err := cmd.Start(); err != nil {
		ss.logFile.Close()
		return err
	}
	ss.cmd, ss.addr, ss.exited = cmd, addr, make(chan error, 1)
	go func() { ss.exited <- cmd.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-ss.exited:
			ss.cmd = nil
			ss.logFile.Close()
			log, _ := os.ReadFile(ss.logFile.Name())
			return fmt.Errorf("parleyd serve exited (%v):\n%s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
	}
	ss.stop()
	return errors.New("parleyd serve did not accept connections within 60s")
}

// stop shuts the server down as an operator does (SIGTERM) and reports
// whether it stopped cleanly.
func (ss *scriptServer) stop() error {
	if ss.cmd == nil {
		return nil
	}
	defer func() { ss.cmd = nil; ss.logFile.Close() }()
	ss.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-ss.exited:
		if err != nil {
			return fmt.Errorf("parleyd serve: %w (log in %s)", err, ss.logFile.Name())
		}
		return nil
	case <-time.After(30 * time.Second):
		ss.cmd.Process.Kill()
		<-ss.exited
		return errors.New("parleyd serve did not stop within 30s of SIGTERM")
	}
}

// server stop|start stops the script's server, or starts it again on the
// same address and data.
func cmdServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: server stop|start")
	}
	ss := ts.Value(scriptServerKey{}).(*scriptServer)
	switch args[0] {
	case "stop":
		ts.Check(ss.stop())
	case "start":
		ts.Check(ss.start(ss.addr))
	default:
		ts.Fatalf("usage: server stop|start")
	}
}

// admin lists|takedowns ARGS... runs "parleyd admin" against the script's
// server data directory.
func cmdAdmin(ts *testscript.TestScript, neg bool, args []string) {
	var stdout, stderr bytes.Buffer
	code := admincmd.Run(channelsrv.Where{Data: ts.MkAbs("server")}, args, &stdout, &stderr)
	ts.Logf("admin %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	if (code != 0) != neg {
		ts.Fatalf("admin %v: exit %d", args, code)
	}
}

// decide CASE ACTION REASON [UNTIL] plays a moderator deciding a case (as
// "parleyd admin cases decide" or the web console do, on the same store).
func cmdDecide(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 || len(args) > 4 {
		ts.Fatalf("usage: decide CASE ACTION REASON [UNTIL]")
	}
	ctx := context.Background()
	ms, err := modsqlite.OpenExisting(ctx, filepath.Join(ts.MkAbs("server"), channelsrv.ModerationDB))
	ts.Check(err)
	defer ms.Close()
	id, err := strconv.ParseInt(args[0], 10, 64)
	ts.Check(err)
	e := moderation.CaseEvent{Action: args[1], Moderator: "mod-" + args[1], Reason: args[2]}
	if len(args) == 4 {
		e.Until, err = time.Parse(time.DateOnly, args[3])
		ts.Check(err)
	}
	_, err = ms.ActOnCase(ctx, id, e)
	if (err != nil) != neg {
		ts.Fatalf("decide %v: %v", args, err)
	}
}

// ghost USER plays a hacked or compelled server: it inserts a device for
// USER into the server's database with a key the "operator" holds, and
// uploads key packages for it, as the "no ghosts" attack does.
func cmdGhost(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: ghost USER")
	}
	user := args[0]
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(ts.MkAbs("server"), "parley.db"), nil)
	ts.Check(err)
	defer st.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	ts.Check(st.CreateLink(ctx, store.Link{Username: user, Code: "99999999", PublicKey: key.Public().(ed25519.PublicKey), Expires: time.Now().Add(time.Hour)}))
	dev, err := st.ApproveLink(ctx, user, "99999999", store.Device{ID: "ghost0000000000000000000000000000"[:32]}, nil, time.Now())
	ts.Check(err)
	conn, err := transport.Dial(ctx, ts.Getenv("SERVER"), nil)
	ts.Check(err)
	defer conn.Close()
	_, err = conn.Authenticate(ctx, key)
	ts.Check(err)
	// Key packages of both suites a client uses: X-Wing for new
	// conversations, suite 1 for older ones.
	var kps []transport.KeyPackage
	for _, id := range []ciphersuite.ID{ciphersuite.MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519} {
		suite, err := ciphersuite.Lookup(id)
		ts.Check(err)
		for range 3 {
			seed := make([]byte, ed25519.SeedSize)
			rand.Read(seed)
			msg, bundle, err := mls.NewKeyPackage(suite, mls.NewBasicCredential([]byte(user+"/"+dev.ID)), seed, nil)
			ts.Check(err)
			kps = append(kps, transport.KeyPackage{Ref: bundle.KeyPackage.Ref(suite), Data: msg, Suite: uint16(id)})
		}
	}
	_, err = conn.UploadKeyPackages(ctx, kps, nil)
	ts.Check(err)
	ts.Setenv("GHOST", dev.ID)
}

// tamperlist USER plays a server that alters USER's signed device list
// (one bit of it) and publishes it in its key transparency directory as
// a new version; it returns once the directory serves it.
func cmdTamperList(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tamperlist USER")
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.MkAbs("server"), "parley.db")+"?_pragma=busy_timeout(10000)")
	ts.Check(err)
	defer db.Close()
	var b []byte
	ts.Check(db.QueryRow(`SELECT device_list FROM accounts WHERE username = ?`, args[0]).Scan(&b))
	var s parleypb.SignedDeviceList
	ts.Check(proto.Unmarshal(b, &s))
	s.List[len(s.List)-1] ^= 1
	b, err = proto.Marshal(&s)
	ts.Check(err)
	_, err = db.Exec(`UPDATE accounts SET device_list = ?, device_list_version = device_list_version + 1 WHERE username = ?`, b, args[0])
	ts.Check(err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pending, stored, served int64
		ts.Check(db.QueryRow(`SELECT kt_version != device_list_version FROM accounts WHERE username = ?`, args[0]).Scan(&pending))
		ts.Check(db.QueryRow(`SELECT COUNT(*) FROM kt_epochs`).Scan(&stored))
		resp, err := http.Get(ts.Getenv("SERVER") + wire.PathKT + "/keys")
		ts.Check(err)
		var k server.KTKeysJSON
		ts.Check(json.NewDecoder(resp.Body).Decode(&k))
		resp.Body.Close()
		served = k.Published
		if pending == 0 && served >= stored {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("tamperlist: the directory did not take the altered list")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adminwait PATTERN ARGS... runs "parleyd admin ARGS..." every 100ms, for
// up to 20s, until its output matches PATTERN: the running server applies
// a list change at its next upload check or read, or at its poll, so its
// decisions show up a moment after the admin command returns.
func cmdAdminWait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: adminwait PATTERN ARGS...")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var stdout, stderr bytes.Buffer
		admincmd.Run(channelsrv.Where{Data: ts.MkAbs("server")}, args[1:], &stdout, &stderr)
		if re.Match(stdout.Bytes()) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("adminwait: %q never appeared; last output:\n%s%s", args[0], stdout.String(), stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nocanary DIR WORD... fails if any file under DIR contains any WORD
// (every byte of every file, SQLite WAL and logs included).
func cmdNoCanary(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: nocanary DIR WORD...")
	}
	dir := ts.MkAbs(args[0])
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, w := range args[1:] {
			if bytes.Contains(data, []byte(w)) {
				return fmt.Errorf("%s contains %q", path, w)
			}
		}
		return nil
	})
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if files == 0 {
		ts.Fatalf("no files under %s", dir)
	}
	ts.Logf("checked %d files under %s", files, args[0])
}

// jsonlines FILE checks that every line of FILE (or stdout) is a JSON
// object.
func cmdJSONLines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: jsonlines FILE|stdout")
	}
	data := ts.ReadFile(args[0])
	sc := bufio.NewScanner(strings.NewReader(data))
	n := 0
	var bad error
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			bad = fmt.Errorf("line %d: %v: %q", n+1, err, sc.Text())
			break
		}
		n++
	}
	if n == 0 && bad == nil {
		bad = errors.New("no lines")
	}
	if (bad != nil) != neg {
		ts.Fatalf("jsonlines %s: %v", args[0], bad)
	}
}

// jsoneq FILE1 FILE2 FIELD checks that the first JSON objects of the two
// files have equal, non-empty FIELD.
func cmdJSONEq(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsoneq FILE1 FILE2 FIELD")
	}
	field := func(name string) string {
		var v map[string]any
		line, _, _ := strings.Cut(ts.ReadFile(name), "\n")
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			ts.Fatalf("%s: %v", name, err)
		}
		s, _ := v[args[2]].(string)
		if s == "" {
			ts.Fatalf("%s: no field %s", name, args[2])
		}
		return s
	}
	a, b := field(args[0]), field(args[1])
	if (a == b) == neg {
		ts.Fatalf("%s: %q vs %q", args[2], a, b)
	}
}

// waitfile FILE waits (up to 30s) for FILE to exist and be non-empty.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ts.MkAbs(args[0])); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear", args[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setfrom VAR FILE [FIELD [KEY=VALUE]] sets VAR to FILE's trimmed
// content, or to the string FIELD of the first JSON object line in it
// (whose KEY is VALUE, if given). FILE may be stdout.
func cmdSetFrom(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || len(args) > 4 {
		ts.Fatalf("usage: setfrom VAR FILE [FIELD [KEY=VALUE]]")
	}
	data := strings.TrimSpace(ts.ReadFile(args[1]))
	if len(args) == 2 {
		ts.Setenv(args[0], data)
		return
	}
	var fk, fv string
	if len(args) == 4 {
		fk, fv, _ = strings.Cut(args[3], "=")
	}
	for _, line := range strings.Split(data, "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			ts.Fatalf("%s: %v", args[1], err)
		}
		if fk != "" && fmt.Sprint(v[fk]) != fv {
			continue
		}
		s, ok := v[args[2]].(string)
		if !ok {
			ts.Fatalf("%s: no string field %s", args[1], args[2])
		}
		ts.Setenv(args[0], s)
		return
	}
	ts.Fatalf("%s: no matching line", args[1])
}
