package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/web/qr/qrtest"
)

// buildCLI builds cmd/parley, so that a test compares the browser with
// what the command-line client prints.
func buildCLI(t *testing.T) string {
	t.Helper()
	pkg, err := packageDir()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "parley")
	cmd := exec.Command("go", "build", "-o", exe, "./cmd/parley")
	cmd.Dir = filepath.Dir(pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/parley: %v\n%s", err, out)
	}
	return exe
}

// The link screen's QR code and a conversation's safety number and the
// device list, in headless Chromium at phone width:
//   - the QR code drawn next to the link code, screenshotted and decoded
//     by an independent decoder, is the link code;
//   - the device list shows the account's devices as the client library
//     (and so `parley devices`) lists them, this browser marked and all
//     signed;
//   - the safety number the browser shows for its conversation with bob
//     is the one `parley safety-number @alice` prints on bob's side, and
//     its QR code decodes to those digits.
func TestWebSafetyNumberAndDevicesInBrowser(t *testing.T) {
	b := bundle(t)
	url := startServer(t, b)
	cli := buildCLI(t)
	ctx := browser(t, 8*time.Minute)
	bg := context.Background()
	dirs := map[string]string{}
	newUser := func(name string) *client.Client {
		dirs[name] = filepath.Join(t.TempDir(), name)
		c, err := client.Init(bg, client.Options{Dir: dirs[name], Passphrase: []byte("pw " + name),
			KDF: &fastKDF, KTMonitorEvery: -1}, url, name, "")
		if err != nil {
			t.Fatalf("init %s: %v", name, err)
		}
		// Not a test of message requests (on by default).
		if _, err := c.SetSetting(bg, client.SettingMessageRequests, false); err != nil {
			t.Fatalf("%s: requests off: %v", name, err)
		}
		return c
	}
	alice, bob := newUser("alice"), newUser("bob")
	t.Cleanup(func() { alice.Close() })
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		start := time.Now()
		if err := chromedp.Do(sctx, steps...); err != nil {
			st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent + " | " + document.getElementById("error").textContent +
				" | dialogs open: " + [...document.querySelectorAll("dialog[open]")].map((d) => d.id).join(",") + " | safety: " + document.getElementById("safety-digits").textContent`))
			t.Fatalf("%s: %v after %v (the page says: %s)", what, err, time.Since(start).Round(time.Millisecond), st)
		}
		t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
	}
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return s
	}
	// qrOf decodes the QR code in the element sel twice: from a screenshot
	// of what the browser painted, as a phone's camera would, and from the
	// path data the page set, so a failure says which went wrong.
	qrOf := func(sel string) string {
		t.Helper()
		shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel+" svg")))
		if err != nil {
			t.Fatalf("screenshot of %s: %v", sel, err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatal(err)
		}
		painted, err := qrtest.Decode(img)
		if err != nil {
			os.WriteFile(filepath.Join(t.TempDir(), "qr.png"), shot, 0o644)
			t.Fatalf("the QR code the browser painted in %s: %v", sel, err)
		}
		var drawn struct {
			ViewBox string `json:"viewBox"`
			D       string `json:"d"`
		}
		if err := json.Unmarshal([]byte(eval(fmt.Sprintf(`JSON.stringify({viewBox: document.querySelector(%q).getAttribute("viewBox"), d: document.querySelector(%q).getAttribute("d")})`,
			sel+" svg", sel+" svg path"))), &drawn); err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscanf(drawn.ViewBox, "0 0 %d", &n); err != nil {
			t.Fatalf("the QR code's viewBox %q: %v", drawn.ViewBox, err)
		}
		raster, err := qrtest.Rasterize(drawn.D, n, 4)
		if err != nil {
			t.Fatal(err)
		}
		fromPath, err := qrtest.DecodePure(raster)
		if err != nil || fromPath != painted {
			t.Fatalf("the QR code's path data decodes to %q (%v), its pixels to %q", fromPath, err, painted)
		}
		return painted
	}

	// The link code and its QR code.
	do("opening the page", chromedp.EmulateViewport(375, 800), chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#link-user")))
	do("asking for a link code", chromedp.SendKeys(chromedp.CSS("#link-user"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#link-pass"), "browser passphrase\r"), chromedp.WaitVisible(chromedp.CSS("#link-qr svg path")))
	code := eval(`document.getElementById("link-code").textContent`)
	if code == "" {
		t.Fatal("the page shows no link code")
	}
	if got := qrOf("#link-qr"); got != code {
		t.Fatalf("the link code's QR code holds %q; the page shows %q", got, code)
	}
	// The module came compressed (Chromium decodes it and checks its
	// integrity on the decoded bytes, or the page would not have started).
	var sizes struct{ Encoded, Decoded int }
	if err := json.Unmarshal([]byte(eval(`JSON.stringify(((e) => ({Encoded: e.encodedBodySize, Decoded: e.decodedBodySize}))(performance.getEntriesByType("resource").find((e) => e.name.endsWith("/web/parley.wasm"))))`)), &sizes); err != nil {
		t.Fatal(err)
	}
	if sizes.Decoded != len(b.assets[WASMName].data) || sizes.Encoded*3 > sizes.Decoded {
		t.Fatalf("the browser fetched the module as %d bytes, %d decoded (the module is %d)", sizes.Encoded, sizes.Decoded, len(b.assets[WASMName].data))
	}
	t.Logf("the module: %d bytes on the wire, %d decoded", sizes.Encoded, sizes.Decoded)
	dev, _, err := alice.ApproveDevice(bg, code, time.Minute)
	if err != nil {
		t.Fatalf("approving the code read from the QR code: %v", err)
	}
	do("the page after approval", chromedp.WaitVisible(chromedp.CSS("#compose-form")))

	// The device list, as the client library (and parley devices) has it.
	want, err := alice.Devices(bg)
	if err != nil {
		t.Fatal(err)
	}
	do("the device list", chromedp.Click(chromedp.CSS("#devices-button")), chromedp.WaitVisible(chromedp.CSS(`#devices[data-loaded="true"]`)))
	type shown struct {
		ID       string `json:"id"`
		Current  bool   `json:"current"`
		Unsigned bool   `json:"unsigned"`
		Text     string `json:"text"`
	}
	var list []shown
	if err := json.Unmarshal([]byte(eval(`JSON.stringify([...document.querySelectorAll("#devices li")].map((li) => ({id: li.dataset.device, current: li.dataset.current === "true", unsigned: li.dataset.unsigned === "true", text: li.textContent})))`)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || len(want) != 2 {
		t.Fatalf("the page lists %+v; alice's devices are %+v", list, want)
	}
	for _, w := range want {
		i := slices.IndexFunc(list, func(s shown) bool { return s.ID == w.ID })
		if i < 0 {
			t.Fatalf("device %s is not in the page's list %+v", w.ID, list)
		}
		s := list[i]
		if s.Current != (w.ID == dev.ID) || s.Unsigned || !strings.Contains(s.Text, w.Key[:16]) {
			t.Errorf("the page shows %+v for device %+v (the browser is %s)", s, w, dev.ID)
		}
		if s.Current != strings.Contains(s.Text, "this browser") {
			t.Errorf("device %s: %q", s.ID, s.Text)
		}
	}
	do("closing the device list", chromedp.Click(chromedp.CSS("#devices-close")), chromedp.WaitNotVisible(chromedp.CSS("#devices-dialog")))

	// The safety number with bob.
	if _, err := bob.SendText(bg, "@alice", "hello"); err != nil {
		t.Fatal(err)
	}
	do("bob's conversation", chromedp.WaitVisible(chromedp.CSS(`#conversations button[data-target="@bob"]`)))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#conversations button[data-target="@bob"]').click(), true`)); err != nil {
		t.Fatal(err)
	}
	// Clicked by script, not at the button's coordinates: the
	// conversation is still rendering as it opens, and a click at a
	// position computed a moment before can land on something else (one
	// CI run waited 90 s with no dialog open and no error shown).
	do("the safety button", chromedp.WaitVisible(chromedp.CSS("#safety-button")))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("safety-button").click(), true`)); err != nil {
		t.Fatal(err)
	}
	do("the safety number", chromedp.WaitVisible(chromedp.CSS("#safety-qr svg path")))
	number := eval(`document.getElementById("safety-digits").dataset.number`)
	shownDigits := eval(`document.getElementById("safety-digits").textContent`)
	if !regexp.MustCompile(`^[0-9]{60}$`).MatchString(number) || strings.Join(strings.Fields(shownDigits), "") != number {
		t.Fatalf("the page shows %q (number %q)", shownDigits, number)
	}
	if got := qrOf("#safety-qr"); got != number {
		t.Fatalf("the safety number's QR code holds %q; the page shows %q", got, number)
	}

	// bob's side, from the command-line client.
	bob.Close()
	cmd := exec.Command(cli, "--profile", dirs["bob"], "--json", "safety-number", "@alice")
	cmd.Env = append(os.Environ(), "PARLEY_PASSPHRASE=pw bob")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parley safety-number @alice: %v\n%s", err, out)
	}
	var cliNumber struct {
		SafetyNumber string `json:"safety_number"`
	}
	if err := json.Unmarshal(out, &cliNumber); err != nil {
		t.Fatalf("parley --json safety-number: %v\n%s", err, out)
	}
	if cliNumber.SafetyNumber != number {
		t.Fatalf("the browser shows safety number %s; bob's CLI prints %s", number, cliNumber.SafetyNumber)
	}
	// alice's first device agrees too: the browser is one of her devices
	// in the number, not a different party.
	fromAlice, err := alice.SafetyNumber(bg, "bob")
	if err != nil || fromAlice != number {
		t.Fatalf("alice's first device computes %s (%v); the browser %s", fromAlice, err, number)
	}
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 375 {
		t.Fatalf("at 375 px the page is %d px wide (%v)", w, err)
	}
}
