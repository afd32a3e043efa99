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
func TestWebDirectTransfersInBrowser(t *testing.T) {
	s3 := s3test.StartVersity(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	s3.SetCORS(t, cors.Rule{AllowedOrigin: []string{url}, AllowedMethod: []string{"GET", "PUT"},
		AllowedHeader: []string{"content-type", "if-none-match", "parley-follow-redirect"}})

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
	b, err := LoadWith(files, Options{ObjectStore: origin})
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
	// Both uploads went to the bucket (the browser's and bob's), both
	// downloads were redirected there.
	direct := float64(filecrypt.CiphertextSize(150_000) + filecrypt.CiphertextSize(120_000))
	if bytes["up"] != 0 || bytes["down"] != 0 || bytes["up_direct"] != direct || redirects != 2 {
		t.Fatalf("parleyd moved %v bytes up and %v down itself, %v went up directly (want %v), %v downloads were redirected (want 2)",
			bytes["up"], bytes["down"], bytes["up_direct"], direct, redirects)
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
