package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The profile's IndexedDB backend runs the same contract as the SQLite
// one (client/profile's runContract), in Chromium: the package's tests
// are built for js/wasm and run on a page, their output read from the
// console.
func TestProfileContractInBrowser(t *testing.T) {
	pkg, err := packageDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "test", "-c", "-o", filepath.Join(dir, "profile.test.wasm"), "../client/profile")
	build.Dir = pkg
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building client/profile's tests for js/wasm: %v\n%s", err, out)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	loader, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", ExecName))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]struct {
		ct   string
		data []byte
	}{
		"/":             {"text/html", []byte(`<!doctype html><title>running</title><script src="wasm_exec.js"></script><script src="run.js"></script>`)},
		"/wasm_exec.js": {"text/javascript", loader},
		"/run.js": {"text/javascript", []byte(`const go = new Go();
go.argv = ["profile.test", "-test.v", "-test.run", "IndexedDB"];
go.exit = (code) => { document.title = "exit " + code; };
WebAssembly.instantiateStreaming(fetch("profile.test.wasm"), go.importObject).then((r) => go.run(r.instance), (e) => { document.title = "exit load " + e; });`)},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/profile.test.wasm" {
			w.Header().Set("Content-Type", "application/wasm")
			http.ServeFile(w, r, filepath.Join(dir, "profile.test.wasm"))
			return
		}
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.ct)
		w.Write(f.data)
	}))
	defer srv.Close()

	ctx := browser(t, 5*time.Minute)
	var mu sync.Mutex
	var out strings.Builder
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			out.WriteString(m.Text + "\n")
			mu.Unlock()
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`new Promise((resolve) => { const check = () => document.title.startsWith("exit") ? resolve(document.title) : setTimeout(check, 100); check(); })`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("waiting for the tests to finish: %v", err)
	}
	// The console events may trail the exit: wait for the summary line.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		mu.Lock()
		s := out.String()
		mu.Unlock()
		if strings.Contains(s, "PASS\n") || strings.Contains(s, "FAIL\n") || wctx.Err() != nil {
			break
		}
		chromedp.Do(wctx, chromedp.Sleep(100*time.Millisecond))
	}
	mu.Lock()
	s := out.String()
	mu.Unlock()
	t.Logf("client/profile's tests in Chromium:\n%s", s)
	if title != "exit 0" {
		t.Fatalf("the tests ended with %q", title)
	}
	for _, want := range []string{"--- PASS: TestIndexedDBBackendContract", "--- PASS: TestIndexedDBBackendContract/TamperedRowsRejected", "--- PASS: TestIndexedDBProfileLifecycle"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in the output", want)
		}
	}
}
