package web

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/filecrypt"
	"github.com/parleychat/parley/internal/s3test"
	"github.com/parleychat/parley/store/blobs3"
	"github.com/parleychat/parley/store/blobstore"
)

// With --web-direct-transfers, the browser's attachments go to and from
// the bucket directly, as the CLI's do: a real S3 server (Versity) whose
// CORS rules allow the page's origin, a page whose policy names the
// bucket. The browser uploads a file that bob downloads, and downloads
// one bob sent, each checked by its SHA-256; parleyd itself moved none
// of the bytes (parleyd_blob_bytes_total counts them as direct uploads,
// nothing up or down through it) and redirected both downloads.
//
// Without the option (the same bucket and rules), the page stays on its
// own origin: its upload and its download go through parleyd, and only
// bob's go to the bucket. So the page goes direct only when the server
// says so.
func TestWebDirectTransfersInBrowser(t *testing.T) {
	s3 := s3test.StartVersity(t)
	t.Run("Direct", func(t *testing.T) { testBrowserTransfers(t, s3, true) })
	t.Run("ThroughServer", func(t *testing.T) { testBrowserTransfers(t, s3, false) })
}

func testBrowserTransfers(t *testing.T, s3 *s3test.Server, direct bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	s3.SetCORS(t, cors.Rule{AllowedOrigin: []string{url}, AllowedMethod: []string{"GET", "PUT"},
		AllowedHeader: []string{"if-none-match", "parley-follow-redirect"}})

	ctx := context.Background()
	idx, err := blobstore.OpenSQLiteIndex(filepath.Join(t.TempDir(), "blobs-index", "blobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobs3.Open(ctx, blobs3.Config{Endpoint: s3.Endpoint, RootCAs: s3.RootCAs, Bucket: s3.Bucket, Prefix: "att/",
		AccessKeyID: s3.AccessKeyID, SecretAccessKey: s3.SecretAccessKey, Presign: time.Minute}, idx)
	if err != nil {
		idx.Close()
		t.Fatal(err)
	}
	if err := blobs.CheckBrowserAccess(ctx, url); err != nil {
		t.Fatalf("the bucket's rules as set: %v", err)
	}
	origin, err := blobs.BrowserOrigin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, err := builtFiles()
	if err != nil {
		t.Fatalf("building the web client: %v", err)
	}
	var opts Options
	if direct {
		opts.ObjectStore = origin
	}
	b, err := LoadWith(files, opts)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	serveOn(t, ln, b, blobs, reg)

	// Chromium trusts the test server's own key and nothing more.
	p := linkedPageAt(t, url, pageOptions{
		chromium: []chromedp.ExecAllocatorOption{chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, s3.CAFile))},
		http:     &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3.RootCAs}}},
	}, "alice", "bob")
	bob := p.users["bob"]

	path, data := randomFile(t, "direct-from-bob.bin", 120_000)
	if _, err := bob.SendFile(ctx, "@alice", path, nil); err != nil {
		t.Fatal(err)
	}
	p.open("@bob")
	id := p.waitMessage("bob's file in the browser", "direct-from-bob.bin")
	p.press("downloading bob's file", fmt.Sprintf(`#messages li[data-id=%q] .download`, id))
	p.waitJS("the page checked the download", fmt.Sprintf(`document.querySelector('#messages li[data-id=%q] .file-verified').textContent.includes(%q)`, id, sha(data)))
	p.until("the browser saved bob's file", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(p.downloads, "direct-from-bob.bin"))
		return err == nil && sha(got) == sha(data), fmt.Sprint(err)
	})

	path, data = randomFile(t, "direct-from-browser.bin", 150_000)
	p.do("sending a file from the browser", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{path}),
		chromedp.Focus(chromedp.CSS("#file-send")), chromedp.KeyEvent(kb.Enter))
	p.waitJS("the file sent", `document.getElementById("file-status").textContent.startsWith("Sent")`)
	var fileMsg client.Message
	p.until("bob receives the browser's file", func() (bool, string) {
		msgs := p.history("bob", "@alice")
		for _, m := range msgs {
			if m.Kind == client.KindFile && m.File.Name == "direct-from-browser.bin" {
				fileMsg = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d messages", len(msgs))
	})
	out, _, err := bob.GetFile(ctx, fileMsg.ID, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("bob downloads the browser's file: %v", err)
	}
	if got, err := os.ReadFile(out); err != nil || sha(got) != sha(data) {
		t.Fatalf("bob got sha256 %s (%v), the browser sent %s", sha(got), err, sha(data))
	}

	bytes := map[string]float64{}
	redirects := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "parleyd_blob_bytes_total":
				for _, l := range m.GetLabel() {
					bytes[l.GetValue()] += m.GetCounter().GetValue()
				}
			case "parleyd_blob_download_redirects_total":
				redirects += m.GetCounter().GetValue()
			}
		}
	}
	page, cli := float64(filecrypt.CiphertextSize(150_000)), float64(filecrypt.CiphertextSize(120_000))
	// Bob's upload and download go to the bucket either way; the page's
	// only with the option.
	want := map[string]float64{"up": 0, "down": 0, "up_direct": page + cli, "redirects": 2}
	if !direct {
		want = map[string]float64{"up": page, "down": cli, "up_direct": cli, "redirects": 1}
	}
	if bytes["up"] != want["up"] || bytes["down"] != want["down"] || bytes["up_direct"] != want["up_direct"] || redirects != want["redirects"] {
		t.Fatalf("parleyd moved %v bytes up and %v down itself, %v went up directly, %v downloads were redirected; want %v",
			bytes["up"], bytes["down"], bytes["up_direct"], redirects, want)
	}
	if direct {
		checkHeaders(t, url, b) // the page's policy with the bucket, on every file
	}
}

// spkiHash is the base64 SHA-256 of the public key of the certificate in
// the PEM file, as Chromium's --ignore-certificate-errors-spki-list takes.
func spkiHash(t *testing.T, certFile string) string {
	t.Helper()
	raw, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
