package console

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/parleychat/parley/internal/pgtest"
	"github.com/parleychat/parley/moderation/modpg"
	"github.com/parleychat/parley/moderation/modsqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// twoNodes serves two consoles (nodes A and B) over one PostgreSQL
// database, with a browser on each (their own cookies).
func twoNodes(t *testing.T) (f *fixture, onA, onB *browser) {
	t.Helper()
	dsn := pgtest.DB(t)
	open := func() *modpg.Store {
		st, err := modpg.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	f = newFixtureOn(t, open())
	return f, f.browser(), f.browser().at(f.serve(open()))
}

// restartable serves a console (f) over a SQLite database in a fresh
// directory. restart stops that node, closes and reopens the database and
// serves the fixture's console on it again: the restarted node knows only
// what the database kept.
func restartable(t *testing.T) (f *fixture, restart func() *httptest.Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moderation.db")
	open := func() *modsqlite.Store {
		st, err := modsqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	f = newFixtureOn(t, st)
	return f, func() *httptest.Server {
		t.Helper()
		f.srv.Close()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st2 := open()
		t.Cleanup(func() { st2.Close() })
		return f.serve(st2)
	}
}

// signedIn reports whether the browser's session is accepted (a page, not
// the redirect to the sign-in page).
func (b *browser) signedIn() bool {
	b.f.t.Helper()
	st, page, h := b.do("GET", "/", nil)
	switch {
	case st == http.StatusOK && strings.Contains(page, "Open cases"):
		return true
	case st == http.StatusSeeOther && h.Get("Location") == "/login":
		return false
	}
	b.f.t.Fatalf("GET /: %d %s", st, page)
	return false
}

// A session made on node A is accepted by node B on the same database,
// forms included (the CSRF token is the session's), and signing out on
// node A ends it on node B.
func TestSessionOnEveryNode(t *testing.T) {
	f, onA, onB := twoNodes(t)
	onA.c = onB.c // one browser (its cookies), two nodes
	csrf := onA.mustLogin("mod1")
	if !onB.signedIn() {
		t.Fatal("node B refused a session made on node A")
	}
	if st, page, _ := onB.do("POST", "/cases/"+itoa(f.case1)+"/decide", url.Values{"csrf": {csrf}, "action": {"warn"}, "reason": {"rude"}}); st != http.StatusSeeOther {
		t.Fatalf("a form on node B with node A's session: %d %s", st, page)
	}
	token := onA.sessionToken(t)
	if st, _, _ := onA.do("POST", "/logout", url.Values{"csrf": {csrf}}); st != http.StatusSeeOther {
		t.Fatalf("sign-out on node A: %d", st)
	}
	// The browser drops the cookie at sign-out; a copy of it (kept by
	// whoever stole it) must not work on node B either.
	stolen := &browser{f: f, c: &http.Client{CheckRedirect: onB.c.CheckRedirect}, base: onB.base}
	stolen.setSession(t, token)
	if stolen.signedIn() {
		t.Fatal("node B accepted a session signed out on node A")
	}
}

// Deactivating an account on node B ends its session on node A.
func TestRemovalEndsSessionsOnEveryNode(t *testing.T) {
	_, mod, leadOnB := twoNodes(t)
	mod.mustLogin("mod1")
	csrf := leadOnB.mustLogin("lead1")
	if st, _, _ := leadOnB.do("POST", "/moderators/mod1/remove", url.Values{"csrf": {csrf}}); st != http.StatusOK {
		t.Fatalf("removing mod1 on node B: %d", st)
	}
	if mod.signedIn() {
		t.Fatal("node A accepted the session of a moderator removed on node B")
	}
}

// A session outlives a restart of the node (SQLite).
func TestSessionSurvivesRestart(t *testing.T) {
	f, restart := restartable(t)
	b := f.browser()
	b.mustLogin("mod1")
	if !b.at(restart()).signedIn() {
		t.Fatal("the restarted node refused a live session")
	}
}

// The attacker's move: with a copy of the database, present what it
// stores of a session as the session cookie. The store keeps only the
// token's SHA-256, so neither the stored value nor any spelling of it is
// a cookie, and the token appears nowhere in the database's files.
func TestStoredSessionIsNotACookie(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "moderation.db")
	st, err := modsqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixtureOn(t, st)
	b := f.browser()
	b.mustLogin("lead1")
	token := b.sessionToken(t)

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stored []byte
	if err := db.QueryRow(`SELECT token_hash FROM console_sessions`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	for _, name := range []string{"moderation.db", "moderation.db-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(token)) || bytes.Contains(data, raw) {
			t.Fatalf("%s holds the session token", name)
		}
	}
	for _, forged := range []string{string(stored), base64.RawURLEncoding.EncodeToString(stored), base64.StdEncoding.EncodeToString(stored), hex.EncodeToString(stored)} {
		attacker := f.browser()
		attacker.setSession(t, forged)
		if attacker.signedIn() {
			t.Fatalf("the stored value %q worked as a session cookie", forged)
		}
	}
	if !b.signedIn() {
		t.Fatal("the real cookie stopped working")
	}
}

// sessionToken is the browser's session cookie.
func (b *browser) sessionToken(t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// setSession gives the browser a session cookie of its own making.
func (b *browser) setSession(t *testing.T, value string) {
	t.Helper()
	u, _ := url.Parse(b.base)
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: value, Path: "/"}})
	b.c.Jar = jar
}

// The attacker's move: watch a moderator type a TOTP code (and know the
// password), then use the code on another node within its validity
// window. The last step used is in the shared store, so node B refuses a
// code that node A accepted.
func TestTOTPCodeOnceOnEveryNode(t *testing.T) {
	f, modOnA, attackerOnB := twoNodes(t)
	f.advance(totpStep)
	code := TOTPCode([]byte("secret of mod1"), f.clock())
	if st, body := modOnA.login("mod1", "password of mod1", code); st != http.StatusSeeOther {
		t.Fatalf("the moderator's sign-in on node A: %d %s", st, body)
	}
	if st, _ := attackerOnB.login("mod1", "password of mod1", code); st != http.StatusUnauthorized {
		t.Fatalf("node B accepted a TOTP code already used on node A: %d", st)
	}
	if attackerOnB.signedIn() {
		t.Fatal("the replayed code gave a session on node B")
	}
	// The next code works (on either node).
	f.advance(totpStep)
	if st, body := attackerOnB.login("mod1", "password of mod1", ""); st != http.StatusSeeOther {
		t.Fatalf("the next code on node B: %d %s", st, body)
	}
}

// The same after a restart of a SQLite node: the used step is on disk.
func TestTOTPCodeOnceAfterRestart(t *testing.T) {
	f, restart := restartable(t)
	f.advance(totpStep)
	code := TOTPCode([]byte("secret of mod1"), f.clock())
	if st, body := f.browser().login("mod1", "password of mod1", code); st != http.StatusSeeOther {
		t.Fatalf("the moderator's sign-in: %d %s", st, body)
	}
	attacker := f.browser().at(restart())
	if st, _ := attacker.login("mod1", "password of mod1", code); st != http.StatusUnauthorized {
		t.Fatalf("the restarted node accepted a TOTP code used before the restart: %d", st)
	}
}

// Two sign-ins with the same code at once, one on each node: the store's
// conditional write lets exactly one through.
func TestTOTPCodeRaceOnTwoNodes(t *testing.T) {
	f, onA, onB := twoNodes(t)
	f.advance(totpStep)
	code := TOTPCode([]byte("secret of mod1"), f.clock())
	type attempt struct {
		b    *browser
		form url.Values
	}
	var attempts []attempt
	for _, b := range []*browser{onA, onB} {
		_, page, _ := b.do("GET", "/login", nil)
		attempts = append(attempts, attempt{b, url.Values{"csrf": {csrfOf(t, page)}, "name": {"mod1"}, "password": {"password of mod1"}, "code": {code}}})
	}
	type result struct {
		status int
		err    error
	}
	results := make(chan result, len(attempts))
	start := make(chan struct{})
	for _, a := range attempts {
		go func() {
			<-start
			req, _ := http.NewRequest("POST", a.b.base+"/login", strings.NewReader(a.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := a.b.c.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			resp.Body.Close()
			results <- result{status: resp.StatusCode}
		}()
	}
	close(start)
	won := 0
	for range attempts {
		r := <-results
		switch {
		case r.err != nil:
			t.Fatal(r.err)
		case r.status == http.StatusSeeOther:
			won++
		case r.status != http.StatusUnauthorized:
			t.Fatalf("a racing sign-in: %d", r.status)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 2 racing sign-ins with one TOTP code succeeded, want exactly 1", won)
	}
}

// The attacker's move: spread password guesses over the nodes (and
// restarts) to get more than loginFailures per window. The counters are
// in the shared store, so guesses on node A and node B add up.
func TestLoginLimitOnEveryNode(t *testing.T) {
	f, onA, onB := twoNodes(t)
	for i := range loginFailures {
		b := onA
		if i%2 == 1 {
			b = onB
		}
		if st, _ := b.login("lead1", "guess", ""); st != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, st)
		}
	}
	f.advance(totpStep)
	for _, b := range []*browser{onA, onB} {
		if st, _ := b.login("lead1", "password of lead1", ""); st != http.StatusTooManyRequests {
			t.Fatalf("the right password after %d guesses spread over two nodes: %d", loginFailures, st)
		}
	}
	f.advance(loginWindow + totpStep)
	if st, _ := onB.login("lead1", "password of lead1", ""); st != http.StatusSeeOther {
		t.Fatalf("after the window: %d", st)
	}
}

// A restart (SQLite) does not clear the counters.
func TestLoginLimitSurvivesRestart(t *testing.T) {
	f, restart := restartable(t)
	for i := range loginFailures {
		if st, _ := f.browser().login("lead1", "guess", ""); st != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, st)
		}
	}
	node := restart()
	f.advance(totpStep)
	if st, _ := f.browser().at(node).login("lead1", "password of lead1", ""); st != http.StatusTooManyRequests {
		t.Fatalf("the restarted node forgot %d failed sign-ins: %d", loginFailures, st)
	}
}
