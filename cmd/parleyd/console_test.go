package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base32"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/parleychat/parley/client/transport"
	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/mls"
	"github.com/parleychat/parley/moderation/console"
	"github.com/parleychat/parley/wire/parleypb"
)

// consoleServer runs parleyd with --admin-listen and returns its data
// directory, the delivery URL and the console's URL.
func consoleServer(t *testing.T) (data, url, adminURL string) {
	t.Helper()
	// Cheap password hashes: the race detector makes RFC 9106's slow.
	old := moderatorArgon2
	moderatorArgon2 = console.Argon2Params{Memory: 1024, Time: 1, Threads: 1}
	t.Cleanup(func() { moderatorArgon2 = old })
	data = filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	ready, adminReady := make(chan string, 1), make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "open", retention: time.Hour,
			maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second,
			kt: ktFlags{interval: 20 * time.Millisecond}, adminListen: "127.0.0.1:0", adminReady: adminReady}
		done <- serveWith(ctx, f, slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
	}()
	select {
	case addr := <-adminReady:
		adminURL = "http://" + addr
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	url = "http://" + <-ready
	t.Cleanup(func() { cancel(); <-done })
	return data, url, adminURL
}

// reportedCase has mallory send alice two franked messages and alice
// report them through the real server; it returns the case's id.
func reportedCase(t *testing.T, url string, malloryKey ed25519.PrivateKey) string {
	t.Helper()
	ctx := context.Background()
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
	mallory, alice := reg("mallory", malloryKey), reg("alice", newKey(t))
	conv := []byte("conversation-with-mallory")
	if err := mallory.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	ad, _ := alice.ListDevices(ctx)
	if _, err := mallory.SendCommit(ctx, transport.Commit{ID: transport.NewMessageID(), ConversationID: conv, Epoch: 0, Payload: []byte("c"),
		Added: []string{ad[0].ID}, Welcome: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	contents := []string{"you will regret this", "I know where you live"}
	salts := map[string][]byte{}
	for _, c := range contents {
		p, salt, _ := frankedPayload(t, conv, []byte(c))
		salts[c] = salt
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
		var mm mls.MLSMessage
		if err := mm.Unmarshal(m.Payload); err != nil {
			t.Fatal(err)
		}
		tag, _ := franking.TagFromAAD(mm.PrivateMessage.AuthenticatedData)
		content := contents[len(reported)]
		reported = append(reported, &parleypb.ReportedMessage{SenderUser: m.SenderUser, SenderDeviceId: m.Sender,
			AcceptedUnixMs: m.Accepted.UnixMilli(), Content: []byte(content), Salt: salts[content], FrankingTag: tag, Frank: m.Frank})
	}
	id, err := alice.Report(ctx, &parleypb.ReportRequest{ConversationId: conv, Reason: "harassment", Note: "threats since Monday", Messages: reported})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	return id
}

// addModerator runs "parleyd admin moderators add" and returns the TOTP
// secret it printed.
func addModerator(t *testing.T, data, name, password string, lead bool) []byte {
	t.Helper()
	moderatorStdin = strings.NewReader(password + "\n")
	defer func() { moderatorStdin = os.Stdin }()
	args := []string{"moderators", "add", name, "--data", data}
	if lead {
		args = append(args, "--lead")
	}
	out := legalCmd(t, 0, args...)
	m := regexp.MustCompile(`secret=([A-Z2-7]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no otpauth URL: %s", out)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestModeratorsAdd(t *testing.T) {
	data, _, _ := consoleServer(t)
	addModerator(t, data, "ana", "a long enough password", true)
	moderatorStdin = strings.NewReader("short\n")
	defer func() { moderatorStdin = os.Stdin }()
	if out := legalCmd(t, 1, "moderators", "add", "bo", "--data", data); !strings.Contains(out, "at least") {
		t.Fatalf("a short password: %s", out)
	}
	moderatorStdin = strings.NewReader("another long password\n")
	legalCmd(t, 1, "moderators", "add", "ana", "--data", data)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("password from a file\n"), 0o600)
	legalCmd(t, 0, "moderators", "add", "bo", "--data", data, "--password-file", pw)
	out := legalCmd(t, 0, "moderators", "list", "--data", data)
	if !regexp.MustCompile(`ana\s+lead`).MatchString(out) || !regexp.MustCompile(`bo\s+moderator`).MatchString(out) {
		t.Fatalf("moderators list: %s", out)
	}
	db, _ := os.ReadFile(filepath.Join(data, "moderation.db"))
	wal, _ := os.ReadFile(filepath.Join(data, "moderation.db-wal"))
	if strings.Contains(string(db)+string(wal), "a long enough password") {
		t.Fatal("a password is stored in clear")
	}
}

func TestAdminListenLoopbackOnly(t *testing.T) {
	f := serveFlags{data: filepath.Join(t.TempDir(), "data"), listen: "127.0.0.1:0", adminListen: "0.0.0.0:0", registration: "open",
		retention: time.Hour, maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second}
	err := serveWith(context.Background(), f, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "--admin-listen") {
		t.Fatalf("a plain HTTP console on a public address: %v", err)
	}
}

// chromium finds the browser the console test drives.
func chromium(t *testing.T) string {
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found for the web console's browser test: run scripts/install-chromium (or set CHROMIUM to a Chrome binary)")
	return ""
}

// The moderators' web console end to end, in headless Chromium: alice
// reports mallory through the real server; a lead added with "parleyd
// admin moderators add" is refused without a session and with a wrong
// TOTP code, signs in with password and code, opens the case (its proofs
// verify), suspends mallory; the audit log shows it, a form without the
// CSRF token is refused, and mallory is barred at her next sign-in.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	data, srvURL, adminURL := consoleServer(t)
	malloryKey := newKey(t)
	caseID := reportedCase(t, srvURL, malloryKey)
	secret := addModerator(t, data, "ana", "correct horse battery staple", true)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))
	if os.Geteuid() == 0 {
		// Chromium's sandbox does not run as root (in containers, as CI is).
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The browser starts on the first action, under a context without a
	// deadline (a deadline there would stop the browser); the rest share
	// one.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
	defer cancelT()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("the text of #%s: %v", id, err)
		}
		return s
	}
	// No session: the case page sends the browser to sign in.
	do("a page without a session", chromedp.Navigate(adminURL+"/cases/"+caseID), chromedp.WaitVisible(chromedp.ID("login")))
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/login") {
		t.Fatalf("a page without a session went to %s (%v)", loc, err)
	}
	// A wrong TOTP code.
	do("a bad TOTP code", chromedp.SendKeys(chromedp.ID("name"), "ana"), chromedp.SendKeys(chromedp.ID("password"), "correct horse battery staple"),
		chromedp.SendKeys(chromedp.ID("code"), "000000"), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("error")))
	if msg := text("error"); !strings.Contains(msg, "Wrong name, password or code") {
		t.Fatalf("a bad TOTP code: %q", msg)
	}
	// Password and the right code.
	do("sign in", chromedp.SendKeys(chromedp.ID("name"), "ana"), chromedp.SendKeys(chromedp.ID("password"), "correct horse battery staple"),
		chromedp.SendKeys(chromedp.ID("code"), console.TOTPCode(secret, time.Now())), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("metrics")))
	if open := text("open"); open != "1" {
		t.Fatalf("open cases on the dashboard: %q", open)
	}
	// The queue, then the case.
	do("open the case", chromedp.Navigate(adminURL+"/cases"), chromedp.Click(chromedp.CSS(`a[href="/cases/`+caseID+`"]`)), chromedp.WaitVisible(chromedp.ID("messages")))
	if msgs := text("messages"); !strings.Contains(msgs, "I know where you live") || strings.Count(msgs, "proof verified") != 2 {
		t.Fatalf("the case's messages: %q", msgs)
	}
	// Suspend mallory for a week.
	until := time.Now().AddDate(0, 0, 7).Format(time.DateOnly)
	do("decide", chromedp.SetValue(chromedp.ID("action"), "suspend"), chromedp.SetValue(chromedp.ID("until"), until),
		chromedp.SendKeys(chromedp.ID("reason"), "threats of violence"), chromedp.Click(chromedp.ID("submit")),
		// The decided case's page has no decision form.
		chromedp.WaitNotPresent(chromedp.ID("decide")), chromedp.WaitVisible(chromedp.ID("state")))
	if state := text("state"); state != "decided" {
		t.Fatalf("the case after the decision: %q", state)
	}
	do("the audit log", chromedp.Navigate(adminURL+"/audit"), chromedp.WaitVisible(chromedp.ID("audit")))
	if audit := text("audit"); !strings.Contains(audit, "case:suspend") || !strings.Contains(audit, "case:"+caseID) || !strings.Contains(audit, "ana") || !strings.Contains(audit, "threats of violence") {
		t.Fatalf("the audit log: %q", audit)
	}
	// A form posted without its CSRF token, with the browser's session.
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{adminURL}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", adminURL+"/cases/"+caseID+"/decide", strings.NewReader(url.Values{"action": {"ban"}, "reason": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var session bool
	for _, c := range cookies.Cookies {
		if c.Name == "parley_mod" {
			session = c.HTTPOnly && c.SameSite == network.CookieSameSiteStrict
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	if !session {
		t.Fatalf("no HttpOnly, SameSite=Strict session cookie: %+v", cookies.Cookies)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a form without its CSRF token: %s", resp.Status)
	}

	// mallory is told at her next sign-in.
	mc, err := transport.Dial(context.Background(), srvURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	sess, err := mc.Authenticate(context.Background(), malloryKey)
	if err != nil || !strings.Contains(sess.Barred, "suspended until "+until) || !strings.Contains(sess.Barred, "threats of violence") {
		t.Fatalf("mallory's session: %+v %v", sess, err)
	}
}
