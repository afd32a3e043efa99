package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/store/sqlitestore"
)

// builtFiles builds the module into a temporary dist/ once per test run
// and returns the client's files as parleyd would embed them.
var builtFiles = sync.OnceValues(func() (fs.FS, error) {
	dir, err := os.MkdirTemp("", "parley-web-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := Build(ctx, filepath.Join(dir, "dist")); err != nil {
		return nil, err
	}
	return overlayFS{static: Files(), dist: os.DirFS(dir)}, nil
})

// overlayFS is static/ from the embedded files and dist/ from a build.
type overlayFS struct{ static, dist fs.FS }

func (o overlayFS) Open(name string) (fs.File, error) {
	if strings.HasPrefix(name, "dist/") {
		return o.dist.Open(name)
	}
	return o.static.Open(name)
}

func bundle(t testing.TB) *Bundle {
	t.Helper()
	files, err := builtFiles()
	if err != nil {
		t.Fatalf("building the web client: %v", err)
	}
	b, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startServer runs a real parleyd on loopback serving the web client.
func startServer(t testing.TB, b *Bundle) string {
	t.Helper()
	blobs, err := blobstore.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, b, blobs, nil)
	return "http://" + ln.Addr().String()
}

// blobCloser is an attachment store the server closes when it stops.
type blobCloser interface {
	store.Blobs
	Close() error
}

// serveOn runs a real parleyd on ln serving the web client, with its
// attachments in blobs (closed with the server) and its metrics in reg
// (nil: none kept).
func serveOn(t testing.TB, ln net.Listener, b *Bundle, blobs blobCloser, reg *prometheus.Registry) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	kt, err := server.EphemeralTransparency("parley.test/kt")
	if err != nil {
		t.Fatal(err)
	}
	mount := map[string]http.Handler{}
	for _, p := range Routes {
		mount[p] = b.Handler()
	}
	cfg := server.Config{Store: st, Blobs: blobs, Transparency: kt, Mount: mount,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if reg != nil {
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		st.Close()
		blobs.Close()
	})
}

// chromium finds the browser the tests drive.
func chromium(t testing.TB) string {
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found for the web client's browser tests: run scripts/install-chromium (or set CHROMIUM to a Chrome binary)")
	return ""
}

// browser starts headless Chromium and returns a context for its tab
// (with a deadline) and the page's console, printed if the test fails.
func browser(t testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))
	opts = append(opts, extra...)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox does not run as root
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}
	var mu sync.Mutex
	var console bytes.Buffer
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			fmt.Fprintf(&console, "%s: %s\n", m.Type, m.Text)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("the page's console:\n%s", console.String())
			mu.Unlock()
		}
	})
	ctx, cancelT := context.WithTimeout(bctx, timeout)
	t.Cleanup(cancelT)
	return ctx
}

func randomText(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var fastKDF = profile.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// The web client end to end in headless Chromium at phone width: alice
// (made with the client library, as the CLI does) links the browser as
// a new device by approving its link code; bob sends alice a 1:1 message,
// which the browser shows; the browser replies with the keyboard alone
// and bob receives it. Reloading asks for the passphrase: a wrong one
// opens nothing, the right one restores the history. Every response
// carries the security headers, the page loads everything with
// Subresource Integrity, and nothing the browser stored (IndexedDB,
// localStorage) holds the messages' text or the passphrase.
func TestWebClientInBrowser(t *testing.T) {
	b := bundle(t)
	url := startServer(t, b)
	ctx := browser(t, 8*time.Minute)
	bg := context.Background()
	newUser := func(name string) *client.Client {
		c, err := client.Init(bg, client.Options{Dir: filepath.Join(t.TempDir(), name), Passphrase: []byte("pw " + name),
			KDF: &fastKDF, KTMonitorEvery: -1}, url, name, "")
		if err != nil {
			t.Fatalf("init %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob := newUser("alice"), newUser("bob")
	// alice writes first, so bob's messages are not a message request
	// (on by default) to any of her devices.
	if _, err := alice.SendText(bg, "@bob", "hello"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent + " | " + document.getElementById("error").textContent`))
			t.Fatalf("%s: %v (the page says: %s)", what, err, st)
		}
		t.Logf("%6.1fs %s", time.Since(start).Seconds(), what)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("the text of %s: %v", sel, err)
		}
		return s
	}
	const passphrase = "browser passphrase 7"

	// Link: the page shows a code, alice's device approves it.
	do("opening the page", chromedp.EmulateViewport(375, 800), chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#link-user")))
	do("asking for a link code", chromedp.SendKeys(chromedp.CSS("#link-user"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#link-pass"), passphrase+"\r"), chromedp.WaitVisible(chromedp.CSS("#link-code-box")))
	code := text("#link-code")
	if code == "" {
		t.Fatal("the page shows no link code")
	}
	dev, _, err := alice.ApproveDevice(bg, code, time.Minute)
	if err != nil {
		t.Fatalf("approving the browser's link code: %v", err)
	}
	do("the page after approval", chromedp.WaitVisible(chromedp.CSS("#compose-form")))
	devices, err := alice.Devices(bg)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range devices {
		found = found || (d.ID == dev.ID && d.Signed)
	}
	if len(devices) != 2 || !found {
		t.Fatalf("alice's devices after linking the browser: %+v (the browser is %s)", devices, dev.ID)
	}
	if s := text("#status"); !strings.Contains(s, dev.ID) {
		t.Fatalf("the page's status %q does not name the linked device %s (error: %q)", s, dev.ID, text("#error"))
	}

	// bob → alice, shown in the browser.
	hello := randomText("CANARYHELLO")
	if _, err := bob.SendText(bg, "@alice", hello); err != nil {
		t.Fatal(err)
	}
	do("bob's conversation in the list", chromedp.WaitVisible(chromedp.CSS(`#conversations button[data-target="@bob"]`)),
		chromedp.Click(chromedp.CSS(`#conversations button[data-target="@bob"]`)))
	waitText := func(what, want string) {
		t.Helper()
		js := fmt.Sprintf(`new Promise((resolve) => { const check = () => document.getElementById("messages").textContent.includes(%q) ? resolve(true) : setTimeout(check, 50); check(); })`, want)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatalf("%s: %v (messages: %q)", what, err, text("#messages"))
		}
	}
	waitText("bob's message in the browser", hello)

	// The browser replies, keyboard only: focus the compose line, type, Enter.
	reply := randomText("CANARYREPLY")
	do("replying", chromedp.Focus(chromedp.CSS("#compose")), chromedp.SendKeys(chromedp.CSS("#compose"), reply+"\r"))
	waitText("the reply in the browser", reply)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := bob.Sync(bg); err != nil {
			t.Fatalf("bob's sync: %v", err)
		}
		msgs, err := bob.History(bg, "@alice", 50)
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, m := range msgs {
			got = got || (m.Text == reply && m.Sender.User == "alice" && m.Sender.Device == dev.ID)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob never received the browser's reply; his history: %+v", msgs)
		}
		if err := chromedp.Do(ctx, chromedp.Sleep(200*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing stored in the clear: every byte in IndexedDB and localStorage.
	dump, err := chromedp.Run(ctx, chromedp.Evaluate[string](dumpStorageJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading IndexedDB: %v", err)
	}
	stored, err := base64.StdEncoding.DecodeString(dump)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) < 10_000 || !bytes.Contains(stored, []byte(`"salt"`)) {
		t.Fatalf("IndexedDB holds %d bytes without the profile header: the dump does not show the profile", len(stored))
	}
	for _, canary := range []string{hello, reply, passphrase, "CANARY"} {
		if bytes.Contains(stored, []byte(canary)) {
			t.Errorf("the browser's storage contains %q", canary)
		}
	}

	// Reload: locked; a wrong passphrase opens nothing; the right one
	// restores the history.
	do("reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#unlock-pass")))
	do("a wrong passphrase", chromedp.SendKeys(chromedp.CSS("#unlock-pass"), "not the passphrase\r"), chromedp.WaitVisible(chromedp.CSS("#error")))
	if e := text("#error"); !strings.Contains(e, "wrong passphrase") {
		t.Fatalf("a wrong passphrase: %q", e)
	}
	if hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("chat").hidden && document.getElementById("conversations").children.length === 0`)); err != nil || !hidden {
		t.Fatalf("a wrong passphrase showed the conversations (%v)", err)
	}
	do("the right passphrase", chromedp.SendKeys(chromedp.CSS("#unlock-pass"), passphrase+"\r"),
		chromedp.WaitVisible(chromedp.CSS(`#conversations button[data-target="@bob"]`)))
	// The list re-renders as the unlocked client syncs: click whatever
	// button is there now (a node found earlier may be gone).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#conversations button[data-target="@bob"]').click(), true`)); err != nil {
		t.Fatalf("opening bob's conversation after reloading: %v", err)
	}
	waitText("bob's message after reloading", hello)
	waitText("the reply after reloading", reply)

	// Phone width: nothing wider than the screen.
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 375 {
		t.Fatalf("at 375 px the page is %d px wide (%v)", w, err)
	}
	checkHeaders(t, url, b)
}

// dumpStorageJS returns, base64, every key and value of every object
// store of the profile's IndexedDB database and every localStorage item.
const dumpStorageJS = `(async () => {
  const parts = [];
  const db = await new Promise((ok, fail) => { const r = indexedDB.open("parley"); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
  const enc = new TextEncoder();
  for (const name of db.objectStoreNames) {
    const tx = db.transaction(name, "readonly");
    const store = tx.objectStore(name);
    const [keys, values] = await Promise.all([store.getAllKeys(), store.getAll()].map((r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); })));
    for (const k of keys) parts.push(enc.encode(String(k)));
    for (const v of values) {
      if (v instanceof Uint8Array) { parts.push(v); continue; }
      for (const f of Object.values(v)) parts.push(f instanceof Uint8Array ? f : enc.encode(String(f)));
    }
  }
  db.close();
  for (let i = 0; i < localStorage.length; i++) { const k = localStorage.key(i); parts.push(enc.encode(k + localStorage.getItem(k))); }
  let s = "";
  for (const p of parts) for (const byte of p) s += String.fromCharCode(byte);
  return btoa(s);
})()`

// checkHeaders: the page and every file carry the security headers, the
// page names every file with its integrity, and /web/SHA256SUMS publishes
// the module's hash.
func checkHeaders(t *testing.T, url string, b *Bundle) {
	t.Helper()
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return resp, body
	}
	resp, page := get("/")
	for _, path := range []string{"/", "/web/app.js", "/web/chat.js", "/web/safety.js", "/web/manage.js", "/web/style.css", "/web/wasm_exec.js", "/web/" + WASMName, "/web/SHA256SUMS"} {
		if path != "/" {
			resp, _ = get(path)
		}
		for k, v := range securityHeaders {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, v)
			}
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != b.csp {
			t.Errorf("GET %s: Content-Security-Policy = %q, want %q", path, got, b.csp)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if b.csp != CSP {
		// Only the object store's origin is added, to connect-src.
		csp = strings.Replace(csp, " "+b.objectStore, "", 1)
		if csp != CSP {
			t.Errorf("the CSP with the object store at %s is %q: more than connect-src changed", b.objectStore, resp.Header.Get("Content-Security-Policy"))
		}
	}
	for _, bad := range []string{"unsafe-inline", "'unsafe-eval'", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("the CSP allows %s: %s", bad, csp)
		}
	}
	if bytes.Contains(page, []byte("<script>")) || bytes.Contains(page, []byte(" on")) && bytes.Contains(page, []byte("onclick")) {
		t.Error("the page has an inline script")
	}
	want := 1 // wasm_exec.js, and every script and style sheet of web/static
	for _, name := range staticFiles(t) {
		if strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".css") {
			want++
		}
	}
	if n := bytes.Count(page, []byte(` integrity="sha256-`)); n != want {
		t.Errorf("the page names %d files with their integrity, want %d (wasm_exec.js and web/static's scripts and style sheet)", n, want)
	}
	if !bytes.Contains(page, []byte(`data-integrity="sha256-`)) {
		t.Error("the page does not give the module's integrity")
	}
	_, sums := get("/web/SHA256SUMS")
	if !bytes.Contains(sums, []byte(b.WASMSHA256()+"  "+WASMName+"\n")) {
		t.Errorf("SHA256SUMS does not publish the module's hash %s:\n%s", b.WASMSHA256(), sums)
	}
}

// A served file that does not match the integrity the page gives is not
// run: the server (or a cache between) swaps app.js, and the page stays
// at "Loading…" instead of running it.
func TestSubresourceIntegrityRefusesSwappedScript(t *testing.T) {
	b := bundle(t)
	tampered := *b
	tampered.assets = map[string]asset{}
	for k, v := range b.assets {
		tampered.assets[k] = v
	}
	app := tampered.assets["app.js"]
	app.data = append([]byte(`document.body.dataset.tampered = "ran";`+"\n"), app.data...)
	app.encoded = nil               // the swapped script goes out as it is, not the original's compressed copy
	tampered.assets["app.js"] = app // index still names the original's hash
	url := startServer(t, &tampered)
	ctx := browser(t, time.Minute)
	messages := chromedp.Console(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	// Chromium reports the refused script on the console.
	refused := false
	for m, err := range messages {
		if err != nil {
			t.Fatalf("waiting for the browser to refuse the swapped script: %v", err)
		}
		if strings.Contains(m.Text, "integrity") && strings.Contains(m.Text, "app.js") {
			refused = true
			break
		}
	}
	ran, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.body.dataset.tampered === "ran" || !document.getElementById("link").hidden || !document.getElementById("unlock").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !refused {
		t.Fatal("the browser did not refuse the swapped script")
	}
	if ran {
		t.Fatal("the browser ran a script whose hash differs from the page's integrity")
	}
}
