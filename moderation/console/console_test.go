package console

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/franking"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
)

// cheap keeps the tests fast; the parameters travel in the hash.
var cheap = Argon2Params{Memory: 1024, Time: 1, Threads: 1}

type fixture struct {
	t     *testing.T
	store moderation.Store
	srv   *httptest.Server
	mu    sync.Mutex
	now   time.Time
	key   ed25519.PrivateKey
	case1 int64
	// holdActs records what DecideHold was asked to do (the channel
	// side is channels.DecideHold, tested in package channels and end to
	// end in cmd/parleyd).
	holdActs []string
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// advance moves the clock to the next TOTP step (a code is good once).
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := modsqlite.Open(context.Background(), filepath.Join(t.TempDir(), "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st)
}

// newFixtureOn seeds st (moderators and cases) and serves a console over
// it.
func newFixtureOn(t *testing.T, st moderation.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{t: t, store: st, now: time.Now().UTC(), key: key}
	for _, m := range []struct {
		name string
		lead bool
	}{{"mod1", false}, {"lead1", true}, {"lead2", true}} {
		h, err := HashPassword("password of "+m.name, cheap)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddModerator(ctx, moderation.Moderator{Name: m.name, Lead: m.lead, PasswordHash: h, TOTPSecret: []byte("secret of " + m.name)}); err != nil {
			t.Fatal(err)
		}
	}
	// A case with one genuine message and one whose content was altered.
	conv := []byte("conv-1")
	mk := func(content string, alter bool) moderation.CaseMessage {
		salt := make([]byte, franking.SaltSize)
		rand.Read(salt)
		tag, _ := franking.Tag(salt, []byte(content))
		fc := franking.Context{Conversation: conv, SenderUser: "mallory", SenderDevice: "dev1", Accepted: f.now.Add(-time.Hour).Truncate(time.Millisecond)}
		frank, err := franking.Frank(key, tag, fc)
		if err != nil {
			t.Fatal(err)
		}
		if alter {
			content += " (altered)"
		}
		return moderation.CaseMessage{Tag: tag, Conversation: conv, SenderUser: "mallory", SenderDevice: "dev1", Accepted: fc.Accepted, Content: []byte(content), Salt: salt, Frank: frank}
	}
	var err error
	f.case1, err = st.FileReport(ctx, moderation.CaseReport{Reporter: "alice", Reason: "harassment", Note: "threats <b>since</b> Monday", Received: f.now.Add(-30 * time.Minute)},
		"mallory", []moderation.CaseMessage{mk("you will regret this", false), mk("I know where you live", true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.FileReport(ctx, moderation.CaseReport{Reporter: "bob", Reason: "spam", Received: f.now}, "spammer", []moderation.CaseMessage{mk("buy now", false)}); err != nil {
		t.Fatal(err)
	}
	f.srv = f.serve(st)
	return f
}

// serve starts a console over st with the fixture's clock and key: the
// fixture's own, another node on the same database, or the same node
// restarted.
func (f *fixture) serve(st moderation.Store) *httptest.Server {
	f.t.Helper()
	decideHold := func(ctx context.Context, id int64, e moderation.CaseEvent) (moderation.Case, error) {
		f.mu.Lock()
		f.holdActs = append(f.holdActs, e.Action)
		f.mu.Unlock()
		return st.ActOnCase(ctx, id, e)
	}
	c, err := New(Config{Store: st, FrankingKey: f.key.Public().(ed25519.PublicKey), Now: f.clock, Argon2: cheap, DecideHold: decideHold})
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	f.t.Cleanup(srv.Close)
	return srv
}

// browser is a client with its own cookies that does not follow
// redirects.
type browser struct {
	f    *fixture
	c    *http.Client
	base string // the console's URL
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, base: f.srv.URL, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// at is the same browser (its cookies) talking to the console at srv.
func (b *browser) at(srv *httptest.Server) *browser {
	return &browser{f: b.f, c: b.c, base: srv.URL}
}

func (b *browser) do(method, path string, form url.Values) (int, string, http.Header) {
	b.f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page: %s", page)
	}
	return m[1]
}

// login signs in through the form; code "" means the right one.
func (b *browser) login(name, password, code string) (int, string) {
	b.f.t.Helper()
	_, page, _ := b.do("GET", "/login", nil)
	if code == "" {
		code = TOTPCode([]byte("secret of "+name), b.f.clock())
	}
	st, body, _ := b.do("POST", "/login", url.Values{"csrf": {csrfOf(b.f.t, page)}, "name": {name}, "password": {password}, "code": {code}})
	return st, body
}

func (b *browser) mustLogin(name string) string {
	b.f.t.Helper()
	b.f.advance(totpStep)
	if st, body := b.login(name, "password of "+name, ""); st != http.StatusSeeOther {
		b.f.t.Fatalf("sign-in as %s: %d %s", name, st, body)
	}
	st, page, _ := b.do("GET", "/", nil)
	if st != http.StatusOK || !strings.Contains(page, "Open cases") {
		b.f.t.Fatalf("dashboard: %d %s", st, page)
	}
	return csrfOf(b.f.t, page)
}

func TestNoSession(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	for _, p := range []string{"/", "/cases", "/cases/1", "/audit"} {
		if st, _, h := b.do("GET", p, nil); st != http.StatusSeeOther || h.Get("Location") != "/login" {
			t.Errorf("GET %s without a session: %d to %q", p, st, h.Get("Location"))
		}
	}
	if st, _, _ := b.do("POST", "/cases/1/decide", url.Values{"action": {"ban"}, "reason": {"x"}, "csrf": {"x"}}); st != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d", st)
	}
	// A forged session cookie is no session.
	u, _ := url.Parse(f.srv.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "forged"}})
	if st, _, _ := b.do("GET", "/cases", nil); st != http.StatusSeeOther {
		t.Errorf("a forged session: %d", st)
	}
	if c, _ := f.store.Case(context.Background(), f.case1); c.State != moderation.CaseOpen {
		t.Fatalf("the case changed: %s", c.State)
	}
}

func TestLoginRefusals(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	if st, body := b.login("mod1", "wrong password", ""); st != http.StatusUnauthorized || !strings.Contains(body, "Wrong name, password or code") {
		t.Errorf("a bad password: %d", st)
	}
	if st, _ := b.login("mod1", "password of mod1", "000000"); st != http.StatusUnauthorized {
		t.Errorf("a bad TOTP code: %d", st)
	}
	if st, _ := b.login("mod1", "password of mod1", TOTPCode([]byte("secret of mod1"), f.clock().Add(-5*totpStep))); st != http.StatusUnauthorized {
		t.Errorf("an old TOTP code: %d", st)
	}
	if st, _ := b.login("nobody", "password of mod1", ""); st != http.StatusUnauthorized {
		t.Errorf("an unknown name: %d", st)
	}
	// The sign-in form has its CSRF token too.
	if st, _, _ := b.do("POST", "/login", url.Values{"name": {"mod1"}, "password": {"password of mod1"}, "code": {TOTPCode([]byte("secret of mod1"), f.clock())}}); st != http.StatusForbidden {
		t.Errorf("sign-in without its CSRF token: %d", st)
	}
	if st, _, _ := b.do("GET", "/", nil); st != http.StatusSeeOther {
		t.Errorf("a session after failed sign-ins: %d", st)
	}
	// A code is good once.
	b.mustLogin("mod1")
	if st, _ := f.browser().login("mod1", "password of mod1", ""); st != http.StatusUnauthorized {
		t.Errorf("a TOTP code used twice: %d", st)
	}
}

func TestLoginRateLimited(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	for i := 0; i < loginFailures; i++ {
		if st, _ := b.login("lead1", "guess", ""); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	f.advance(totpStep)
	if st, _ := b.login("lead1", "password of lead1", ""); st != http.StatusTooManyRequests {
		t.Fatalf("the right password after %d failures: %d", loginFailures, st)
	}
	f.advance(loginWindow + totpStep)
	if st, _ := b.login("lead1", "password of lead1", ""); st != http.StatusSeeOther {
		t.Fatalf("after the window: %d", st)
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	csrf := b.mustLogin("mod1")
	path := "/cases/" + itoa(f.case1) + "/decide"
	form := url.Values{"action": {"warn"}, "reason": {"rude"}}
	if st, _, _ := b.do("POST", path, form); st != http.StatusForbidden {
		t.Errorf("a decision without a CSRF token: %d", st)
	}
	form.Set("csrf", csrf+"x")
	if st, _, _ := b.do("POST", path, form); st != http.StatusForbidden {
		t.Errorf("a decision with a wrong CSRF token: %d", st)
	}
	// Another session's token is wrong here too.
	other := f.browser().mustLogin("lead1")
	form.Set("csrf", other)
	if st, _, _ := b.do("POST", path, form); st != http.StatusForbidden {
		t.Errorf("a decision with another session's CSRF token: %d", st)
	}
	if st, _, _ := b.do("POST", "/logout", url.Values{}); st != http.StatusForbidden {
		t.Errorf("sign-out without a CSRF token: %d", st)
	}
	if c, _ := f.store.Case(context.Background(), f.case1); c.State != moderation.CaseOpen || len(c.Events) != 0 {
		t.Fatalf("the case changed: %+v", c)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The happy path, then the appeal's rules: a moderator works the queue,
// opens the case (the genuine message's proof verifies, the altered one's
// fails), suspends the account; the account appeals; a moderator who is
// not a lead, and the lead who decided, may not decide the appeal;
// another lead does.
func TestDecideAndAppeal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mod := f.browser()
	csrf := mod.mustLogin("mod1")
	_, q, _ := mod.do("GET", "/cases", nil)
	if !strings.Contains(q, "mallory") || !strings.Contains(q, "spammer") {
		t.Fatalf("the queue: %s", q)
	}
	if _, q, _ = mod.do("GET", "/cases?state=open&reason=spam", nil); strings.Contains(q, "mallory") || !strings.Contains(q, "spammer") {
		t.Fatalf("the queue filtered by reason: %s", q)
	}
	path := "/cases/" + itoa(f.case1)
	st, page, _ := mod.do("GET", path, nil)
	if st != http.StatusOK || !strings.Contains(page, "you will regret this") || strings.Count(page, "proof verified") != 1 ||
		!strings.Contains(page, "PROOF FAILS") || !strings.Contains(page, "threats &lt;b&gt;since&lt;/b&gt; Monday") {
		t.Fatalf("the case page: %d %s", st, page)
	}
	if st, _, _ := mod.do("POST", path+"/decide", url.Values{"csrf": {csrf}, "action": {"suspend"}, "reason": {"threats"}}); st != http.StatusBadRequest {
		t.Fatalf("a suspension without an end: %d", st)
	}
	if st, _, _ := mod.do("POST", path+"/decide", url.Values{"csrf": {csrf}, "action": {"smite"}, "reason": {"threats"}}); st != http.StatusBadRequest {
		t.Fatalf("an unknown action: %d", st)
	}
	until := f.clock().AddDate(0, 0, 7).Format(time.DateOnly)
	if st, _, h := mod.do("POST", path+"/decide", url.Values{"csrf": {csrf}, "action": {"suspend"}, "until": {until}, "reason": {"threats of violence"}}); st != http.StatusSeeOther || h.Get("Location") != path {
		t.Fatalf("the decision: %d %v", st, h)
	}
	if sn, err := f.store.Sanction(ctx, "mallory", f.clock()); err != nil || sn.Until.Format(time.DateOnly) != until {
		t.Fatalf("the sanction: %+v %v", sn, err)
	}
	if st, _, _ := mod.do("POST", path+"/decide", url.Values{"csrf": {csrf}, "action": {"ban"}, "reason": {"again"}}); st != http.StatusConflict {
		t.Fatalf("deciding a decided case: %d", st)
	}
	_, audit, _ := mod.do("GET", "/audit", nil)
	if !strings.Contains(audit, "case:suspend") || !strings.Contains(audit, "threats of violence") || !strings.Contains(audit, "mod1") {
		t.Fatalf("the audit log: %s", audit)
	}
	_, dash, _ := mod.do("GET", "/", nil)
	if !strings.Contains(dash, `<td id="open">1</td>`) {
		t.Fatalf("the dashboard: %s", dash)
	}

	if _, err := f.store.ActOnCase(ctx, f.case1, moderation.CaseEvent{Action: "appeal", Reason: "a joke"}); err != nil {
		t.Fatal(err)
	}
	appeal := url.Values{"csrf": {csrf}, "action": {"dismiss"}, "reason": {"upheld"}}
	if st, body, _ := mod.do("POST", path+"/decide", appeal); st != http.StatusForbidden || !strings.Contains(body, "Only a lead") {
		t.Fatalf("a moderator who is not a lead deciding the appeal: %d %s", st, body)
	}
	lead1 := f.browser()
	lcsrf := lead1.mustLogin("lead1")
	same := f.browser()
	scsrf := same.mustLogin("lead2")
	// lead2 decides the spam case, which is then appealed: lead2 may not
	// decide that appeal, lead1 may.
	cs, _ := f.store.Cases(ctx, moderation.CaseOpen, 0)
	spam := "/cases/" + itoa(cs[0].ID)
	if st, _, _ := same.do("POST", spam+"/decide", url.Values{"csrf": {scsrf}, "action": {"ban"}, "reason": {"spam"}}); st != http.StatusSeeOther {
		t.Fatalf("lead2's decision: %d", st)
	}
	f.store.ActOnCase(ctx, cs[0].ID, moderation.CaseEvent{Action: "appeal", Reason: "not spam"})
	if st, body, _ := same.do("POST", spam+"/decide", url.Values{"csrf": {scsrf}, "action": {"dismiss"}, "reason": {"fine"}}); st != http.StatusForbidden || !strings.Contains(body, "another lead") {
		t.Fatalf("the same moderator deciding the appeal: %d %s", st, body)
	}
	if st, _, _ := lead1.do("POST", spam+"/decide", url.Values{"csrf": {lcsrf}, "action": {"dismiss"}, "reason": {"fine"}}); st != http.StatusSeeOther {
		t.Fatalf("another lead deciding the appeal: %d", st)
	}
	if st, _, _ := lead1.do("POST", path+"/decide", url.Values{"csrf": {lcsrf}, "action": {"dismiss"}, "reason": {"upheld"}}); st != http.StatusSeeOther {
		t.Fatalf("a lead deciding mallory's appeal: %d", st)
	}
	if sn, _ := f.store.Sanction(ctx, "mallory", f.clock()); sn.Active() {
		t.Fatalf("still sanctioned after the appeal was upheld: %+v", sn)
	}
	// Sign-out ends the session.
	if st, _, _ := lead1.do("POST", "/logout", url.Values{"csrf": {lcsrf}}); st != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", st)
	}
	if st, _, _ := lead1.do("GET", "/", nil); st != http.StatusSeeOther {
		t.Fatalf("a page after sign-out: %d", st)
	}
}

func TestSessionExpires(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.mustLogin("mod1")
	f.advance(8*time.Hour + time.Second)
	if st, _, h := b.do("GET", "/cases", nil); st != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Fatalf("a page after the session expired: %d", st)
	}
}

func TestSessionCookie(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	_, page, _ := b.do("GET", "/login", nil)
	f.advance(totpStep)
	_, _, h := b.do("POST", "/login", url.Values{"csrf": {csrfOf(t, page)}, "name": {"mod1"}, "password": {"password of mod1"}, "code": {TOTPCode([]byte("secret of mod1"), f.clock())}})
	var found bool
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
				t.Fatalf("session cookie: %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie: %v", h)
	}
}

// RFC 6238 Appendix B's SHA-1 test vectors (eight digits there: the last
// six are ours).
func TestTOTPVectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "94287082"}, {1111111109, "07081804"}, {1234567890, "89005924"}, {2000000000, "69279037"}} {
		if got := TOTPCode(secret, time.Unix(v.unix, 0)); got != v.code[2:] {
			t.Errorf("T=%d: %s, want %s", v.unix, got, v.code[2:])
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery", cheap)
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") || strings.Contains(h, "horse") {
		t.Fatalf("hash: %q %v", h, err)
	}
	if !CheckPassword(h, "correct horse battery") || CheckPassword(h, "correct horse batterz") || CheckPassword("garbage", "x") {
		t.Fatal("CheckPassword")
	}
}

func TestMetrics(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var cs []moderation.Case
	for i := 1; i <= 20; i++ {
		cs = append(cs, moderation.Case{Opened: t0, State: moderation.CaseDecided, Events: []moderation.CaseEvent{
			{Time: t0.Add(time.Duration(i) * time.Minute), Action: moderation.ActionWarn},
			{Time: t0.Add(time.Hour), Action: "appeal"}, {Time: t0.Add(2 * time.Hour), Action: moderation.ActionDismiss}}})
	}
	cs = append(cs, moderation.Case{Opened: t0, State: moderation.CaseOpen})
	m := ComputeMetrics(cs)
	if m.Open != 1 || m.Decided != 20 || m.P50 != 10*time.Minute || m.P95 != 19*time.Minute || m.Decisions["warn"] != 20 || m.Decisions["dismiss"] != 20 {
		t.Fatalf("%+v", m)
	}
}

// Only a lead adds moderators; the new account signs in with the secret
// shown once.
func TestAddModeratorPage(t *testing.T) {
	f := newFixture(t)
	mod := f.browser()
	csrf := mod.mustLogin("mod1")
	if st, _, _ := mod.do("GET", "/moderators", nil); st != http.StatusForbidden {
		t.Fatalf("the moderators page for a moderator who is not a lead: %d", st)
	}
	add := url.Values{"csrf": {csrf}, "name": {"cy"}, "password": {"password of cy"}}
	if st, _, _ := mod.do("POST", "/moderators", add); st != http.StatusForbidden {
		t.Fatalf("a moderator who is not a lead adding one: %d", st)
	}
	lead := f.browser()
	add.Set("csrf", lead.mustLogin("lead1"))
	if st, _, _ := lead.do("POST", "/moderators", url.Values{"name": {"cy"}, "password": {"password of cy"}}); st != http.StatusForbidden {
		t.Fatalf("adding without a CSRF token: %d", st)
	}
	bad := url.Values{"csrf": add["csrf"], "name": {"cy"}, "password": {"short"}}
	if st, _, _ := lead.do("POST", "/moderators", bad); st != http.StatusBadRequest {
		t.Fatalf("a short password: %d", st)
	}
	st, page, _ := lead.do("POST", "/moderators", add)
	m := regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(page)
	if st != http.StatusOK || m == nil {
		t.Fatalf("adding cy: %d %s", st, page)
	}
	if st, _, _ := lead.do("POST", "/moderators", add); st != http.StatusConflict {
		t.Fatalf("adding cy twice: %d", st)
	}
	secret, _ := b32.DecodeString(m[1])
	cy := f.browser()
	_, login, _ := cy.do("GET", "/login", nil)
	f.advance(totpStep)
	if st, _, _ := cy.do("POST", "/login", url.Values{"csrf": {csrfOf(t, login)}, "name": {"cy"}, "password": {"password of cy"}, "code": {TOTPCode(secret, f.clock())}}); st != http.StatusSeeOther {
		t.Fatalf("cy signing in: %d", st)
	}
	got, err := f.store.Moderator(context.Background(), "cy")
	if err != nil || got.Lead || strings.Contains(got.PasswordHash, "password of cy") {
		t.Fatalf("cy: %+v %v", got, err)
	}
}

// Held channel posts are in the queue beside the reports, with what they
// matched; the queue filters by kind and by how long a case has waited;
// a hold is decided with the hold actions only.
func TestQueueHoldsAndFilters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	hold, err := f.store.FileHold(ctx, moderation.Hold{Post: 7, Channel: "news", Author: "poster", Text: "see this",
		Matches: []moderation.HoldMatch{{Media: 0, List: "review-x", Label: "extremism", Type: "pdq", Hash: "f00dfeed", Distance: 12}}}, f.clock().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	csrf := b.mustLogin("mod1")
	rows := func(q string) []string {
		t.Helper()
		st, page, _ := b.do("GET", "/cases"+q, nil)
		if st != http.StatusOK {
			t.Fatalf("GET /cases%s: %d", q, st)
		}
		var ids []string
		for _, m := range regexp.MustCompile(`href="/cases/(\d+)"`).FindAllStringSubmatch(page, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	if got := rows(""); len(got) != 3 || got[0] != itoa(hold) {
		t.Fatalf("the open queue, oldest first: %v (hold %d)", got, hold)
	}
	if got := rows("?kind=hold"); len(got) != 1 || got[0] != itoa(hold) {
		t.Fatalf("holds only: %v", got)
	}
	if got := rows("?kind=report"); len(got) != 2 || slices.Contains(got, itoa(hold)) {
		t.Fatalf("reports only: %v", got)
	}
	if got := rows("?older=24h"); len(got) != 1 || got[0] != itoa(hold) {
		t.Fatalf("waiting a day or more: %v", got)
	}
	if got := rows("?older=20m"); len(got) != 2 {
		t.Fatalf("waiting 20 minutes or more: %v", got)
	}
	if st, _, _ := b.do("GET", "/cases?older=soon", nil); st != http.StatusBadRequest {
		t.Fatalf("a bad age: %d", st)
	}
	st, page, _ := b.do("GET", "/cases/"+itoa(hold), nil)
	for _, want := range []string{"review-x", "f00dfeed", "<td>12</td>", "see this", "remove_channel", "news"} {
		if st != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("the hold's page lacks %q: %d %s", want, st, page)
		}
	}
	path := "/cases/" + itoa(hold) + "/decide"
	if st, _, _ := b.do("POST", path, url.Values{"csrf": {csrf}, "action": {"ban"}, "reason": {"x"}}); st != http.StatusBadRequest {
		t.Fatalf("a ban on a held post: %d", st)
	}
	if st, _, _ := b.do("POST", path, url.Values{"csrf": {csrf}, "action": {"release"}}); st != http.StatusBadRequest {
		t.Fatalf("a release without a reason: %d", st)
	}
	if len(f.holdActs) != 0 {
		t.Fatalf("refused decisions reached the channel: %v", f.holdActs)
	}
	if st, _, _ := b.do("POST", path, url.Values{"csrf": {csrf}, "action": {"remove_post"}, "reason": {"recruiting"}}); st != http.StatusSeeOther {
		t.Fatalf("removing the post: %d", st)
	}
	if c, _ := f.store.Case(ctx, hold); c.State != moderation.CaseClosed || len(f.holdActs) != 1 || f.holdActs[0] != "remove_post" {
		t.Fatalf("after the decision: %s %v", c.State, f.holdActs)
	}
	if st, _, _ := b.do("POST", path, url.Values{"csrf": {csrf}, "action": {"release"}, "reason": {"again"}}); st != http.StatusConflict {
		t.Fatalf("deciding a closed hold: %d", st)
	}
}

// A lead removes a moderator: the moderator's session ends, they cannot
// sign in again, the audit log says who removed them, and the last lead
// cannot be removed.
func TestRemoveModerator(t *testing.T) {
	f := newFixture(t)
	mod := f.browser()
	modCSRF := mod.mustLogin("mod1")
	if st, _, _ := mod.do("POST", "/moderators/lead2/remove", url.Values{"csrf": {modCSRF}}); st != http.StatusForbidden {
		t.Fatalf("a moderator who is not a lead removing one: %d", st)
	}
	lead := f.browser()
	csrf := lead.mustLogin("lead1")
	if st, _, _ := lead.do("POST", "/moderators/mod1/remove", url.Values{}); st != http.StatusForbidden {
		t.Fatalf("removing without a CSRF token: %d", st)
	}
	if st, page, _ := lead.do("POST", "/moderators/mod1/remove", url.Values{"csrf": {csrf}}); st != http.StatusOK || !strings.Contains(page, `id="removed"`) {
		t.Fatalf("removing mod1: %d %s", st, page)
	}
	if st, _, h := mod.do("GET", "/cases", nil); st != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Fatalf("the removed moderator's session: %d", st)
	}
	f.advance(totpStep)
	if st, _ := f.browser().login("mod1", "password of mod1", ""); st != http.StatusUnauthorized {
		t.Fatalf("the removed moderator signing in: %d", st)
	}
	if st, _, _ := lead.do("POST", "/moderators/mod1/remove", url.Values{"csrf": {csrf}}); st != http.StatusNotFound {
		t.Fatalf("removing mod1 twice: %d", st)
	}
	if st, _, _ := lead.do("POST", "/moderators/lead2/remove", url.Values{"csrf": {csrf}}); st != http.StatusOK {
		t.Fatalf("removing lead2: %d", st)
	}
	if st, _, _ := lead.do("POST", "/moderators/lead1/remove", url.Values{"csrf": {csrf}}); st != http.StatusConflict {
		t.Fatalf("removing the last lead: %d", st)
	}
	_, page, _ := lead.do("GET", "/audit?subject=moderator:mod1", nil)
	if !strings.Contains(page, "moderator:remove") || !strings.Contains(page, "<td>lead1</td>") {
		t.Fatalf("the audit log: %s", page)
	}
}
