package channels_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/image/draw"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/chansqlite"
	"github.com/parleychat/parley/hashing/hashlist"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/internal/shareddata"
	"github.com/parleychat/parley/moderation"
	"github.com/parleychat/parley/moderation/modsqlite"
	"github.com/parleychat/parley/store/sqlitestore"
)

type env struct {
	t      testing.TB
	ctx    context.Context
	dir    string // holds moderation.db and channels.db
	mstore *modsqlite.Store
	cstore *chansqlite.Store
	mod    *moderation.Service
	svc    *channels.Service
	srv    *httptest.Server
	reg    *prometheus.Registry
}

// fakeAuth takes the user from the X-Test-User header.
var fakeAuth = channels.AuthenticatorFunc(func(r *http.Request) (string, error) {
	if u := r.Header.Get("X-Test-User"); u != "" {
		return u, nil
	}
	return "", channels.ErrUnauthorized
})

// accountExists stands for the delivery store: these accounts exist.
func accountExists(_ context.Context, user string) (bool, error) {
	switch user {
	case "alice", "bob", "carol", "dave":
		return true, nil
	}
	return false, nil
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the service's Config adjusted by tune.
func newEnvWith(t testing.TB, tune func(*channels.Config)) *env {
	t.Helper()
	return newEnvModWith(t, nil, tune)
}

// newEnvModWith is newEnvWith with the matcher's Config adjusted by modTune.
func newEnvModWith(t testing.TB, modTune func(*moderation.Config), tune func(*channels.Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ms, err := modsqlite.Open(ctx, filepath.Join(dir, "moderation.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	cs, err := chansqlite.Open(ctx, filepath.Join(dir, "channels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	reg := prometheus.NewRegistry()
	mcfg := moderation.Config{Store: ms, Registerer: reg}
	if modTune != nil {
		modTune(&mcfg)
	}
	mod, err := moderation.New(ctx, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := channels.Config{Store: cs, Moderation: mod, Auth: fakeAuth, AccountExists: accountExists, MaxMediaBytes: 4 << 20, MaxWait: 5 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	svc, err := channels.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Shared != nil || cfg.MediaObjects != nil {
		t.Cleanup(svc.Close) // stops renewing the shared counts and sweeping media
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, ctx: ctx, dir: dir, mstore: ms, cstore: cs, mod: mod, svc: svc, srv: srv, reg: reg}
	e.do("alice", "POST", "/v1/channels", `{"id":"news","title":"News"}`, http.StatusCreated, nil)
	return e
}

func (e *env) do(user, method, path, body string, want int, out any) []byte {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if resp.Header.Get(channels.PrivacyHeader) == "" {
		e.t.Errorf("%s %s: no %s header", method, path, channels.PrivacyHeader)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return b
}

type file struct {
	name, contentType string
	data              []byte
}

// post sends a multipart post and returns the status and body.
func (e *env) post(user, channel, text string, files ...file) (int, []byte) {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("text", text)
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="media"; filename=%q`, f.name))
		h.Set("Content-Type", f.contentType)
		w, _ := mw.CreatePart(h)
		w.Write(f.data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/channels/"+channel+"/posts", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Test-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) mustPost(user, channel, text string, files ...file) channels.PostView {
	e.t.Helper()
	code, b := e.post(user, channel, text, files...)
	if code != http.StatusCreated {
		e.t.Fatalf("post %q: HTTP %d: %s", text, code, b)
	}
	var pr channels.PostResponse
	json.Unmarshal(b, &pr)
	return pr.Post
}

// importBank imports a bank and applies it to the running index.
func (e *env) importBank(name string, action hashlist.Action, entries ...hashlist.Entry) {
	e.t.Helper()
	meta := moderation.Bank{Name: name, Source: "test", Label: "terrorist content", Action: action}
	if _, _, err := e.mstore.ImportBank(e.ctx, meta, entries); err != nil {
		e.t.Fatal(err)
	}
	if err := e.mod.Refresh(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// importElsewhere imports a bank as "parleyd admin lists import" does, from
// its own connection to moderation.db, and leaves the service alone: newEnv
// runs no poller, so only the service's own checks can bring it in.
func (e *env) importElsewhere(name string, action hashlist.Action, entries ...hashlist.Entry) {
	e.t.Helper()
	ms, err := modsqlite.Open(e.ctx, filepath.Join(e.dir, "moderation.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer ms.Close()
	meta := moderation.Bank{Name: name, Source: "test", Label: "terrorist content", Action: action}
	if _, _, err := ms.ImportBank(e.ctx, meta, entries); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) events(channel string, since int64, wait int) channels.EventsResponse {
	e.t.Helper()
	var r channels.EventsResponse
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/%s/events?since=%d&wait=%d", channel, since, wait), "", http.StatusOK, &r)
	return r
}

func readImage(t testing.TB, elem ...string) ([]byte, image.Image) {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, append([]string{"testdata", "pdq", "images"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return data, img
}

func encodeJPEG(t *testing.T, img image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pdqEntry(t *testing.T, data []byte) hashlist.Entry {
	t.Helper()
	r, err := pdq.HashReader(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := hashlist.NewEntry(hashlist.PDQ, r.Hash.String(), []string{"ideology:test"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// transforms returns modified copies of img made with Go's image packages.
func transforms(t *testing.T, img image.Image) map[string][]byte {
	b := img.Bounds()
	resize := func(w, h int) image.Image {
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
		return dst
	}
	// 1% off each side: PDQ is not crop-resistant, and 2% per side
	// already moves the hash by more than the threshold.
	crop := image.NewRGBA(image.Rect(0, 0, b.Dx()*98/100, b.Dy()*98/100))
	draw.Draw(crop, crop.Bounds(), img, b.Min.Add(image.Pt(b.Dx()/100, b.Dy()/100)), draw.Src)
	// Brighten and mirror on a flat RGBA copy (Pix loops, not At/Set, so
	// the test stays quick under -race).
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	bright := image.NewRGBA(rgba.Rect)
	for i, v := range rgba.Pix {
		if i%4 == 3 {
			bright.Pix[i] = v
		} else {
			bright.Pix[i] = uint8(min(255, int(v)+30))
		}
	}
	mirror := image.NewRGBA(rgba.Rect)
	w := b.Dx()
	for y := range b.Dy() {
		row := rgba.Pix[y*rgba.Stride:]
		out := mirror.Pix[y*mirror.Stride:]
		for x := range w {
			copy(out[4*(w-1-x):4*(w-x)], row[4*x:4*x+4])
		}
	}
	return map[string][]byte{
		"jpeg-q20":   encodeJPEG(t, img, 20),
		"half-size":  encodeJPEG(t, resize(b.Dx()/2, b.Dy()/2), 85),
		"thumbnail":  encodeJPEG(t, resize(160, 120), 85),
		"crop-1pct":  encodeJPEG(t, crop, 85),
		"brightened": encodeJPEG(t, bright, 85),
		"mirrored":   encodeJPEG(t, mirror, 85),
	}
}

func TestBlockListRefusesTransformedCopies(t *testing.T) {
	e := newEnv(t)
	orig, img := readImage(t, "bridge-mods", "aaa-orig.jpg")
	e.importBank("gifct", hashlist.Block, pdqEntry(t, orig))

	for name, data := range transforms(t, img) {
		t.Run(name, func(t *testing.T) {
			code, body := e.post("alice", "news", "look", file{name + ".jpg", "image/jpeg", data})
			if code != http.StatusUnavailableForLegalReasons {
				t.Fatalf("HTTP %d, want 451: %s", code, body)
			}
			var eb channels.ErrorBody
			json.Unmarshal(body, &eb)
			if eb.Code != "blocked" || eb.List != "gifct" || eb.Label != "terrorist content" || eb.Media == nil || *eb.Media != 0 {
				t.Fatalf("error body %+v", eb)
			}
		})
	}
	code, _ := e.post("alice", "news", "orig", file{"a.jpg", "image/jpeg", orig})
	if code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("original: HTTP %d", code)
	}
	// Copies made by others (in the shared folder) are refused too,
	// rotated and mirrored ones through the dihedral hashes.
	for _, p := range [][]string{
		{"bridge-mods", "blur-a-lot.jpg"},
		{"bridge-mods", "sharpen-a-little.jpg"},
		{"bridge-mods", "square-128x128.jpg"},
		{"misc-images", "modes", "P.png"},
		{"misc-images", "modes", "PA.webp"},
		{"reg-test-input", "dih", "bridge-2-rotate-90.jpg"},
		{"reg-test-input", "dih", "bridge-5-flipx.jpg"},
	} {
		data, _ := readImage(t, p...)
		if code, body := e.post("alice", "news", "copy", file{p[len(p)-1], "", data}); code != http.StatusUnavailableForLegalReasons {
			t.Errorf("%s: HTTP %d, want 451: %s", p[len(p)-1], code, body)
		}
	}
	// Unrelated images from the shared folder are accepted.
	for _, p := range [][]string{
		{"reg-test-input", "labelme-subset", "q0122.jpg"},
		{"reg-test-input", "labelme-subset", "q2821.jpg"},
		{"reg-test-input", "pen-and-coaster.png"},
		{"reg-test-input", "exif-rotn", "exif-rotn-6.jpg"},
		{"python-threatexchange", "rgb.jpeg"},
		{"python-threatexchange", "I16.png"},
		{"misc-images", "wee.jpg"},
	} {
		data, _ := readImage(t, p...)
		e.mustPost("alice", "news", "unrelated", file{p[len(p)-1], "", data})
	}
	// Every refusal is a recorded decision with list, hash, distance.
	ds, err := e.mstore.Decisions(e.ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 14 {
		t.Fatalf("%d decisions, want 14", len(ds))
	}
	for _, d := range ds {
		if d.Kind != moderation.DecisionBlock || d.Bank != "gifct" || d.Type != hashlist.PDQ || d.Distance > 31 || d.Time.IsZero() || !strings.Contains(d.Subject, "news") {
			t.Errorf("decision %+v", d)
		}
	}
	if n := metricSum(t, e.reg, "parleyd_moderation_matches_total"); n != 14 {
		t.Errorf("matches metric %v, want 14", n)
	}
	// Every upload, refused or accepted, is timed to its decision.
	if n := metricSum(t, e.reg, "parleyd_moderation_upload_decision_seconds"); n != 21 {
		t.Errorf("upload-to-decision histogram count %v, want 21", n)
	}
}

// metricSum sums a counter family's values or a histogram's counts.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			}
		}
	}
	return sum
}

func TestExactDigestsBlockAnyFile(t *testing.T) {
	e := newEnv(t)
	video := bytes.Repeat([]byte("not really an mp4 "), 100)
	a, _ := e.svc.Analyse(video, "video/mp4")
	if a.PDQ != nil {
		t.Fatal("a non-image got a PDQ hash")
	}
	ent, err := hashlist.NewEntry(hashlist.SHA256, fmt.Sprintf("%x", a.SHA256), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.importBank("tat", hashlist.Block, ent)
	if code, body := e.post("alice", "news", "clip", file{"a.mp4", "video/mp4", video}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("HTTP %d: %s", code, body)
	}
	e.mustPost("alice", "news", "other clip", file{"b.mp4", "video/mp4", append(video, '!')})
}

func TestLowQualityUploadNotMatchedByPDQ(t *testing.T) {
	e := newEnv(t)
	small, _ := readImage(t, "reg-test-input", "labelme-subset", "q0003.jpg")
	e.importBank("gifct", hashlist.Block, pdqEntry(t, small))
	// Quality 3: the PDQ hash is ignored, so only an exact copy of the
	// bytes would match, and there is no exact entry.
	e.mustPost("alice", "news", "low quality", file{"q.jpg", "image/jpeg", small})
}

// waitingSignal makes e's long-polls report when they start waiting, and
// leaves only a change notification to wake them (the poll for other
// processes' changes is an hour).
func waitingSignal(t *testing.T) (*env, <-chan struct{}) {
	waiting := make(chan struct{}, 1)
	// Long-polls may wait two minutes: a list import and its rescan take
	// a while under the race detector on a busy machine.
	e := newEnvWith(t, func(c *channels.Config) { c.FeedPoll, c.MaxWait = time.Hour, 2*time.Minute })
	e.svc.OnLongPollWait(func(string) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})
	return e, waiting
}

// untilWaiting returns once a long-poll waits for a change.
func untilWaiting(t *testing.T, waiting <-chan struct{}) {
	t.Helper()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("the long-poll never started waiting")
	}
}

func TestListUpdateTakesDownAndDeletionAllowsAgain(t *testing.T) {
	e, waiting := waitingSignal(t)
	e.do("bob", "PUT", "/v1/channels/news/follow", "", http.StatusNoContent, nil)
	orig, img := readImage(t, "bridge-mods", "aaa-orig.jpg")
	copyData := encodeJPEG(t, img, 60)
	p := e.mustPost("alice", "news", "bridge", file{"b.jpg", "image/jpeg", copyData})
	other, _ := readImage(t, "reg-test-input", "pen-and-coaster.png")
	keep := e.mustPost("alice", "news", "pen", file{"p.png", "image/png", other})

	first := e.events("news", 0, 0)
	if len(first.Events) != 2 || first.Events[0].Post == nil || first.Events[0].Post.ID != p.ID || !first.Public || first.Notice == "" {
		t.Fatalf("initial feed: %+v", first)
	}
	// A follower long-polls; the list update must wake it with a takedown.
	got := make(chan channels.EventsResponse, 1)
	go func() {
		var r channels.EventsResponse
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/channels/news/events?since=%d&wait=120", e.srv.URL, first.Cursor), nil)
		req.Header.Set("X-Test-User", "bob")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
		}
		got <- r
	}()
	untilWaiting(t, waiting)
	entry := pdqEntry(t, orig)
	e.importBank("gifct", hashlist.Block, entry)
	var r channels.EventsResponse
	select {
	case r = <-got:
	case <-time.After(3 * time.Minute):
		t.Fatal("follower not woken by the takedown")
	}
	if len(r.Events) != 1 || r.Events[0].Kind != channels.EventTakedown || r.Events[0].PostID != p.ID || !strings.Contains(r.Events[0].Reason, "gifct") {
		t.Fatalf("follower got %+v", r)
	}
	// On reconnect from the start, the taken-down post's content is gone.
	all := e.events("news", 0, 0)
	for _, ev := range all.Events {
		if ev.PostID == p.ID && ev.Post != nil {
			t.Fatalf("taken-down post still served: %+v", ev)
		}
	}
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", p.ID), "", http.StatusNotFound, nil)
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", p.ID), "", http.StatusNotFound, nil)
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", keep.ID), "", http.StatusOK, nil)
	ds, _ := e.mstore.Decisions(e.ctx, fmt.Sprintf("post:%d", p.ID), 0)
	if len(ds) != 1 || ds[0].Kind != moderation.DecisionTakedown || ds[0].Bank != "gifct" || ds[0].Hash != entry.Value {
		t.Fatalf("takedown decisions %+v", ds)
	}
	if n := metricSum(t, e.reg, "parleyd_moderation_list_update_to_takedown_seconds"); n != 1 {
		t.Errorf("takedown histogram count %v, want 1", n)
	}
	// Now blocked on upload...
	if code, _ := e.post("alice", "news", "again", file{"b.jpg", "image/jpeg", copyData}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("re-upload: HTTP %d, want 451", code)
	}
	// ...until the hash is deleted upstream.
	e.importBank("gifct", hashlist.Block)
	e.mustPost("alice", "news", "again", file{"b.jpg", "image/jpeg", copyData})
}

func TestReviewListHoldsForModerator(t *testing.T) {
	e := newEnv(t)
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	e.importBank("maybe", hashlist.Review, pdqEntry(t, orig))
	code, body := e.post("alice", "news", "held", file{"a.jpg", "image/jpeg", orig})
	if code != http.StatusAccepted {
		t.Fatalf("HTTP %d, want 202: %s", code, body)
	}
	var pr channels.PostResponse
	json.Unmarshal(body, &pr)
	if pr.Post.Status != channels.Held {
		t.Fatalf("status %q", pr.Post.Status)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 0 {
		t.Fatalf("held post visible: %+v", evs)
	}
	if _, err := channels.Approve(e.ctx, e.cstore, e.mstore, pr.Post.ID, "mod"); err != nil {
		t.Fatal(err)
	}
	evs := e.events("news", 0, 0)
	if len(evs.Events) != 1 || evs.Events[0].Post == nil || evs.Events[0].Post.ID != pr.Post.ID {
		t.Fatalf("approved post not published: %+v", evs)
	}
	if _, err := channels.Approve(e.ctx, e.cstore, e.mstore, pr.Post.ID, "mod"); !errors.Is(err, channels.ErrInvalid) {
		t.Fatalf("approving a published post: %v", err)
	}
	// Rejecting it with confirmation adds its hashes to a local bank that
	// then blocks the file.
	if _, err := channels.Reject(e.ctx, e.cstore, e.mstore, pr.Post.ID, "mod", "confirmed"); err != nil {
		t.Fatal(err)
	}
	if err := e.mod.Refresh(e.ctx); err != nil {
		t.Fatal(err)
	}
	evs = e.events("news", evs.Cursor, 0)
	if len(evs.Events) != 1 || evs.Events[0].Kind != channels.EventTakedown {
		t.Fatalf("rejection not a takedown: %+v", evs)
	}
	b, err := e.mstore.Bank(e.ctx, "confirmed")
	if err != nil || b.Entries != 3 || b.Action != hashlist.Block {
		t.Fatalf("confirmed bank %+v, %v", b, err)
	}
	code, body = e.post("alice", "news", "again", file{"a.jpg", "image/jpeg", orig})
	var eb channels.ErrorBody
	json.Unmarshal(body, &eb)
	if code != http.StatusUnavailableForLegalReasons || eb.List != "confirmed" {
		t.Fatalf("after confirmation: HTTP %d %s", code, body)
	}
}

// pngBomb builds a small PNG whose header declares w x h pixels.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		b.Write(n[:])
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.BigEndian.PutUint32(n[:], c.Sum32())
		b.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

func TestHostileImagesRefused(t *testing.T) {
	e := newEnv(t)
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	// A JPEG whose SOF declares 65000x65000.
	jpegBomb := bytes.Clone(orig)
	for i := 0; i+8 < len(jpegBomb); i++ {
		if jpegBomb[i] == 0xff && (jpegBomb[i+1] == 0xc0 || jpegBomb[i+1] == 0xc2) {
			binary.BigEndian.PutUint16(jpegBomb[i+5:], 65000)
			binary.BigEndian.PutUint16(jpegBomb[i+7:], 65000)
			break
		}
	}
	cases := []struct {
		name, ct string
		data     []byte
		want     int
		reason   string
	}{
		{"png bomb", "image/png", pngBomb(100000, 100000), 422, "pixels"},
		{"jpeg bomb", "image/jpeg", jpegBomb, 422, "pixels"},
		{"truncated jpeg", "image/jpeg", orig[:len(orig)/3], 422, "malformed"},
		{"garbage declared image", "image/png", bytes.Repeat([]byte{0xde, 0xad}, 500), 422, "malformed"},
		{"png header only", "", []byte("\x89PNG\r\n\x1a\n"), 422, "malformed"},
		{"too large", "application/octet-stream", make([]byte, 4<<20+1), 413, "larger"},
		{"empty", "image/png", nil, 400, "empty"},
	}
	var before runtimeMem
	before.read()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.post("alice", "news", "x", file{"f", tc.ct, tc.data})
			var eb channels.ErrorBody
			json.Unmarshal(body, &eb)
			if code != tc.want || !strings.Contains(eb.Error, tc.reason) {
				t.Fatalf("HTTP %d %s, want %d mentioning %q", code, body, tc.want, tc.reason)
			}
			if tc.want == 422 && (eb.Code != "media_refused" || eb.Media == nil) {
				t.Fatalf("body %+v", eb)
			}
		})
	}
	var after runtimeMem
	after.read()
	if grew := after.peak() - before.peak(); grew > 512<<20 {
		t.Errorf("hostile images grew the heap by %d MiB", grew>>20)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 0 {
		t.Fatalf("refused posts published: %+v", evs)
	}
}

func TestPermissions(t *testing.T) {
	e := newEnv(t)
	e.do("", "GET", "/v1/channels/news", "", http.StatusUnauthorized, nil)
	if code, _ := e.post("bob", "news", "hi"); code != http.StatusForbidden {
		t.Fatalf("non-admin post: HTTP %d", code)
	}
	e.do("bob", "PUT", "/v1/channels/news/admins/carol", "", http.StatusForbidden, nil)
	e.do("alice", "PUT", "/v1/channels/news/admins/bob", "", http.StatusNoContent, nil)
	e.mustPost("bob", "news", "hi from an admin")
	e.do("alice", "POST", "/v1/channels", `{"id":"news","title":"again"}`, http.StatusConflict, nil)
	e.do("alice", "POST", "/v1/channels", `{"id":"Bad Id!","title":"x"}`, http.StatusBadRequest, nil)
	e.do("bob", "GET", "/v1/channels/nope/events", "", http.StatusNotFound, nil)
	var cr channels.ChannelResponse
	e.do("carol", "PUT", "/v1/channels/news/follow", "", http.StatusNoContent, nil)
	e.do("carol", "GET", "/v1/channels/news", "", http.StatusOK, &cr)
	if !cr.Public || !cr.Following || cr.Channel.Followers != 1 || cr.Channel.Owner != "alice" {
		t.Fatalf("channel %+v", cr)
	}
}

// Deleting posts: the author (even after losing admin rights), the owner
// and admins may; others get 403; a deleted post and its media are gone,
// followers get a takedown, and a long-poll wakes for it. Deleting the
// channel is the owner's alone.
func TestDeletePostsAndChannel(t *testing.T) {
	e, waiting := waitingSignal(t)
	e.do("alice", "PUT", "/v1/channels/news/admins/bob", "", http.StatusNoContent, nil)
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	byBob := e.mustPost("bob", "news", "bob's post", file{"a.jpg", "image/jpeg", img})
	byAlice := e.mustPost("alice", "news", "alice's post")
	e.do("alice", "DELETE", "/v1/channels/news/admins/bob", "", http.StatusNoContent, nil)
	cursor := e.events("news", 0, 0).Cursor

	e.do("carol", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", byAlice.ID), "", http.StatusForbidden, nil)
	e.do("bob", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", byAlice.ID), "", http.StatusForbidden, nil)
	e.do("bob", "DELETE", fmt.Sprintf("/v1/channels/other/posts/%d", byBob.ID), "", http.StatusNotFound, nil)

	woken := make(chan channels.EventsResponse, 1)
	go func() { woken <- e.events("news", cursor, 10) }()
	untilWaiting(t, waiting) // the deletion must wake it, not be found at once
	e.do("bob", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", byBob.ID), "", http.StatusNoContent, nil)
	select {
	case r := <-woken:
		if len(r.Events) != 1 || r.Events[0].Kind != channels.EventTakedown || r.Events[0].PostID != byBob.ID || r.Events[0].Reason != "deleted by bob" {
			t.Fatalf("long-poll got %+v", r.Events)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long-poll did not wake for the deletion")
	}
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", byBob.ID), "", http.StatusNotFound, nil)
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", byBob.ID), "", http.StatusNotFound, nil)
	e.do("bob", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", byBob.ID), "", http.StatusNotFound, nil)
	e.do("alice", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", byAlice.ID), "", http.StatusNoContent, nil)

	e.do("bob", "DELETE", "/v1/channels/news", "", http.StatusForbidden, nil)
	e.do("alice", "DELETE", "/v1/channels/news", "", http.StatusNoContent, nil)
	e.do("bob", "GET", "/v1/channels/news", "", http.StatusNotFound, nil)
	e.do("alice", "DELETE", "/v1/channels/news", "", http.StatusNotFound, nil)
	e.do("carol", "POST", "/v1/channels", `{"id":"news","title":"News"}`, http.StatusConflict, nil)
}

func FuzzAnalyse(f *testing.F) {
	f.Add([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "image/jpeg")
	f.Add(pngBomb(70000, 70000), "")
	f.Add(pngBomb(8, 8), "image/png")
	f.Add([]byte("P6\n3 2\n255\n\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11"), "")
	f.Add([]byte("GIF89a\x01\x00\x01\x00"), "image/gif")
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "")
	f.Add([]byte("plain text"), "text/plain")
	ctx := context.Background()
	dir := f.TempDir()
	ms, err := modsqlite.Open(ctx, filepath.Join(dir, "m.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer ms.Close()
	cs, err := chansqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer cs.Close()
	mod, err := moderation.New(ctx, moderation.Config{Store: ms, Registerer: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	svc, err := channels.New(channels.Config{Store: cs, Moderation: mod, Auth: fakeAuth, AccountExists: accountExists, MaxMediaBytes: 1 << 20, MaxPixels: 4 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, declared string) {
		m, err := svc.Analyse(data, declared)
		if err != nil {
			if !errors.Is(err, channels.ErrMediaRefused) {
				t.Fatalf("error %v does not wrap ErrMediaRefused", err)
			}
			return
		}
		if m.Size != int64(len(data)) {
			t.Fatalf("size %d for %d bytes", m.Size, len(data))
		}
		if m.PDQ != nil && !strings.HasPrefix(m.ContentType, "image/") {
			t.Fatalf("PDQ hash for content type %q", m.ContentType)
		}
		mod.Match(moderation.Media{PDQ: m.PDQ})
	})
}

func TestReviewListUpdateHoldsPublishedPost(t *testing.T) {
	e := newEnv(t)
	data := []byte("a clip that a review list gains later")
	p := e.mustPost("alice", "news", "clip", file{"c.mp4", "video/mp4", data})
	a, _ := e.svc.Analyse(data, "video/mp4")
	ent, _ := hashlist.NewEntry(hashlist.MD5, fmt.Sprintf("%x", a.MD5), nil)
	e.importBank("maybe", hashlist.Review, ent)
	evs := e.events("news", 0, 0)
	if len(evs.Events) != 2 || evs.Events[1].Kind != channels.EventTakedown || !strings.Contains(evs.Events[1].Reason, "held for review") {
		t.Fatalf("events %+v", evs)
	}
	got, _ := e.cstore.Post(e.ctx, p.ID)
	if got.Status != channels.Held {
		t.Fatalf("status %q, want held", got.Status)
	}
	ds, _ := e.mstore.Decisions(e.ctx, fmt.Sprintf("post:%d", p.ID), 0)
	if len(ds) != 1 || ds[0].Kind != moderation.DecisionHold || ds[0].Type != hashlist.MD5 {
		t.Fatalf("decisions %+v", ds)
	}
}

// Uploads racing with list updates: once the list is in force, no
// published post may match it, whatever the interleaving.
func TestUploadsRacingListUpdates(t *testing.T) {
	e := newEnv(t)
	data := []byte("listed bytes")
	a, _ := e.svc.Analyse(data, "")
	ent, _ := hashlist.NewEntry(hashlist.SHA256, fmt.Sprintf("%x", a.SHA256), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 40 {
			m, _ := e.svc.Analyse(data, "")
			_, err := e.svc.Publish(e.ctx, channels.Post{Channel: "news", Author: "alice", Text: fmt.Sprint(i), Media: []channels.Media{m}}, [][]byte{data}, time.Now())
			if err != nil && !errors.Is(err, channels.ErrBlocked) {
				t.Error(err)
				return
			}
		}
	}()
	for range 10 {
		e.importBank("gifct", hashlist.Block, ent)
		e.importBank("gifct", hashlist.Block)
	}
	e.importBank("gifct", hashlist.Block, ent)
	<-done
	if err := e.mod.Refresh(e.ctx); err != nil {
		t.Fatal(err)
	}
	published, err := e.cstore.Posts(e.ctx, 0, 1000, channels.Published)
	if err != nil {
		t.Fatal(err)
	}
	if len(published) != 0 {
		t.Fatalf("%d posts matching an active block list are still published", len(published))
	}
}

// Each user's posts, other changes and reads are rate limited apart; a
// request over a limit gets 429 with Retry-After and changes nothing.
func TestRateLimits(t *testing.T) {
	e := newEnvWith(t, func(c *channels.Config) {
		c.PostLimit = channels.Limit{N: 2, Per: time.Hour}
		c.WriteLimit = channels.Limit{N: 2, Per: time.Hour} // newEnv's channel creation is one
	})
	for i := range 2 {
		if code, body := e.post("alice", "news", fmt.Sprint("post ", i)); code != http.StatusCreated {
			t.Fatalf("post %d: HTTP %d: %s", i, code, body)
		}
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/channels/news/posts", strings.NewReader("text=over"))
	req.Header.Set("X-Test-User", "alice")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb channels.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || eb.Code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third post: HTTP %d %+v Retry-After %q; want 429 rate_limited with Retry-After", resp.StatusCode, eb, resp.Header.Get("Retry-After"))
	}
	var evs channels.EventsResponse
	e.do("alice", "GET", "/v1/channels/news/events", "", http.StatusOK, &evs)
	if len(evs.Events) != 2 {
		t.Fatalf("%d events after a refused post, want 2", len(evs.Events))
	}
	// Changes have their own count: one left for alice after creating news.
	e.do("alice", "PUT", "/v1/channels/news/admins/bob", "", http.StatusNoContent, nil)
	e.do("alice", "DELETE", "/v1/channels/news/admins/bob", "", http.StatusTooManyRequests, nil)
	// Another user is not affected.
	e.do("bob", "PUT", "/v1/channels/news/follow", "", http.StatusNoContent, nil)
}

// Two services ("nodes") counting through one shared store
// (Config.Shared; parleyd passes the delivery store) hold a user's limits
// across both: a post limit of 4 (under sharedlimit.LeaseDivisor, so
// counted exactly) lets alice post 4 times alternating between them, not
// 4 on each; bob is untouched. Without Shared each node counts alone and
// the test fails at the fifth post. (TestTwoNodesChannelLimits in
// cmd/parleyd does the same on two parleyd nodes on one PostgreSQL.)
func TestRateLimitsSharedAcrossNodes(t *testing.T) {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tune := func(c *channels.Config) {
		c.Shared = st
		c.PostLimit = channels.Limit{N: 4, Per: time.Hour}
	}
	nodes := []*env{newEnvWith(t, tune), newEnvWith(t, tune)}
	for i := range 4 {
		if code, body := nodes[i%2].post("alice", "news", fmt.Sprint("post ", i)); code != http.StatusCreated {
			t.Fatalf("post %d on node %d: HTTP %d: %s", i, i%2, code, body)
		}
	}
	for i, e := range nodes {
		if code, body := e.post("alice", "news", "over the limit"); code != http.StatusTooManyRequests {
			t.Fatalf("a fifth post on node %d: HTTP %d: %s; want 429 (each node counted alone)", i, code, body)
		}
	}
	nodes[1].do("alice", "PUT", "/v1/channels/news/admins/bob", "", http.StatusNoContent, nil)
	if code, body := nodes[1].post("bob", "news", "bob's own count"); code != http.StatusCreated {
		t.Fatalf("bob's post: HTTP %d: %s", code, body)
	}
}

// An upload right after a list change made by another process (as
// "parleyd admin lists import" is) is checked against it, with no poll in
// between: a listed image is refused and nothing is ever published; a
// review list that becomes a block list, with the same entries, refuses
// the next upload too.
func TestUploadRightAfterImportElsewhere(t *testing.T) {
	e := newEnv(t)
	orig, img := readImage(t, "bridge-mods", "aaa-orig.jpg")
	reencoded := encodeJPEG(t, img, 20) // matched through the PDQ index, not by digest
	e.importElsewhere("gifct", hashlist.Block, pdqEntry(t, orig))
	code, body := e.post("alice", "news", "right after the import", file{"a.jpg", "image/jpeg", reencoded})
	var eb channels.ErrorBody
	json.Unmarshal(body, &eb)
	if code != http.StatusUnavailableForLegalReasons || eb.Code != "blocked" || eb.List != "gifct" {
		t.Fatalf("upload right after the import: HTTP %d: %s", code, body)
	}
	all, err := e.cstore.Posts(e.ctx, 0, 100, channels.Published, channels.Held, channels.Removed, channels.Deleted)
	if err != nil || len(all) != 0 {
		t.Fatalf("posts stored: %+v, %v", all, err)
	}
	if evs := e.events("news", 0, 0); len(evs.Events) != 0 {
		t.Fatalf("feed after a refused upload: %+v", evs.Events)
	}

	other, _ := readImage(t, "reg-test-input", "pen-and-coaster.png")
	e.importElsewhere("tcap", hashlist.Review, pdqEntry(t, other))
	if code, body := e.post("alice", "news", "review", file{"b.png", "image/png", other}); code != http.StatusAccepted {
		t.Fatalf("upload matching a review list: HTTP %d: %s", code, body)
	}
	e.importElsewhere("tcap", hashlist.Block, pdqEntry(t, other))
	if code, body := e.post("alice", "news", "block", file{"b.png", "image/png", other}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("upload right after the list became a block list: HTTP %d: %s", code, body)
	}
	if pub, _ := e.cstore.Posts(e.ctx, 0, 100, channels.Published); len(pub) != 0 {
		t.Fatalf("published: %+v", pub)
	}
}

// A published post that a list imported by another process matches is not
// served from the moment the import returns: not the post, not its media,
// not in the feed. The read takes it down instead of waiting for the poll.
func TestPostListedElsewhereIsNeverServedAgain(t *testing.T) {
	e := newEnv(t)
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	p := e.mustPost("alice", "news", "before the list", file{"a.jpg", "image/jpeg", orig})
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", p.ID), "", http.StatusOK, nil)

	e.importElsewhere("gifct", hashlist.Block, pdqEntry(t, orig))
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", p.ID), "", http.StatusNotFound, nil)
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d", p.ID), "", http.StatusNotFound, nil)
	for _, ev := range e.events("news", 0, 0).Events {
		if ev.Post != nil {
			t.Fatalf("the feed still carries the listed post: %+v", ev)
		}
	}
	got, err := e.cstore.Post(e.ctx, p.ID)
	if err != nil || got.Status != channels.Removed || !strings.Contains(got.Reason, "gifct") {
		t.Fatalf("post after the import: %+v, %v", got, err)
	}
}

// The feed is checked too: the first read after the import, a feed read,
// already leaves the post out.
func TestFeedRightAfterImportElsewhere(t *testing.T) {
	e := newEnv(t)
	orig, _ := readImage(t, "bridge-mods", "aaa-orig.jpg")
	e.mustPost("alice", "news", "before the list", file{"a.jpg", "image/jpeg", orig})
	e.importElsewhere("gifct", hashlist.Block, pdqEntry(t, orig))
	evs := e.events("news", 0, 0).Events
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	for _, ev := range evs {
		if ev.Post != nil {
			t.Fatalf("the feed carries the listed post: %+v", ev)
		}
	}
}

// Channel admins are usernames of existing accounts, taken exactly as
// registration takes them: the owner gets 400 for a name that is not a
// username (with a hint for upper case) and 404 for an account that does
// not exist, and nothing is stored; names stored before these checks can
// still be removed.
func TestChannelAdminsMustBeExistingUsers(t *testing.T) {
	e := newEnv(t)
	admins := func() []string {
		t.Helper()
		var cr channels.ChannelResponse
		e.do("alice", "GET", "/v1/channels/news", "", http.StatusOK, &cr)
		return cr.Channel.Admins
	}
	var eb channels.ErrorBody
	json.Unmarshal(e.do("alice", "PUT", "/v1/channels/news/admins/BOB", "", http.StatusBadRequest, nil), &eb)
	if eb.Code != "invalid" || !strings.Contains(eb.Error, `did you mean "bob"`) {
		t.Fatalf("upper-case name: %+v", eb)
	}
	for _, name := range []string{"..%2F..%2Fadmin", "%2E%2E", "b", "bob%20", "b%C3%B6b", "-bob"} {
		json.Unmarshal(e.do("alice", "PUT", "/v1/channels/news/admins/"+name, "", http.StatusBadRequest, nil), &eb)
		if eb.Code != "invalid" || !strings.Contains(eb.Error, "username must be") {
			t.Fatalf("name %s: %+v", name, eb)
		}
	}
	json.Unmarshal(e.do("alice", "PUT", "/v1/channels/news/admins/zed", "", http.StatusNotFound, nil), &eb)
	if eb.Code != "unknown_user" || !strings.Contains(eb.Error, `no account "zed"`) {
		t.Fatalf("unknown account: %+v", eb)
	}
	if a := admins(); len(a) != 0 {
		t.Fatalf("refused names were stored: %q", a)
	}
	e.do("alice", "PUT", "/v1/channels/news/admins/bob", "", http.StatusNoContent, nil)
	if a := admins(); !slices.Equal(a, []string{"bob"}) {
		t.Fatalf("admins %q, want [bob]", a)
	}

	// A name stored before the checks existed can be removed; a bad name
	// that is not an admin is still refused.
	if err := e.cstore.SetAdmin(e.ctx, "news", "../../admin", true); err != nil {
		t.Fatal(err)
	}
	e.do("alice", "DELETE", "/v1/channels/news/admins/..%2F..%2Fadmin", "", http.StatusNoContent, nil)
	e.do("alice", "DELETE", "/v1/channels/news/admins/ALICE", "", http.StatusBadRequest, nil)
	e.do("alice", "DELETE", "/v1/channels/news/admins/zed", "", http.StatusNoContent, nil)
	if a := admins(); !slices.Equal(a, []string{"bob"}) {
		t.Fatalf("admins %q, want [bob]", a)
	}
}
