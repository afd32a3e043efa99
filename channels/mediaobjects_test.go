package channels_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/channels/channelapi"
	"github.com/parleychat/parley/hashing/hashlist"
)

// memObjects is a channels.MediaObjects in memory that counts what it
// is asked and can be made to fail removals.
type memObjects struct {
	mu         sync.Mutex
	objects    map[string]memObject
	puts       int
	failRemove bool
	stuck      map[string]bool // objects RemoveMedia never removes
	failPut    bool
	onPut      func() // called before each put, unlocked
	onOpen     func() // called before each open, unlocked
}

type memObject struct {
	data []byte
	put  time.Time
}

func newMemObjects() *memObjects { return &memObjects{objects: map[string]memObject{}} }

func (m *memObjects) PutMedia(_ context.Context, data []byte) (string, error) {
	if m.onPut != nil {
		m.onPut()
	}
	var raw [16]byte
	rand.Read(raw[:])
	name := hex.EncodeToString(raw[:])
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut && m.puts > 0 {
		return "", errors.New("object store unavailable")
	}
	m.puts++
	m.objects[name] = memObject{bytes.Clone(data), time.Now()}
	return name, nil
}

func (m *memObjects) OpenMedia(_ context.Context, name string) (io.ReadCloser, int64, error) {
	if m.onOpen != nil {
		m.onOpen()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[name]
	if !ok {
		return nil, 0, fmt.Errorf("object %s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(o.data)), int64(len(o.data)), nil
}

func (m *memObjects) RemoveMedia(_ context.Context, names []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failRemove {
		return errors.New("object store unavailable")
	}
	var err error
	for _, n := range names {
		if m.stuck[n] {
			err = fmt.Errorf("object %s: access denied", n) // as S3's multi-object delete reports one key
			continue
		}
		delete(m.objects, n)
	}
	return err
}

func (m *memObjects) SweepMedia(_ context.Context, olderThan time.Time, inUse func(string) (bool, error)) (int, error) {
	m.mu.Lock()
	var old []string
	for n, o := range m.objects {
		if o.put.Before(olderThan) {
			old = append(old, n)
		}
	}
	m.mu.Unlock()
	removed := 0
	for _, n := range old {
		used, err := inUse(n)
		if err != nil {
			return removed, err
		}
		if !used {
			m.mu.Lock()
			delete(m.objects, n)
			m.mu.Unlock()
			removed++
		}
	}
	return removed, nil
}

func (m *memObjects) names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.objects {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (m *memObjects) state() (puts int, objects int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts, len(m.objects)
}

// With MediaObjects, a post's files are objects there and the channels
// database holds their hashes only; they are served from there, with the
// digest taken at upload. Deleting a post or a channel removes its
// objects at once, not at the next sweep.
func TestMediaInObjectStore(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects, c.MediaSweep = objs, time.Hour })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	other, _ := readImage(t, "reg-test-input", "pen-and-coaster.png")
	p := e.mustPost("alice", "news", "two pictures", file{"a.jpg", "image/jpeg", img}, file{"b.png", "image/png", other})
	if puts, n := objs.state(); puts != 2 || n != 2 {
		t.Fatalf("%d puts, %d objects, want 2 and 2", puts, n)
	}
	stored, err := e.cstore.Post(e.ctx, p.ID)
	if err != nil || stored.Media[0].Object == "" || stored.Media[0].Size != int64(len(img)) {
		t.Fatalf("stored media: %+v, %v", stored.Media, err)
	}
	if b, _, err := e.cstore.MediaData(e.ctx, p.ID, 0); err != nil || len(b) != 0 {
		t.Fatalf("the channels database holds %d bytes of the file (%v)", len(b), err)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+fmt.Sprintf("/v1/channels/news/posts/%d/media/1", p.ID), nil)
	req.Header.Set("X-Test-User", "bob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(other)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, other) ||
		resp.Header.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":" {
		t.Fatalf("GET media: HTTP %d, %d bytes, digest %q", resp.StatusCode, len(got), resp.Header.Get("Repr-Digest"))
	}

	e.do("alice", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", p.ID), "", http.StatusNoContent, nil)
	if _, n := objs.state(); n != 0 {
		t.Fatalf("%d objects left right after the post was deleted", n)
	}
	if d, _ := e.cstore.DroppedObjects(e.ctx, 0); len(d) != 0 {
		t.Fatalf("dropped objects not forgotten: %v", d)
	}
	e.mustPost("alice", "news", "again", file{"a.jpg", "image/jpeg", img})
	e.mustPost("alice", "news", "text only")
	if puts, n := objs.state(); puts != 3 || n != 1 {
		t.Fatalf("%d puts, %d objects, want 3 and 1 (a post without files puts none)", puts, n)
	}
	e.do("alice", "DELETE", "/v1/channels/news", "", http.StatusNoContent, nil)
	if _, n := objs.state(); n != 0 {
		t.Fatalf("%d objects left right after the channel was deleted", n)
	}
}

// A file a hash list blocks never reaches the object store, even for a
// moment; one a list blocks only while its bytes are being put (a list
// imported by another process in between) is refused and its objects
// removed.
func TestBlockedMediaNeverKeptInObjectStore(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects = objs })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	e.importBank("gifct", hashlist.Block, pdqEntry(t, img))
	if code, body := e.post("alice", "news", "blocked", file{"a.jpg", "image/jpeg", img}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("blocked upload: HTTP %d: %s", code, body)
	}
	if puts, _ := objs.state(); puts != 0 {
		t.Fatalf("a blocked file was put in the object store %d times", puts)
	}

	other, _ := readImage(t, "reg-test-input", "pen-and-coaster.png")
	var once sync.Once
	objs.onPut = func() { once.Do(func() { e.importElsewhere("tcap", hashlist.Block, pdqEntry(t, other)) }) }
	if code, body := e.post("alice", "news", "listed meanwhile", file{"b.png", "image/png", other}); code != http.StatusUnavailableForLegalReasons {
		t.Fatalf("upload listed while its bytes were put: HTTP %d: %s", code, body)
	}
	if puts, n := objs.state(); puts != 1 || n != 0 {
		t.Fatalf("%d puts, %d objects left, want 1 put and none left", puts, n)
	}
	if all, _ := e.cstore.Posts(e.ctx, 0, 100, channels.Published, channels.Held); len(all) != 0 {
		t.Fatalf("stored: %+v", all)
	}
}

// Objects the node could not remove when their post was erased (the
// object store away) are removed by the sweep once it is back; objects
// no post names (a node that died between putting a post's files and
// committing the post) are removed by the orphan sweep once old enough,
// and objects in use are kept.
func TestMediaSweeps(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) {
		c.MediaObjects, c.MediaSweep, c.MediaOrphanSweep = objs, 20*time.Millisecond, 20*time.Millisecond
	})
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	kept := e.mustPost("alice", "news", "kept", file{"a.jpg", "image/jpeg", img})
	gone := e.mustPost("alice", "news", "deleted", file{"a.jpg", "image/jpeg", img})
	keptObjs := objs.names()
	objs.mu.Lock()
	objs.failRemove = true
	// An orphan from two hours ago, a fresh one (an upload in progress),
	// and the kept post's object made old: only the first may go.
	objs.objects["0123456789abcdef0123456789abcdef"] = memObject{[]byte("orphan"), time.Now().Add(-2 * time.Hour)}
	objs.objects["fedcba9876543210fedcba9876543210"] = memObject{[]byte("in progress"), time.Now()}
	for n, o := range objs.objects {
		if o.put.After(time.Now().Add(-time.Minute)) && n != "fedcba9876543210fedcba9876543210" {
			o.put = time.Now().Add(-3 * time.Hour)
			objs.objects[n] = o
		}
	}
	objs.mu.Unlock()
	e.do("alice", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", gone.ID), "", http.StatusNoContent, nil)
	if d, _ := e.cstore.DroppedObjects(e.ctx, 0); len(d) != 1 {
		t.Fatalf("dropped objects while the store is away: %v", d)
	}
	objs.mu.Lock()
	objs.failRemove = false
	objs.mu.Unlock()
	stored, _ := e.cstore.Post(e.ctx, kept.ID)
	want := []string{stored.Media[0].Object, "fedcba9876543210fedcba9876543210"}
	slices.Sort(want)
	// The sweep removes the objects, then forgets them: wait for both.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := e.cstore.DroppedObjects(e.ctx, 0)
		if slices.Equal(objs.names(), want) && len(d) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("objects %v, want %v (before: %v); dropped objects not forgotten: %v", objs.names(), want, keptObjs, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A post deleted while its file is being fetched is answered as a
// later request would be (404), not as storage trouble (503).
func TestMediaDeletedWhileFetched(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects = objs })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	p := e.mustPost("alice", "news", "soon gone", file{"a.jpg", "image/jpeg", img})
	var once sync.Once
	objs.onOpen = func() {
		once.Do(func() {
			e.do("alice", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", p.ID), "", http.StatusNoContent, nil)
		})
	}
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", p.ID), "", http.StatusNotFound, nil)
}

// urlObjects is memObjects handing out pre-signed URLs (MediaURLs).
type urlObjects struct{ *memObjects }

func (u urlObjects) MediaURL(_ context.Context, object, _ string, _ bool) (string, bool, error) {
	return "https://bucket.example/" + object + "?X-Amz-Signature=test", true, nil
}

// The redirect to a pre-signed URL is handed out after the same checks
// as the file itself: for a published post only. A post taken down (by
// a moderator, or a list a rescan applied) gets 404, not a URL.
func TestMediaRedirectOnlyForPublished(t *testing.T) {
	objs := urlObjects{newMemObjects()}
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects = objs })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	p := e.mustPost("alice", "news", "a picture", file{"a.jpg", "image/jpeg", img})
	path := fmt.Sprintf("%s/v1/channels/news/posts/%d/media/0", e.srv.URL, p.ID)
	ask := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", path, nil)
		req.Header.Set("X-Test-User", "bob")
		req.Header.Set(channelapi.FollowRedirectHeader, "1")
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := ask(); resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://bucket.example/") {
		t.Fatalf("published: HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, _, err := e.cstore.SetStatus(e.ctx, p.ID, channels.Removed, "taken down"); err != nil {
		t.Fatal(err)
	}
	if resp := ask(); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
		t.Fatalf("taken down: HTTP %d, Location %q, want 404 and no URL", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// One object the store will not remove does not hold back the others:
// the posts' objects are erased and forgotten, the stuck one stays
// listed for the next sweep.
func TestStuckObjectDoesNotBlockErasure(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects, c.MediaSweep = objs, time.Hour })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	var posts []channels.PostView
	for i := 0; i < 3; i++ {
		posts = append(posts, e.mustPost("alice", "news", fmt.Sprint("post ", i), file{"a.jpg", "image/jpeg", img}))
	}
	names := map[int64]string{}
	for _, p := range posts {
		stored, _ := e.cstore.Post(e.ctx, p.ID)
		names[p.ID] = stored.Media[0].Object
	}
	objs.mu.Lock()
	objs.stuck = map[string]bool{names[posts[1].ID]: true}
	objs.mu.Unlock()
	objs.mu.Lock()
	objs.failRemove = true // the deletions below find the store away
	objs.mu.Unlock()
	for _, p := range posts {
		e.do("alice", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", p.ID), "", http.StatusNoContent, nil)
	}
	objs.mu.Lock()
	objs.failRemove = false
	objs.mu.Unlock()
	// The next erasure removes what it can.
	extra := e.mustPost("alice", "news", "one more", file{"a.jpg", "image/jpeg", img})
	e.do("alice", "DELETE", fmt.Sprintf("/v1/channels/news/posts/%d", extra.ID), "", http.StatusNoContent, nil)
	if d, _ := e.cstore.DroppedObjects(e.ctx, 0); !slices.Equal(d, []string{names[posts[1].ID]}) {
		t.Fatalf("dropped objects left: %v, want only the stuck %s", d, names[posts[1].ID])
	}
	if got := objs.names(); !slices.Equal(got, []string{names[posts[1].ID]}) {
		t.Fatalf("objects left: %v, want only the stuck one", got)
	}
}

// A post whose files are in an object store, served by a node started
// without one, answers 503 with what is wrong, not a file of no bytes.
func TestObjectMediaWithoutObjectStore(t *testing.T) {
	e := newEnv(t)
	m := channels.Media{ContentType: "image/png", Object: "0123456789abcdef0123456789abcdef", Size: 10}
	p, err := e.cstore.AddPost(e.ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Published, Media: []channels.Media{m}}, [][]byte{nil})
	if err != nil {
		t.Fatal(err)
	}
	e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", p.ID), "", http.StatusServiceUnavailable, nil)
}

// The object store failing while a post's files are put (the second of
// two here): the client is told to retry later (503, Retry-After), no
// post is stored, and the first file's object is removed.
func TestMediaObjectStoreFails(t *testing.T) {
	objs := newMemObjects()
	objs.failPut = true
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects = objs })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	other, _ := readImage(t, "reg-test-input", "pen-and-coaster.png")
	code, body := e.post("alice", "news", "two pictures", file{"a.jpg", "image/jpeg", img}, file{"b.png", "image/png", other})
	var eb channels.ErrorBody
	json.Unmarshal(body, &eb)
	if code != http.StatusServiceUnavailable || eb.Code != "unavailable" {
		t.Fatalf("post while the object store fails: HTTP %d: %s", code, body)
	}
	if _, n := objs.state(); n != 0 {
		t.Fatalf("%d objects left of a post that was not stored", n)
	}
	if all, _ := e.cstore.Posts(e.ctx, 0, 100, channels.Published, channels.Held); len(all) != 0 {
		t.Fatalf("stored: %+v", all)
	}
	// The metrics count the one object put and the one put that failed.
	if st := e.svc.MediaStats(); st.Put != 1 || st.Failed != 1 {
		t.Fatalf("MediaStats %+v, want 1 put and 1 failure", st)
	}
}

// Account deletion erases the account's posts in other channels and its
// own channels: their objects go at once too.
func TestMediaObjectsGoWithTheAccount(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects, c.MediaSweep = objs, time.Hour })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	e.do("bob", "POST", "/v1/channels", `{"id":"bobs","title":"Bob's"}`, http.StatusCreated, nil)
	e.do("bob", "PUT", "/v1/channels/bobs/admins/alice", "", http.StatusNoContent, nil)
	e.mustPost("alice", "news", "in her channel", file{"a.jpg", "image/jpeg", img})
	e.mustPost("alice", "bobs", "in bob's", file{"a.jpg", "image/jpeg", img})
	kept := e.mustPost("bob", "bobs", "bob's own", file{"a.jpg", "image/jpeg", img})
	if err := e.svc.ForgetUser(e.ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	stored, err := e.cstore.Post(e.ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	if names := objs.names(); len(names) != 1 || names[0] != stored.Media[0].Object {
		t.Fatalf("objects right after alice's account was deleted: %v, want bob's %s alone", names, stored.Media[0].Object)
	}
}

// A file moved to the object store ("parleyd admin channel-media move")
// between a media request's reading the post and its reading the bytes
// is served whole from its object, not as the empty bytes left in the
// store.
func TestMediaMovedWhileRead(t *testing.T) {
	objs := newMemObjects()
	e := newEnvWith(t, func(c *channels.Config) { c.MediaObjects = objs })
	img, _ := readImage(t, "python-threatexchange", "rgb.jpeg")
	m, err := e.svc.Analyse(img, "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.cstore.AddPost(e.ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Published, Media: []channels.Media{m}}, [][]byte{img})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.OnMediaRead(func() {
		o, err := objs.PutMedia(e.ctx, img)
		if err != nil {
			t.Error(err)
			return
		}
		if moved, err := e.cstore.MoveMediaToObject(e.ctx, p.ID, 0, o); err != nil || !moved {
			t.Errorf("move: %v %v", moved, err)
		}
	})
	got := e.do("bob", "GET", fmt.Sprintf("/v1/channels/news/posts/%d/media/0", p.ID), "", http.StatusOK, nil)
	if !bytes.Equal(got, img) {
		t.Fatalf("served %d bytes, want the %d of the file", len(got), len(img))
	}
}
