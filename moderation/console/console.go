// Package console is the moderators' web console (docs/moderation.md "The
// web console"): server-rendered pages (html/template, no JavaScript) over
// moderation.Store for the queue of abuse-report cases, a case with its
// messages' proofs re-verified, the decision form, the audit log and a
// dashboard. "parleyd serve --admin-listen" serves it on a listener of its
// own.
//
// Moderators sign in with a password (argon2id) and a TOTP code; sessions
// are random tokens that expire, kept in moderation.Store as their SHA-256
// only (so every node on one database and a restarted node accept them,
// and a sign-out or deactivation on one node ends them on all); every form
// carries a per-session CSRF token, derived from the session's token; failed sign-ins are rate limited per name and
// per client address. Leads alone decide appeals, and never an appeal of
// a case they decided before.
package console

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/moderation"
)

// Config configures a Console.
type Config struct {
	Store moderation.Store
	// FrankingKey is the public half of the server's franking key, under
	// which each case message's proof is re-verified.
	FrankingKey ed25519.PublicKey
	// Secure marks cookies Secure: set it when the console is served over
	// TLS.
	Secure bool
	Logger *slog.Logger
	// SessionTTL is how long a session lasts from sign-in (default 8h).
	SessionTTL time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Argon2 are the parameters of the passwords' hashes (default
	// DefaultArgon2): a sign-in with an unknown name spends as long as one
	// with a known name, on a hash with these.
	Argon2 Argon2Params
	// DecideHold carries out a decision on a held channel post's case
	// (channels.DecideHold: it acts on the channel, then records the
	// decision). Nil: hold cases are shown but decided with "parleyd
	// admin cases decide".
	DecideHold func(ctx context.Context, caseID int64, e moderation.CaseEvent) (moderation.Case, error)
}

// Login attempts: at most loginFailures failed attempts per name, and as
// many per client address, in a loginWindow that opens at the first
// failure; counted in the store, so over every node.
const (
	loginFailures = 5
	loginWindow   = 15 * time.Minute
	sessionCookie = "parley_mod"
	loginCookie   = "parley_mod_login"
)

// Console is the web console; it is an http.Handler.
type Console struct {
	cfg Config
	mux *http.ServeMux
	// The failed sign-ins (Store.AddLoginFailure) and the last TOTP step
	// used (Store.UseTOTPStep) are in the store, shared by every node.

	dummyOnce sync.Once
	dummy     string
}

// sessionHash is what the store keeps of a session token: its SHA-256.
// The cookie carries the token, which cannot be computed from the hash,
// so a copy of the database holds no usable cookie.
func sessionHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// sessionCSRF is a session's CSRF token: a hash of the session token in a
// domain of its own, so that it is neither stored nor the stored hash,
// and a form needs the session's token to forge.
func sessionCSRF(token string) string {
	h := sha256.Sum256([]byte("parley console CSRF\x00" + token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// New returns a console over cfg.Store.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || len(cfg.FrankingKey) != ed25519.PublicKeySize {
		return nil, errors.New("console: a store and the franking public key are needed")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Argon2 == (Argon2Params{}) {
		cfg.Argon2 = DefaultArgon2
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux()}
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.auth(c.logout))
	c.mux.HandleFunc("GET /{$}", c.auth(c.dashboard))
	c.mux.HandleFunc("GET /cases", c.auth(c.queue))
	c.mux.HandleFunc("GET /cases/{id}", c.auth(c.showCase))
	c.mux.HandleFunc("POST /cases/{id}/decide", c.auth(c.decide))
	c.mux.HandleFunc("GET /audit", c.auth(c.audit))
	c.mux.HandleFunc("GET /moderators", c.auth(c.moderators))
	c.mux.HandleFunc("POST /moderators", c.auth(c.addModerator))
	c.mux.HandleFunc("POST /moderators/{name}/remove", c.auth(c.removeModerator))
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
}

// who is a signed-in moderator's request.
type who struct {
	moderation.Moderator
	csrf string
	hash []byte // of the session's token
}

// auth passes requests with a live session to h, checking the CSRF token
// of every POST; without a session a page redirects to the sign-in page
// and a form is refused with 401.
func (c *Console) auth(h func(http.ResponseWriter, *http.Request, who)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s moderation.ConsoleSession
		var m moderation.Moderator
		var csrf string
		ok := false
		if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
			// The store refuses expired sessions and those of removed
			// accounts (RemoveModerator deletes those too).
			s, err = c.cfg.Store.ConsoleSession(r.Context(), sessionHash(ck.Value), c.cfg.Now())
			if err == nil {
				m, err = c.cfg.Store.Moderator(r.Context(), s.Moderator)
			}
			switch {
			case err == nil:
				ok, csrf = m.Active(), sessionCSRF(ck.Value)
			case !errors.Is(err, moderation.ErrNotFound):
				c.storeFailed(w, err)
				return
			}
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
			} else {
				c.fail(w, http.StatusUnauthorized, "Sign in first.")
			}
			return
		}
		if r.Method == http.MethodPost {
			if tok := r.PostFormValue("csrf"); tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(csrf)) != 1 {
				c.fail(w, http.StatusForbidden, "This form is missing its security token, or has an old one: go back, reload the page and try again.")
				return
			}
		}
		h(w, r, who{Moderator: m, csrf: csrf, hash: s.TokenHash})
	}
}

func (c *Console) fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	tmpl.ExecuteTemplate(w, "error", map[string]any{"Title": http.StatusText(code), "Message": msg})
}

func (c *Console) render(w http.ResponseWriter, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := tmpl.ExecuteTemplate(w, name, data); err != nil {
		c.cfg.Logger.Error("console: render", "page", name, "err", err)
	}
}

// loginPage shows the sign-in form; its CSRF token is a cookie of its own
// (there is no session yet), echoed by the form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, code int, msg string) {
	tok := randomToken()
	c.setCookie(w, loginCookie, tok, int(loginWindow/time.Second))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	tmpl.ExecuteTemplate(w, "login", map[string]any{"CSRF": tok, "Error": msg})
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited reports whether key has used up its failed attempts, dropping
// those older than the window.
// limited reports whether subject has loginFailures failed sign-ins in
// its open window, counted in the store over every node.
func (c *Console) limited(ctx context.Context, subject string, now time.Time) (bool, error) {
	n, err := c.cfg.Store.LoginFailures(ctx, subject, now, loginWindow)
	return n >= loginFailures, err
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	if tok := r.PostFormValue("csrf"); err != nil || tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(ck.Value)) != 1 {
		c.fail(w, http.StatusForbidden, "This form is missing its security token, or has an old one: reload the sign-in page and try again.")
		return
	}
	name, password, code := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password"), r.PostFormValue("code")
	now := c.cfg.Now()
	nameKey, addrKey := "name:"+name, "addr:"+clientAddr(r)
	limited, err := c.limited(r.Context(), nameKey, now)
	if err == nil && !limited {
		limited, err = c.limited(r.Context(), addrKey, now)
	}
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	if limited {
		c.cfg.Logger.Warn("console: sign-in rate limited", "moderator", name)
		w.Header().Set("Retry-After", strconv.Itoa(int(loginWindow/time.Second)))
		c.showLogin(w, http.StatusTooManyRequests, "Too many failed sign-ins: wait a quarter of an hour.")
		return
	}
	failed := func() {
		for _, subject := range []string{nameKey, addrKey} {
			if _, err := c.cfg.Store.AddLoginFailure(r.Context(), subject, now, loginWindow); err != nil {
				c.cfg.Logger.Error("console: counting a failed sign-in", "err", err)
			}
		}
		c.cfg.Logger.Info("console: failed sign-in", "moderator", name)
		c.showLogin(w, http.StatusUnauthorized, "Wrong name, password or code.")
	}
	m, err := c.cfg.Store.Moderator(r.Context(), name)
	if err != nil {
		if !errors.Is(err, moderation.ErrNotFound) {
			c.cfg.Logger.Error("console: sign-in", "err", err)
			c.fail(w, http.StatusInternalServerError, "The moderation store failed; see the server's log.")
			return
		}
		// Spend the same time as for a real account.
		c.dummyOnce.Do(func() { c.dummy, _ = HashPassword("not a password", c.cfg.Argon2) })
		CheckPassword(c.dummy, password)
		failed()
		return
	}
	if !CheckPassword(m.PasswordHash, password) || !m.Active() {
		failed()
		return
	}
	step, err := checkTOTP(m.TOTPSecret, code, now)
	if err != nil {
		failed()
		return
	}
	// A code is good once on every node: the store accepts its step only
	// if later than the last one used, in one conditional write.
	if err := c.cfg.Store.UseTOTPStep(r.Context(), m.Name, step); err != nil {
		if errors.Is(err, moderation.ErrTOTPUsed) || errors.Is(err, moderation.ErrNotFound) {
			c.cfg.Logger.Warn("console: TOTP code used again", "moderator", m.Name)
			failed()
			return
		}
		c.storeFailed(w, err)
		return
	}
	tok := randomToken()
	if err := c.cfg.Store.AddConsoleSession(r.Context(), moderation.ConsoleSession{TokenHash: sessionHash(tok), Moderator: m.Name, Created: now, Expires: now.Add(c.cfg.SessionTTL)}); err != nil {
		c.storeFailed(w, err)
		return
	}
	c.setCookie(w, loginCookie, "", -1)
	c.setCookie(w, sessionCookie, tok, int(c.cfg.SessionTTL/time.Second))
	c.cfg.Logger.Info("console: signed in", "moderator", m.Name)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, me who) {
	if err := c.cfg.Store.EndConsoleSession(r.Context(), me.hash); err != nil {
		c.storeFailed(w, err)
		return
	}
	c.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (me who) page(title string) map[string]any {
	return map[string]any{"Title": title, "Who": me, "CSRF": me.csrf}
}

// Metrics are the dashboard's numbers.
type Metrics = moderation.CaseMetrics

// ComputeMetrics computes the dashboard from cases (with their events).
func ComputeMetrics(cases []moderation.Case) Metrics { return moderation.ComputeCaseMetrics(cases) }

// allCases is how many cases the dashboard and the queue read at most.
const allCases = 10000

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, me who) {
	cs, err := c.cfg.Store.Cases(r.Context(), "", allCases)
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	p := me.page("Dashboard")
	p["M"] = ComputeMetrics(cs)
	p["Actions"] = append(slices.Clone(moderation.Actions), moderation.HoldActions...)
	c.render(w, "dashboard", p)
}

func (c *Console) storeFailed(w http.ResponseWriter, err error) {
	c.cfg.Logger.Error("console: moderation store", "err", err)
	c.fail(w, http.StatusInternalServerError, "The moderation store failed; see the server's log.")
}

// queueRow is one case in the queue.
type queueRow struct {
	moderation.Case
	Reasons []string
	Age     string
}

// Reasons a report may give (server/reports.go).
var reasons = []string{"spam", "harassment", "terrorism", "csam", "other"}

// ages are the queue's "waiting at least" filter.
var ages = []struct{ Value, Label string }{{"", "any time"}, {"1h", "an hour"}, {"24h", "a day"}, {"72h", "three days"}, {"168h", "a week"}}

func (c *Console) queue(w http.ResponseWriter, r *http.Request, me who) {
	state, reason, kind, older := r.FormValue("state"), r.FormValue("reason"), r.FormValue("kind"), r.FormValue("older")
	if state == "" && !r.Form.Has("state") {
		state = moderation.CaseOpen
	}
	var minAge time.Duration
	if older != "" {
		d, err := time.ParseDuration(older)
		if err != nil || d < 0 {
			c.fail(w, http.StatusBadRequest, "The age filter is a duration such as 24h.")
			return
		}
		minAge = d
	}
	if kind != "" && kind != moderation.KindReport && kind != moderation.KindHold {
		c.fail(w, http.StatusBadRequest, "The kind is report or hold.")
		return
	}
	cs, err := c.cfg.Store.Cases(r.Context(), state, allCases)
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	now := c.cfg.Now()
	var rows []queueRow
	for _, k := range cs {
		if kind != "" && k.Kind != kind || now.Sub(k.Opened) < minAge {
			continue
		}
		row := queueRow{Case: k, Age: age(now.Sub(k.Opened))}
		for _, rp := range k.Reports {
			if !slices.Contains(row.Reasons, rp.Reason) {
				row.Reasons = append(row.Reasons, rp.Reason)
			}
		}
		if k.Hold != nil {
			for _, m := range k.Hold.Matches {
				if why := "list " + m.List; !slices.Contains(row.Reasons, why) {
					row.Reasons = append(row.Reasons, why)
				}
			}
		}
		if reason != "" && !slices.Contains(row.Reasons, reason) {
			continue
		}
		rows = append(rows, row)
	}
	// Oldest first: the queue is worked from the longest waiting.
	slices.Reverse(rows)
	slices.SortStableFunc(rows, func(a, b queueRow) int { return a.Opened.Compare(b.Opened) })
	p := me.page("Queue")
	p["Rows"], p["State"], p["Reason"], p["Kind"], p["Older"] = rows, state, reason, kind, older
	p["States"] = []string{moderation.CaseOpen, moderation.CaseAppealed, moderation.CaseDecided, moderation.CaseClosed}
	p["Reasons"] = reasons
	p["Ages"] = ages
	c.render(w, "queue", p)
}

func age(d time.Duration) string {
	switch {
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days"
}

func (c *Console) loadCase(w http.ResponseWriter, r *http.Request) (moderation.Case, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		c.fail(w, http.StatusNotFound, "No such case.")
		return moderation.Case{}, false
	}
	k, err := c.cfg.Store.Case(r.Context(), id)
	if errors.Is(err, moderation.ErrNotFound) {
		c.fail(w, http.StatusNotFound, "No such case.")
		return k, false
	}
	if err != nil {
		c.storeFailed(w, err)
		return k, false
	}
	return k, true
}

// mayDecide says why me may not decide k now, or "".
func (c *Console) mayDecide(k moderation.Case, me who) string {
	if k.Kind == moderation.KindHold {
		switch {
		case k.State != moderation.CaseOpen:
			return "This held post was decided: there is nothing to decide."
		case c.cfg.DecideHold == nil:
			return "This console cannot act on channels: decide it with parleyd admin cases decide."
		}
		return ""
	}
	switch k.State {
	case moderation.CaseOpen:
		return ""
	case moderation.CaseAppealed:
		if !me.Lead {
			return "Only a lead moderator decides appeals."
		}
		for _, e := range k.Events {
			if e.Moderator == me.Name {
				return "You decided this case before: its appeal goes to another lead."
			}
		}
		return ""
	}
	return "This case is " + k.State + ": there is nothing to decide."
}

func (c *Console) showCase(w http.ResponseWriter, r *http.Request, me who) {
	k, ok := c.loadCase(w, r)
	if !ok {
		return
	}
	all, err := c.cfg.Store.Cases(r.Context(), "", allCases)
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	var earlier []moderation.Case
	for _, o := range all {
		if o.Reported == k.Reported && o.ID != k.ID {
			earlier = append(earlier, o)
		}
	}
	p := me.page("Case " + strconv.FormatInt(k.ID, 10))
	p["Case"], p["Messages"], p["Earlier"] = k, VerifyMessages(c.cfg.FrankingKey, k.Messages), earlier
	p["Refusal"] = c.mayDecide(k, me)
	p["Decidable"] = k.State == moderation.CaseOpen || k.State == moderation.CaseAppealed
	p["Actions"] = moderation.ActionsFor(k.Kind)
	p["MinUntil"] = c.cfg.Now().AddDate(0, 0, 1).Format(time.DateOnly)
	c.render(w, "case", p)
}

func (c *Console) decide(w http.ResponseWriter, r *http.Request, me who) {
	k, ok := c.loadCase(w, r)
	if !ok {
		return
	}
	if why := c.mayDecide(k, me); why != "" {
		code := http.StatusForbidden
		if k.State != moderation.CaseAppealed {
			code = http.StatusConflict
		}
		c.fail(w, code, why)
		return
	}
	action, reason := r.PostFormValue("action"), strings.TrimSpace(r.PostFormValue("reason"))
	if k.Kind == moderation.KindHold {
		c.decideHold(w, r, me, k, action, reason)
		return
	}
	if !moderation.ValidAction(action) || reason == "" || len(reason) > 2000 {
		c.fail(w, http.StatusBadRequest, "Choose an action and give a reason (at most 2000 bytes): the reported user is told it.")
		return
	}
	e := moderation.CaseEvent{Time: c.cfg.Now(), Action: action, Moderator: me.Name, Reason: reason}
	if action == moderation.ActionSuspend {
		u, err := time.Parse(time.DateOnly, r.PostFormValue("until"))
		if err != nil || !u.After(c.cfg.Now()) {
			c.fail(w, http.StatusBadRequest, "A suspension needs the date it ends, in the future.")
			return
		}
		e.Until = u
	}
	if _, err := c.cfg.Store.ActOnCase(r.Context(), k.ID, e); errors.Is(err, moderation.ErrCaseState) {
		c.fail(w, http.StatusConflict, "Someone else decided this case meanwhile: reload it.")
		return
	} else if err != nil {
		c.storeFailed(w, err)
		return
	}
	c.cfg.Logger.Info("console: case decided", "case", k.ID, "action", action, "moderator", me.Name)
	http.Redirect(w, r, "/cases/"+strconv.FormatInt(k.ID, 10), http.StatusSeeOther)
}

// decideHold releases or removes a held channel post, or deletes its
// channel.
func (c *Console) decideHold(w http.ResponseWriter, r *http.Request, me who, k moderation.Case, action, reason string) {
	if !moderation.ValidHoldAction(action) || reason == "" || len(reason) > 2000 {
		c.fail(w, http.StatusBadRequest, "Choose release, remove_post or remove_channel and give a reason (at most 2000 bytes): it goes to the audit log.")
		return
	}
	_, err := c.cfg.DecideHold(r.Context(), k.ID, moderation.CaseEvent{Time: c.cfg.Now(), Action: action, Moderator: me.Name, Reason: reason})
	switch {
	case errors.Is(err, moderation.ErrCaseState):
		c.fail(w, http.StatusConflict, "Someone else decided this case meanwhile: reload it.")
		return
	case errors.Is(err, moderation.ErrHoldGone):
		c.fail(w, http.StatusConflict, "The post is no longer held (it was removed or deleted): remove it to close the case.")
		return
	case err != nil:
		c.storeFailed(w, err)
		return
	}
	c.cfg.Logger.Info("console: held post decided", "case", k.ID, "action", action, "moderator", me.Name)
	http.Redirect(w, r, "/cases/"+strconv.FormatInt(k.ID, 10), http.StatusSeeOther)
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, me who) {
	subject := r.FormValue("subject")
	ds, err := c.cfg.Store.Decisions(r.Context(), subject, 500)
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	p := me.page("Audit log")
	p["Decisions"], p["Subject"] = ds, subject
	c.render(w, "audit", p)
}

// ValidName reports whether s can name a moderator: letters, digits, '.',
// '_' or '-', at most 64.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (c *Console) moderators(w http.ResponseWriter, r *http.Request, me who) {
	if !me.Lead {
		c.fail(w, http.StatusForbidden, "Only a lead moderator manages moderators.")
		return
	}
	c.showModerators(w, r, me, http.StatusOK, nil)
}

func (c *Console) showModerators(w http.ResponseWriter, r *http.Request, me who, code int, extra map[string]any) {
	ms, err := c.cfg.Store.Moderators(r.Context())
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	p := me.page("Moderators")
	p["Moderators"] = ms
	for k, v := range extra {
		p[k] = v
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := tmpl.ExecuteTemplate(w, "moderators", p); err != nil {
		c.cfg.Logger.Error("console: render", "page", "moderators", "err", err)
	}
}

// addModerator creates an account (leads only) and shows its TOTP secret
// once, as "parleyd admin moderators add" prints it.
func (c *Console) addModerator(w http.ResponseWriter, r *http.Request, me who) {
	if !me.Lead {
		c.fail(w, http.StatusForbidden, "Only a lead moderator adds moderators.")
		return
	}
	name, password := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	if !ValidName(name) {
		c.showModerators(w, r, me, http.StatusBadRequest, map[string]any{"Error": "A name is letters, digits, '.', '_' or '-', at most 64."})
		return
	}
	if err := CheckNewPassword(password); err != nil {
		c.showModerators(w, r, me, http.StatusBadRequest, map[string]any{"Error": "The password: " + err.Error() + "."})
		return
	}
	hash, err := HashPassword(password, c.cfg.Argon2)
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	secret := NewTOTPSecret()
	lead := r.PostFormValue("lead") == "on"
	err = c.cfg.Store.AddModerator(r.Context(), moderation.Moderator{Name: name, Lead: lead, PasswordHash: hash, TOTPSecret: secret, Created: c.cfg.Now()})
	if errors.Is(err, moderation.ErrExists) {
		c.showModerators(w, r, me, http.StatusConflict, map[string]any{"Error": name + " exists already."})
		return
	}
	if err != nil {
		c.storeFailed(w, err)
		return
	}
	c.cfg.Logger.Info("console: moderator added", "moderator", name, "lead", lead, "by", me.Name)
	c.showModerators(w, r, me, http.StatusOK, map[string]any{"Added": name, "Secret": TOTPSecretText(secret), "URL": TOTPURL("Parley", name, secret)})
}

// removeModerator deactivates a moderator's account (leads only); the
// decisions log records who did it. The store deletes the account's
// sessions with the removal, on every node.
func (c *Console) removeModerator(w http.ResponseWriter, r *http.Request, me who) {
	if !me.Lead {
		c.fail(w, http.StatusForbidden, "Only a lead moderator removes moderators.")
		return
	}
	name := r.PathValue("name")
	err := c.cfg.Store.RemoveModerator(r.Context(), name, me.Name, c.cfg.Now())
	switch {
	case errors.Is(err, moderation.ErrNotFound):
		c.showModerators(w, r, me, http.StatusNotFound, map[string]any{"Error": "There is no active moderator " + name + "."})
		return
	case errors.Is(err, moderation.ErrLastLead):
		c.showModerators(w, r, me, http.StatusConflict, map[string]any{"Error": name + " is the last lead: make another lead first."})
		return
	case err != nil:
		c.storeFailed(w, err)
		return
	}
	// The store deleted the account's sessions with the removal.
	c.cfg.Logger.Info("console: moderator removed", "moderator", name, "by", me.Name)
	c.showModerators(w, r, me, http.StatusOK, map[string]any{"Removed": name})
}
