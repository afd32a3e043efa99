package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/store/blobstore"
)

// page is a browser linked as alice's device, with the CLI-side clients
// of the test's users (made with the client library, as the CLI does).
type page struct {
	t         *testing.T
	ctx       context.Context
	url       string
	device    string // the browser's device id
	users     map[string]*client.Client
	downloads string // where the browser saves downloads
	start     time.Time
}

// linkedPage starts parleyd, makes the users (the first is the one the
// browser links to) and links a headless Chromium at phone width.
func linkedPage(t *testing.T, names ...string) *page {
	t.Helper()
	return linkedPageAt(t, startServer(t, bundle(t)), pageOptions{}, names...)
}

// pageOptions are linkedPageAt's: the Chromium's extra options and the
// CLI-side clients' HTTP client (nil: Go's default).
type pageOptions struct {
	chromium []chromedp.ExecAllocatorOption
	http     *http.Client
}

// linkedPageAt is linkedPage with the parleyd at url.
func linkedPageAt(t *testing.T, url string, opts pageOptions, names ...string) *page {
	t.Helper()
	p := &page{t: t, ctx: browser(t, 10*time.Minute, opts.chromium...), url: url, users: map[string]*client.Client{}, downloads: t.TempDir(), start: time.Now()}
	bg := context.Background()
	for _, name := range names {
		c, err := client.Init(bg, client.Options{Dir: filepath.Join(t.TempDir(), name), Passphrase: []byte("pw " + name),
			KDF: &fastKDF, KTMonitorEvery: -1, HTTPClient: opts.http}, url, name, "")
		if err != nil {
			t.Fatalf("init %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		// Message requests are on by default; these tests are not about
		// them (TestWebClientInBrowser's users talk first instead). The
		// linked browser gets the setting through own-device sync.
		if _, err := c.SetSetting(bg, client.SettingMessageRequests, false); err != nil {
			t.Fatalf("%s: requests off: %v", name, err)
		}
		p.users[name] = c
	}
	p.do("opening the page", chromedp.EmulateViewport(375, 800), chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#link-user")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: p.downloads})
			return err
		}))
	p.do("asking for a link code", chromedp.SendKeys(chromedp.CSS("#link-user"), names[0]),
		chromedp.SendKeys(chromedp.CSS("#link-pass"), "browser passphrase\r"), chromedp.WaitVisible(chromedp.CSS("#link-code-box")))
	dev, _, err := p.users[names[0]].ApproveDevice(bg, p.text("#link-code"), time.Minute)
	if err != nil {
		t.Fatalf("approving the browser's link code: %v", err)
	}
	p.device = dev.ID
	p.do("the page after approval", chromedp.WaitVisible(chromedp.CSS("#compose-form")))
	return p
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	sctx, cancel := context.WithTimeout(p.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		st, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent + " | " + document.getElementById("error").textContent`))
		p.t.Fatalf("%s: %v (the page says: %s)", what, err, st)
	}
	p.t.Logf("%6.1fs %s", time.Since(p.start).Seconds(), what)
}

func (p *page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("the text of %s: %v", sel, err)
	}
	return s
}

func (p *page) eval(js string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return s
}

// waitJS waits until the JavaScript expression cond is true in the page.
func (p *page) waitJS(what, cond string) {
	p.t.Helper()
	js := fmt.Sprintf(`new Promise((resolve) => { const check = () => { let ok = false; try { ok = !!(%s); } catch (e) {} ok ? resolve(true) : setTimeout(check, 50); }; check(); })`, cond)
	sctx, cancel := context.WithTimeout(p.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise)); err != nil {
		p.t.Fatalf("%s: %v (messages: %q; error: %q)", what, err, p.text("#messages"), p.text("#error"))
	}
	p.t.Logf("%6.1fs %s", time.Since(p.start).Seconds(), what)
}

// waitMessage waits for a message containing text and returns its id.
func (p *page) waitMessage(what, text string) string {
	p.t.Helper()
	find := fmt.Sprintf(`[...document.querySelectorAll("#messages li")].find((li) => [...li.querySelectorAll(".text, .file-name")].some((e) => e.textContent.includes(%q)))`, text)
	p.waitJS(what, find)
	return p.eval(find + `.dataset.id`)
}

// press focuses the element sel (found and focused in one step in the
// page: the history is redrawn as messages and receipts arrive) and
// presses Enter on it.
func (p *page) press(what, sel string) {
	p.t.Helper()
	p.waitJS(what+": "+sel+" is there", fmt.Sprintf(`document.querySelector(%q)`, sel))
	focus := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%q).focus(), true)`, sel))(ctx, t)
		return err
	})
	p.do(what, focus, chromedp.KeyEvent(kb.Enter))
}

// open opens a conversation from the list with the keyboard.
func (p *page) open(target string) {
	p.t.Helper()
	sel := fmt.Sprintf(`#conversations button[data-target=%q]`, target)
	p.press("opening "+target, sel)
	p.waitJS(target+" open", fmt.Sprintf(`document.getElementById("conversation-title").textContent === %q`, target))
}

// action opens a message's actions and presses one of them (by class),
// keyboard only.
func (p *page) action(id, class string) {
	p.t.Helper()
	li := fmt.Sprintf(`#messages li[data-id=%q]`, id)
	p.press("opening the actions of "+id, li+" summary")
	p.waitJS("the actions open", fmt.Sprintf(`document.querySelector(%q).open`, li+" details"))
	p.press(class+" on "+id, li+" ."+class)
}

// until polls a CLI-side check until it holds.
func (p *page) until(what string, check func() (bool, string)) {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, state := check()
		if ok {
			p.t.Logf("%6.1fs %s", time.Since(p.start).Seconds(), what)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: never happened; last seen: %s", what, state)
		}
		if err := chromedp.Do(p.ctx, chromedp.Sleep(200*time.Millisecond)); err != nil {
			p.t.Fatal(err)
		}
	}
}

// history syncs user and returns their history of target.
func (p *page) history(user, target string) []client.Message {
	p.t.Helper()
	c := p.users[user]
	if _, err := c.Sync(context.Background()); err != nil {
		p.t.Fatalf("%s's sync: %v", user, err)
	}
	msgs, err := c.History(context.Background(), target, 200)
	if err != nil && !strings.Contains(err.Error(), "no such conversation") {
		p.t.Fatalf("%s's history of %s: %v", user, target, err)
	}
	return msgs
}

func (p *page) phoneWidth() {
	p.t.Helper()
	if w, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 375 {
		// Name the elements that reach past the edge, to say what to fix.
		wide, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > 375).map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + Math.round(e.getBoundingClientRect().right)).slice(0, 8).join(", ")`))
		p.t.Fatalf("at 375 px the page is %d px wide (%v); past the edge: %s", w, err, wide)
	}
}

// flipStoredBlob flips a byte in the middle of the blob of the given size
// that the test's server stored (its directory is one of the test's
// temporary directories), as a server that changes files would.
func flipStoredBlob(t *testing.T, size int64) {
	t.Helper()
	var found string
	filepath.WalkDir(filepath.Dir(t.TempDir()), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && blobstore.ValidID(d.Name()) {
			if info, err := d.Info(); err == nil && info.Size() == size {
				found = path
			}
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no stored blob of %d bytes", size)
	}
	b, err := os.ReadFile(found)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(found, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomFile(t *testing.T, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Files both ways between the browser (alice's linked device) and bob's
// CLI-side client: bob's file, downloaded in the browser, is saved with
// the SHA-256 of what bob sent, and the page says it checked it; once the
// server flipped a byte of another of bob's files, the page refuses it
// and the browser saves nothing; a file
// the browser sends shows its progress bar full, and bob downloads it
// with the digest of the original.
func TestWebFilesInBrowser(t *testing.T) {
	p := linkedPage(t, "alice", "bob")
	bg := context.Background()
	bob := p.users["bob"]

	path, data := randomFile(t, "from-bob.bin", 300_000)
	if _, err := bob.SendFile(bg, "@alice", path, nil); err != nil {
		t.Fatal(err)
	}
	p.open("@bob")
	id := p.waitMessage("bob's file in the browser", "from-bob.bin")
	p.do("downloading bob's file", chromedp.Focus(chromedp.CSS(fmt.Sprintf(`#messages li[data-id=%q] .download`, id))), chromedp.KeyEvent(kb.Enter))
	p.waitJS("the page checked the download", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .file-verified').textContent.includes(%q)`, id, sha(data)))
	saved := filepath.Join(p.downloads, "from-bob.bin")
	p.until("the browser saved bob's file", func() (bool, string) {
		got, err := os.ReadFile(saved)
		if err != nil {
			entries, _ := os.ReadDir(p.downloads)
			return false, fmt.Sprintf("%v (downloads: %v)", err, entries)
		}
		return len(got) == len(data), fmt.Sprintf("%d of %d bytes", len(got), len(data))
	})
	got, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if sha(got) != sha(data) {
		t.Fatalf("the browser saved bob's file with sha256 %s, bob sent %s", sha(got), sha(data))
	}

	// The server swaps bytes of a stored file: the browser refuses it,
	// says so, and saves nothing.
	path, data = randomFile(t, "tampered.bin", 100_000)
	if _, err := bob.SendFile(bg, "@alice", path, nil); err != nil {
		t.Fatal(err)
	}
	tampered := p.waitMessage("the file to tamper with in the browser", "tampered.bin")
	flipStoredBlob(t, filecrypt.CiphertextSize(int64(len(data))))
	p.press("downloading the tampered file", fmt.Sprintf(`#messages li[data-id=%q] .download`, tampered))
	p.waitJS("the page refuses the tampered file", `!document.getElementById("error").hidden && document.getElementById("error").textContent.includes("corrupt")`)
	if v := p.text(fmt.Sprintf(`#messages li[data-id=%q] .file-verified`, tampered)); v != "" {
		t.Fatalf("the page says %q about a tampered file", v)
	}
	if _, err := os.Stat(filepath.Join(p.downloads, "tampered.bin")); err == nil {
		t.Fatal("the browser saved a tampered file")
	}

	path, data = randomFile(t, "from-browser.bin", 200_000)
	p.do("sending a file from the browser", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{path}),
		chromedp.Focus(chromedp.CSS("#file-send")), chromedp.KeyEvent(kb.Enter))
	p.waitJS("the file sent", `document.getElementById("file-status").textContent.startsWith("Sent")`)
	if v := p.eval(`String(document.getElementById("file-progress").value)`); v != "1" {
		t.Fatalf("the progress bar after sending is at %s, want 1", v)
	}
	p.waitMessage("the sent file in the browser", "from-browser.bin")
	var fileMsg client.Message
	p.until("bob receives the browser's file", func() (bool, string) {
		msgs := p.history("bob", "@alice")
		for _, m := range msgs {
			if m.Kind == client.KindFile && m.File.Name == "from-browser.bin" && m.Sender.Device == p.device {
				fileMsg = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d messages", len(msgs))
	})
	if fileMsg.File.SHA256 != sha(data) || fileMsg.File.Size != int64(len(data)) {
		t.Fatalf("the browser's file message says %+v, the file is %d bytes sha256 %s", fileMsg.File, len(data), sha(data))
	}
	out, info, err := bob.GetFile(bg, fileMsg.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("bob downloads the browser's file: %v", err)
	}
	got, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha(got) != sha(data) || info.SHA256 != sha(data) {
		t.Fatalf("bob got sha256 %s (info %s), the browser sent %s", sha(got), info.SHA256, sha(data))
	}
	p.phoneWidth()
}

// Groups from the browser: a group bob made, with his message in it,
// reaches the browser, which replies into it and bob receives the reply
// from the browser's device; then the browser creates a group with bob,
// adds carol, removes her, renames the group and leaves it, and the
// CLI-side clients see each change. In bob's group the page offers alice
// (a member, not an admin) no admin controls, and marks bob's message
// that mentions her; in her own group she sets the topic, promotes and
// demotes bob, and makes an invite code: dave asks to join with it and
// is denied, carol asks and is approved, and bob sees each change.
func TestWebGroupsInBrowser(t *testing.T) {
	p := linkedPage(t, "alice", "bob", "carol", "dave")
	bg := context.Background()
	bob, carol, dave := p.users["bob"], p.users["carol"], p.users["dave"]

	if _, err := bob.CreateGroup(bg, "team", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	// bob's group has a picture: the page shows it, decrypted in the page.
	if _, err := bob.SetGroup(bg, "team", client.GroupSettings{Picture: testPNG(t, 24)}); err != nil {
		t.Fatal(err)
	}
	hello := randomText("group hello ")
	if _, err := bob.SendText(bg, "#team", hello); err != nil {
		t.Fatal(err)
	}
	p.open("#team")
	p.waitMessage("bob's group message in the browser", hello)
	p.waitJS("bob's group picture shown", `(() => { const i = document.getElementById("group-picture"); return !i.hidden && i.src.startsWith("blob:") && i.complete && i.naturalWidth === 24; })()`)
	// A member, not an admin: no controls to add, remove, promote or rename.
	p.press("opening bob's group's panel", "#group-panel summary")
	p.waitJS("the member list", `document.querySelector('#group-members li[data-user="bob"]')?.textContent.includes("admin")`)
	if n := p.eval(`String(document.querySelectorAll("#group-members button").length)`); n != "0" {
		t.Fatalf("a member who is not an admin is offered %s member buttons", n)
	}
	for _, id := range []string{"group-add-form", "group-rename-form", "group-topic-form", "group-picture-form", "group-invite-box"} {
		if p.eval(fmt.Sprintf(`String(document.getElementById(%q).hidden)`, id)) != "true" {
			t.Fatalf("a member who is not an admin is shown #%s", id)
		}
	}
	p.press("closing the panel", "#group-panel summary")
	mention := randomText("hey @alice ")
	if _, err := bob.SendText(bg, "#team", mention); err != nil {
		t.Fatal(err)
	}
	mentionID := p.waitMessage("bob's mention in the browser", mention)
	p.waitJS("the mention marked", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q]').classList.contains("mentioned") && document.querySelector('#messages li[data-id=%q] .meta').textContent.includes("mentions you")`, mentionID, mentionID))
	if p.eval(`String(document.querySelectorAll("#messages li.mentioned").length)`) != "1" {
		t.Fatal("a message that does not mention alice is marked")
	}
	reply := randomText("group reply ")
	p.do("replying into the group", chromedp.Focus(chromedp.CSS("#compose")), chromedp.SendKeys(chromedp.CSS("#compose"), reply+"\r"))
	p.until("bob receives the browser's group reply", func() (bool, string) {
		msgs := p.history("bob", "#team")
		return slices.ContainsFunc(msgs, func(m client.Message) bool {
			return m.Text == reply && m.Sender.User == "alice" && m.Sender.Device == p.device
		}), fmt.Sprintf("%d messages", len(msgs))
	})

	// Create, with the keyboard: the name, the members, Enter.
	p.do("creating a group", chromedp.SendKeys(chromedp.CSS("#group-new-name"), "webgroup"),
		chromedp.SendKeys(chromedp.CSS("#group-new-members"), "bob\r"))
	p.waitJS("the new group open", `document.getElementById("conversation-title").textContent === "#webgroup"`)
	members := func(user string) (bool, []string) {
		c := p.users[user]
		if _, err := c.Sync(bg); err != nil {
			t.Fatalf("%s's sync: %v", user, err)
		}
		info, err := c.GroupInfo(bg, "#webgroup")
		if err != nil {
			return false, []string{err.Error()}
		}
		var us []string
		for _, m := range info.Members {
			us = append(us, m.User)
		}
		slices.Sort(us)
		return true, us
	}
	p.until("bob is in the browser's group", func() (bool, string) {
		ok, us := members("bob")
		return ok && slices.Equal(us, []string{"alice", "bob"}), fmt.Sprint(us)
	})

	// The topic, then bob made an admin and back.
	p.do("setting the topic", chromedp.Focus(chromedp.CSS("#group-panel summary")), chromedp.KeyEvent(kb.Enter),
		chromedp.SendKeys(chromedp.CSS("#group-topic"), "plans for friday\r"))
	p.waitJS("the page shows the topic", `document.getElementById("conversation-topic").textContent === "plans for friday"`)
	bobSees := func(what string, ok func(client.GroupInfo) bool) {
		p.until("bob sees "+what, func() (bool, string) {
			if _, err := bob.Sync(bg); err != nil {
				t.Fatal(err)
			}
			info, err := bob.GroupInfo(bg, "#webgroup")
			return err == nil && ok(info), fmt.Sprintf("%+v %v", info, err)
		})
	}
	bobSees("the topic", func(info client.GroupInfo) bool { return info.Topic == "plans for friday" })
	p.press("making bob an admin", `#group-members li[data-user="bob"] .promote`)
	bobSees("he is an admin", func(info client.GroupInfo) bool { return info.MyRole == client.RoleAdmin })
	p.press("removing bob as admin", `#group-members li[data-user="bob"] .demote`)
	bobSees("he is a member again", func(info client.GroupInfo) bool { return info.MyRole == client.RoleMember })
	p.waitJS("the page shows bob a member", `document.querySelector('#group-members li[data-user="bob"]').dataset.role === "member"`)

	// A picture set in the page reaches bob, byte for byte.
	pic := testPNG(t, 16)
	picPath := filepath.Join(t.TempDir(), "webgroup.png")
	if err := os.WriteFile(picPath, pic, 0o600); err != nil {
		t.Fatal(err)
	}
	p.do("setting the group's picture", chromedp.SetUploadFiles(chromedp.CSS("#group-picture-input"), []string{picPath}),
		chromedp.Click(chromedp.CSS("#group-picture-button")))
	p.waitJS("the page shows its picture", `(() => { const i = document.getElementById("group-picture"); return !i.hidden && i.complete && i.naturalWidth === 16; })()`)
	p.until("bob gets the picture", func() (bool, string) {
		if _, err := bob.Sync(bg); err != nil {
			t.Fatal(err)
		}
		got, typ, err := bob.GroupPictureBytes(bg, "#webgroup")
		return err == nil && typ == "image/png" && string(got) == string(pic), fmt.Sprintf("%d bytes, %q, %v", len(got), typ, err)
	})

	p.do("adding carol", chromedp.Focus(chromedp.CSS("#group-add-user")), chromedp.SendKeys(chromedp.CSS("#group-add-user"), "carol\r"))
	p.waitJS("carol in the page's member list", `document.querySelector('#group-members li[data-user="carol"]')`)
	p.until("carol is in the group", func() (bool, string) {
		ok, us := members("carol")
		return ok && slices.Equal(us, []string{"alice", "bob", "carol"}), fmt.Sprint(us)
	})

	p.do("removing carol", chromedp.Focus(chromedp.CSS(`#group-members li[data-user="carol"] button`)), chromedp.KeyEvent(kb.Enter))
	p.waitJS("carol gone from the page's member list", `!document.querySelector('#group-members li[data-user="carol"]') && document.querySelector('#group-members li[data-user="bob"]')`)
	p.until("carol is removed", func() (bool, string) {
		if _, err := carol.Sync(bg); err != nil {
			t.Fatal(err)
		}
		convs, err := carol.Conversations(bg)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range convs {
			if c.Label == "#webgroup" {
				return c.Removed, fmt.Sprintf("%+v", c)
			}
		}
		return false, "carol has no #webgroup"
	})
	p.until("bob sees carol removed", func() (bool, string) {
		ok, us := members("bob")
		return ok && slices.Equal(us, []string{"alice", "bob"}), fmt.Sprint(us)
	})

	// An invite code: dave asks to join and is denied; carol asks and is approved.
	p.press("making an invite code", "#group-invite")
	p.waitJS("the invite code shown", `document.getElementById("group-invite-code").textContent.startsWith("parley-invite:")`)
	code := p.text("#group-invite-code")
	if _, err := dave.JoinGroup(bg, code); err != nil {
		t.Fatalf("dave asks to join: %v", err)
	}
	p.press("denying dave", `#group-join-requests li[data-user="dave"] .deny`)
	p.waitJS("dave's request gone", `!document.querySelector('#group-join-requests li[data-user="dave"]')`)
	if _, err := carol.JoinGroup(bg, code); err != nil {
		t.Fatalf("carol asks to join: %v", err)
	}
	p.press("approving carol", `#group-join-requests li[data-user="carol"] .approve`)
	p.until("carol is in the group again, dave is not", func() (bool, string) {
		ok, us := members("carol")
		return ok && slices.Equal(us, []string{"alice", "bob", "carol"}), fmt.Sprint(us)
	})
	if _, err := dave.Sync(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.GroupInfo(bg, "#webgroup"); err == nil {
		t.Fatal("dave, denied, is in the group")
	}

	// Focusing the name selects it: typing replaces it.
	p.do("renaming the group", chromedp.Focus(chromedp.CSS("#group-rename")), chromedp.SendKeys(chromedp.CSS("#group-rename"), "Web-Group\r"))
	p.until("bob sees the new name", func() (bool, string) {
		if _, err := bob.Sync(bg); err != nil {
			t.Fatal(err)
		}
		info, err := bob.GroupInfo(bg, "#webgroup")
		return err == nil && info.Name == "Web-Group", fmt.Sprintf("%q %v", info.Name, err)
	})

	p.do("leaving the group", chromedp.Focus(chromedp.CSS("#group-leave")), chromedp.KeyEvent(kb.Enter))
	p.until("bob's device commits alice's leaving", func() (bool, string) {
		ok, us := members("bob")
		return ok && slices.Equal(us, []string{"bob", "carol"}), fmt.Sprint(us)
	})
	p.waitJS("the list marks the group left", `document.querySelector('#conversations button[data-target="#webgroup"]').textContent.includes("(left)")`)

	// Joining someone else's group with their invite code: carol approves
	// the page's request and the group appears in the page.
	if _, err := carol.CreateGroup(bg, "carolclub", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	inv, err := carol.CreateInvite(bg, "#carolclub")
	if err != nil {
		t.Fatal(err)
	}
	p.do("asking to join carol's group", chromedp.Focus(chromedp.CSS("#group-join-code")), chromedp.SendKeys(chromedp.CSS("#group-join-code"), inv.Code+"\r"))
	p.waitJS("the page says whom it asked", `document.getElementById("group-join-status").textContent.includes("carol")`)
	p.until("carol sees the page's request", func() (bool, string) {
		if _, err := carol.Sync(bg); err != nil {
			t.Fatal(err)
		}
		reqs, err := carol.JoinRequests(bg, "#carolclub")
		return err == nil && slices.ContainsFunc(reqs, func(r client.JoinRequest) bool { return r.User == "alice" }), fmt.Sprintf("%+v %v", reqs, err)
	})
	if err := carol.ApproveJoin(bg, "#carolclub", "alice", false); err != nil {
		t.Fatalf("carol approves: %v", err)
	}
	p.waitJS("carol's group in the page's list", `document.querySelector('#conversations button[data-target="#carolclub"]')`)
	p.phoneWidth()
}

// Unread counts and read receipts: messages carol sends while the browser
// shows bob's conversation count on her entry in the list, and opening
// hers clears it; the browser's message to carol shows "read" once her
// client read it; the browser sends read receipts while the setting is
// on, and only delivery receipts once it is turned off in the page.
func TestWebReceiptsInBrowser(t *testing.T) {
	p := linkedPage(t, "alice", "bob", "carol")
	bg := context.Background()
	bob, carol := p.users["bob"], p.users["carol"]

	if _, err := bob.SendText(bg, "@alice", "hi from bob"); err != nil {
		t.Fatal(err)
	}
	p.open("@bob")
	p.waitMessage("bob's message", "hi from bob")
	for _, text := range []string{"carol one", "carol two"} {
		if _, err := carol.SendText(bg, "@alice", text); err != nil {
			t.Fatal(err)
		}
	}
	p.waitJS("two unread from carol", `document.querySelector('#conversations button[data-target="@carol"] .unread')?.textContent === "2"`)
	if n := p.eval(`String(document.querySelectorAll("#conversations .unread").length)`); n != "1" {
		t.Fatalf("%s conversations show unread counts, want only carol's", n)
	}
	p.open("@carol")
	p.waitMessage("carol's messages", "carol two")
	p.waitJS("no unread count once open", `!document.querySelector('#conversations .unread')`)

	// Read receipts the browser receives.
	toCarol := randomText("to carol ")
	p.do("writing to carol", chromedp.SendKeys(chromedp.CSS("#compose"), toCarol+"\r"))
	id := p.waitMessage("the message to carol", toCarol)
	if st := p.eval(fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .receipt').dataset.state || "sent"`, id)); st != "sent" {
		t.Fatalf("before carol read it, the message shows %q", st)
	}
	p.history("carol", "@alice") // carol's client reads it and sends a read receipt
	p.waitJS("the page shows carol read it", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .receipt').dataset.state === "read"`, id))

	// Read receipts the browser sends, as the setting says.
	state := func(text string) func() (bool, string) {
		return func() (bool, string) {
			var id string
			for _, m := range p.history("carol", "@alice") {
				if m.Text == text {
					id = m.ID
				}
			}
			if id == "" {
				return false, "not found"
			}
			info, err := carol.Info(bg, id)
			if err != nil || len(info.Members) != 1 {
				return false, fmt.Sprintf("%+v %v", info, err)
			}
			return info.Members[0].State != client.StateSent, info.Members[0].State
		}
	}
	lastState := func(text string) string { _, s := state(text)(); return s }
	if _, err := carol.SendText(bg, "@alice", "carol three"); err != nil {
		t.Fatal(err)
	}
	p.waitMessage("carol three in the browser", "carol three")
	p.until("carol hears back about carol three", state("carol three"))
	if s := lastState("carol three"); s != client.StateRead {
		t.Fatalf("with read receipts on, carol sees her message %s", s)
	}
	p.do("turning read receipts off", chromedp.Focus(chromedp.CSS("#setting-receipts")), chromedp.KeyEvent(" "))
	p.waitJS("the setting off", `!document.getElementById("setting-receipts").checked`)
	settings, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`parley.settings()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	var s client.Settings
	if err := json.Unmarshal([]byte(settings), &s); err != nil || s.ReadReceipts {
		t.Fatalf("the module's settings after turning receipts off: %s (%v)", settings, err)
	}
	if _, err := carol.SendText(bg, "@alice", "carol four"); err != nil {
		t.Fatal(err)
	}
	p.waitMessage("carol four in the browser", "carol four")
	p.until("carol hears back about carol four", state("carol four"))
	if s := lastState("carol four"); s != client.StateDelivered {
		t.Fatalf("with read receipts off, carol sees her message %s, want delivered", s)
	}
	p.phoneWidth()
}

// The everyday features from the browser, keyboard only: reply to bob's
// message, react to it, edit and delete the reply for everyone, delete
// bob's message for this device only, set the disappearing-messages
// timer, and typing shown both ways; forward bob's message to carol,
// whose copy is marked forwarded.
func TestWebEverydayInBrowser(t *testing.T) {
	p := linkedPage(t, "alice", "bob", "carol")
	bg := context.Background()
	bob := p.users["bob"]
	find := func(text string) func(client.Message) bool {
		return func(m client.Message) bool { return strings.HasPrefix(m.Text, text) }
	}

	first := randomText("first ")
	sent, err := bob.SendText(bg, "@alice", first)
	if err != nil {
		t.Fatal(err)
	}
	p.open("@bob")
	id := p.waitMessage("bob's message", first)
	if id != sent.ID {
		t.Fatalf("the page shows bob's message as %s, bob sent %s", id, sent.ID)
	}

	// Reply.
	reply := randomText("reply ")
	p.action(id, "reply")
	p.waitJS("replying mode", `!document.getElementById("compose-context").hidden && document.activeElement.id === "compose"`)
	p.do("typing the reply", chromedp.SendKeys(chromedp.CSS("#compose"), reply+"\r"))
	replyID := p.waitMessage("the reply in the browser", reply)
	p.waitJS("the reply quotes bob's message", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .quote').textContent.includes(%q)`, replyID, first))
	p.until("bob receives the reply to his message", func() (bool, string) {
		msgs := p.history("bob", "@alice")
		i := slices.IndexFunc(msgs, find(reply))
		return i >= 0 && msgs[i].ReplyTo == sent.ID, fmt.Sprintf("%+v", msgs)
	})

	// React.
	p.action(id, "react")
	p.waitJS("the reaction shown", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .reactions')?.textContent.includes("👍 alice")`, id))
	p.until("bob sees alice's reaction", func() (bool, string) {
		msgs := p.history("bob", "@alice")
		i := slices.IndexFunc(msgs, find(first))
		return i >= 0 && slices.ContainsFunc(msgs[i].Reactions, func(r client.Reaction) bool { return r.Emoji == "👍" && r.User == "alice" }),
			fmt.Sprintf("%+v", msgs)
	})

	// Forward bob's message to carol: the dialog takes the target, Enter sends.
	p.action(id, "forward")
	p.waitJS("the forward dialog open", `document.getElementById("forward-dialog").open && document.activeElement.id === "forward-to"`)
	p.do("forwarding to carol", chromedp.SendKeys(chromedp.CSS("#forward-to"), "@carol\r"))
	p.waitJS("the forward dialog closed", `!document.getElementById("forward-dialog").open`)
	p.until("carol receives bob's message forwarded by alice", func() (bool, string) {
		msgs := p.history("carol", "@alice")
		i := slices.IndexFunc(msgs, find(first))
		return i >= 0 && msgs[i].Forwarded && msgs[i].Sender.Device == p.device, fmt.Sprintf("%+v", msgs)
	})
	p.open("@carol")
	// (Only the forwarded copy says so: bob's original, which the
	// history showed a moment ago, does not.)
	p.waitJS("the forwarded copy in the browser, marked", fmt.Sprintf(`[...document.querySelectorAll("#messages li")].some((li) => li.querySelector(".text")?.textContent.includes(%q) && li.querySelector(".meta").textContent.includes("forwarded"))`, first))
	p.open("@bob")

	// Edit: the compose line holds the text; add to it.
	p.action(replyID, "edit")
	p.waitJS("editing mode", fmt.Sprintf(`document.getElementById("compose").value === %q`, reply))
	p.do("editing", chromedp.SendKeys(chromedp.CSS("#compose"), " EDITED\r"))
	p.waitJS("the edit shown", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q]').textContent.includes("EDITED")`, replyID))
	p.until("bob sees the edit", func() (bool, string) {
		msgs := p.history("bob", "@alice")
		i := slices.IndexFunc(msgs, find(reply))
		return i >= 0 && msgs[i].Edited && msgs[i].Text == reply+" EDITED", fmt.Sprintf("%+v", msgs)
	})

	// Delete for everyone.
	p.action(replyID, "delete-everyone")
	p.waitJS("the reply deleted in the page", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .text')?.textContent === "(deleted)"`, replyID))
	p.until("bob sees the reply deleted", func() (bool, string) {
		msgs := p.history("bob", "@alice")
		i := slices.IndexFunc(msgs, func(m client.Message) bool { return m.Deleted })
		return i >= 0 && msgs[i].Text == "", fmt.Sprintf("%+v", msgs)
	})

	// Delete for me: gone here, bob keeps it.
	p.action(id, "delete-me")
	p.waitJS("bob's message gone from the page", fmt.Sprintf(`!document.querySelector('#messages li[data-id=%q]')`, id))
	if !slices.ContainsFunc(p.history("bob", "@alice"), find(first)) {
		t.Fatal("deleting for me deleted bob's copy")
	}

	// Timer: the select, with the keyboard (1 hour is three down from off).
	p.do("setting the timer", chromedp.Focus(chromedp.CSS("#timer")), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
	p.until("bob's conversation has the 1 hour timer", func() (bool, string) {
		p.history("bob", "@alice")
		d, err := bob.Timer(bg, "@alice")
		return err == nil && d == time.Hour, fmt.Sprintf("%v %v", d, err)
	})
	p.waitJS("the page shows the timer", `document.getElementById("timer").value === "3600"`)

	// Typing, both ways.
	var mu sync.Mutex
	var typing []client.Typing
	wctx, cancel := context.WithCancel(bg)
	watched := make(chan error, 1)
	connected := make(chan struct{}, 1)
	go func() {
		watched <- bob.Watch(wctx, client.WatchOptions{}, func(e client.Event) {
			if e.Type == client.EventConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
			if e.Typing != nil {
				mu.Lock()
				typing = append(typing, *e.Typing)
				mu.Unlock()
			}
		})
	}()
	defer func() { cancel(); <-watched }()
	select {
	case <-connected:
	case err := <-watched:
		t.Fatalf("bob's watch: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("bob's watch never connected")
	}
	if _, err := bob.SendTyping(bg, "@alice", true); err != nil {
		t.Fatal(err)
	}
	p.waitJS("the page shows bob typing", `document.getElementById("typing").textContent.includes("bob is typing")`)
	p.do("typing in the browser", chromedp.SendKeys(chromedp.CSS("#compose"), "x"))
	p.until("bob sees alice typing", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(typing, func(ty client.Typing) bool { return ty.User == "alice" && ty.Typing }), fmt.Sprintf("%+v", typing)
	})
	p.phoneWidth()
}

// testPNG is a size × size PNG image.
func testPNG(t *testing.T, size int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
