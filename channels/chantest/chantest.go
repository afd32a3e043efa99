// Package chantest is the contract suite every channels.Store backend must
// pass. A backend's test calls Run with a constructor for a fresh, empty
// store:
//
//	func TestContract(t *testing.T) {
//		chantest.Run(t, func(t *testing.T) channels.Store { ... })
//	}
package chantest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleychat/parley/channels"
	"github.com/parleychat/parley/hashing/pdq"
	"github.com/parleychat/parley/hashing/video"
)

// Run runs the contract suite; it closes each store at the end of its
// subtest.
func Run(t *testing.T, newStore func(t *testing.T) channels.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s channels.Store)
	}{
		{"Channels", testChannels},
		{"Members", testMembers},
		{"PostsAndMedia", testPostsAndMedia},
		{"StatusEvents", testStatusEvents},
		{"EventsPerChannel", testEventsPerChannel},
		{"PostsByStatus", testPostsByStatus},
		{"RescanCheckpoint", testRescanCheckpoint},
		{"DeletePost", testDeletePost},
		{"DeleteChannel", testDeleteChannel},
		{"ForgetUser", testForgetUser},
		{"VideoHashes", testVideoHashes},
		{"MediaObjects", testMediaObjects},
		{"PostsBy", testPostsBy},
		{"MoveMedia", testMoveMedia},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func mustChannel(t *testing.T, s channels.Store, id, owner string) {
	t.Helper()
	if err := s.CreateChannel(context.Background(), channels.Channel{ID: id, Title: "T " + id, Owner: owner}); err != nil {
		t.Fatal(err)
	}
}

func testChannels(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	if err := s.CreateChannel(ctx, channels.Channel{ID: "news", Owner: "bob"}); !errors.Is(err, channels.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, bad := range []channels.Channel{{ID: "Bad!", Owner: "a"}, {ID: "x", Owner: "a"}, {ID: "ok-id", Owner: ""}} {
		if err := s.CreateChannel(ctx, bad); !errors.Is(err, channels.ErrInvalid) {
			t.Errorf("CreateChannel(%+v): %v", bad, err)
		}
	}
	c, err := s.Channel(ctx, "news")
	if err != nil || c.Owner != "alice" || c.Title != "T news" || c.Created.IsZero() {
		t.Fatalf("Channel = %+v, %v", c, err)
	}
	if _, err := s.Channel(ctx, "nope"); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("missing channel: %v", err)
	}
}

func testMembers(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	mustChannel(t, s, "sport", "alice")
	s.SetAdmin(ctx, "news", "bob", true)
	s.SetAdmin(ctx, "news", "bob", true)
	s.SetAdmin(ctx, "news", "carol", true)
	s.SetAdmin(ctx, "news", "carol", false)
	c, _ := s.Channel(ctx, "news")
	if !slices.Equal(c.Admins, []string{"bob"}) || !c.CanPost("bob") || !c.CanPost("alice") || c.CanPost("carol") {
		t.Fatalf("admins %v", c.Admins)
	}
	for _, u := range []string{"x", "y", "x"} {
		if err := s.SetFollow(ctx, "news", u, true); err != nil {
			t.Fatal(err)
		}
	}
	s.SetFollow(ctx, "sport", "x", true)
	s.SetFollow(ctx, "news", "y", false)
	if c, _ = s.Channel(ctx, "news"); c.Followers != 1 {
		t.Fatalf("followers %d", c.Followers)
	}
	if f, _ := s.Following(ctx, "x"); !slices.Equal(f, []string{"news", "sport"}) {
		t.Fatalf("following %v", f)
	}
	if o, err := s.Owned(ctx, "alice"); err != nil || !slices.Equal(o, []string{"news", "sport"}) {
		t.Fatalf("owned by alice: %v, %v", o, err)
	}
	if o, _ := s.Owned(ctx, "x"); len(o) != 0 {
		t.Fatalf("owned by a follower: %v", o)
	}
	if err := s.SetFollow(ctx, "nope", "x", true); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("follow missing channel: %v", err)
	}
}

func media(n int, withPDQ bool) channels.Media {
	m := channels.Media{ContentType: "image/png"}
	m.MD5[0], m.SHA256[0] = byte(n), byte(n)
	if withPDQ {
		d := &pdq.Dihedral{Quality: 77}
		for i := range d.Hashes {
			d.Hashes[i][0] = byte(n + i)
		}
		m.PDQ = d
	}
	return m
}

func testPostsAndMedia(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	data := [][]byte{[]byte("png bytes"), bytes.Repeat([]byte{1}, 1000)}
	p, err := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Text: "héllo", Status: channels.Published,
		Media: []channels.Media{media(1, true), media(2, false)}}, data)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID <= 0 || p.Created.IsZero() || p.Media[1].Index != 1 || p.Media[1].Size != 1000 {
		t.Fatalf("AddPost = %+v", p)
	}
	got, err := s.Post(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "héllo" || got.Status != channels.Published || len(got.Media) != 2 ||
		got.Media[0].PDQ == nil || got.Media[0].PDQ.Quality != 77 || got.Media[0].PDQ.Hashes[3][0] != 4 ||
		got.Media[1].PDQ != nil || got.Media[1].MD5[0] != 2 || got.Media[1].SHA256[0] != 2 {
		t.Fatalf("Post = %+v", got)
	}
	b, _, err := s.MediaData(ctx, p.ID, 1)
	if err != nil || !bytes.Equal(b, data[1]) {
		t.Fatalf("MediaData = %d bytes, %v", len(b), err)
	}
	if _, _, err := s.MediaData(ctx, p.ID, 2); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("missing media: %v", err)
	}
	if _, err := s.Post(ctx, p.ID+100); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("missing post: %v", err)
	}
	if _, err := s.AddPost(ctx, channels.Post{Channel: "news", Status: channels.Published, Media: []channels.Media{media(1, false)}}, nil); !errors.Is(err, channels.ErrInvalid) {
		t.Fatalf("media without data: %v", err)
	}
	if _, err := s.AddPost(ctx, channels.Post{Channel: "nope", Status: channels.Published}, nil); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("post to missing channel: %v", err)
	}
	evs, _ := s.Events(ctx, "news", 0, 0)
	if len(evs) != 1 {
		t.Fatalf("failed AddPosts left events: %+v", evs)
	}
}

func testStatusEvents(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	held, _ := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Held, Reason: "r"}, nil)
	pub, _ := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Published}, nil)
	evs, _ := s.Events(ctx, "news", 0, 0)
	if len(evs) != 1 || evs[0].PostID != pub.ID || evs[0].Kind != channels.EventPost {
		t.Fatalf("held post has an event: %+v", evs)
	}
	cursor := evs[0].Seq
	steps := []struct {
		id     int64
		status channels.Status
		change bool
		event  string
	}{
		{held.ID, channels.Published, true, channels.EventPost},
		{held.ID, channels.Published, false, ""},
		{pub.ID, channels.Removed, true, channels.EventTakedown},
		{held.ID, channels.Held, true, channels.EventTakedown},
		{held.ID, channels.Removed, true, ""}, // held → removed: was not visible
	}
	for i, st := range steps {
		p, changed, err := s.SetStatus(ctx, st.id, st.status, fmt.Sprintf("reason %d", i))
		if err != nil || changed != st.change || p.Status != st.status {
			t.Fatalf("step %d: %+v changed=%v err=%v", i, p, changed, err)
		}
		evs, _ := s.Events(ctx, "news", cursor, 0)
		switch {
		case st.event == "" && len(evs) != 0:
			t.Fatalf("step %d: unexpected events %+v", i, evs)
		case st.event != "" && (len(evs) != 1 || evs[0].Kind != st.event || evs[0].PostID != st.id):
			t.Fatalf("step %d: events %+v, want one %s", i, evs, st.event)
		case st.event == channels.EventTakedown && evs[0].Reason != fmt.Sprintf("reason %d", i):
			t.Fatalf("step %d: takedown reason %q", i, evs[0].Reason)
		}
		if len(evs) > 0 {
			cursor = evs[0].Seq
		}
	}
	if _, _, err := s.SetStatus(ctx, 999, channels.Removed, ""); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("missing post: %v", err)
	}
	if _, _, err := s.SetStatus(ctx, pub.ID, "deleted", ""); !errors.Is(err, channels.ErrInvalid) {
		t.Fatalf("bad status: %v", err)
	}
}

func testEventsPerChannel(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "a1", "alice")
	mustChannel(t, s, "b1", "bob")
	for i := range 6 {
		ch := []string{"a1", "b1"}[i%2]
		if _, err := s.AddPost(ctx, channels.Post{Channel: ch, Author: "x", Text: fmt.Sprint(i), Status: channels.Published}, nil); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.Events(ctx, "a1", 0, 0)
	if len(a) != 3 {
		t.Fatalf("a1 events %+v", a)
	}
	for i := 1; i < len(a); i++ {
		if a[i].Seq <= a[i-1].Seq || a[i].Channel != "a1" {
			t.Fatalf("events out of order %+v", a)
		}
	}
	page, _ := s.Events(ctx, "a1", a[0].Seq, 1)
	if len(page) != 1 || page[0].Seq != a[1].Seq {
		t.Fatalf("paged %+v", page)
	}
	if rest, _ := s.Events(ctx, "a1", a[2].Seq, 0); len(rest) != 0 {
		t.Fatalf("after the last event: %+v", rest)
	}
}

func testPostsByStatus(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	var ids []int64
	for i, st := range []channels.Status{channels.Published, channels.Held, channels.Removed, channels.Published} {
		p, _ := s.AddPost(ctx, channels.Post{Channel: "news", Author: "a", Status: st, Media: []channels.Media{media(i, true)}}, [][]byte{{byte(i)}})
		ids = append(ids, p.ID)
	}
	ps, err := s.Posts(ctx, 0, 0, channels.Published, channels.Held)
	if err != nil || len(ps) != 3 || ps[0].ID != ids[0] || ps[1].ID != ids[1] || ps[2].ID != ids[3] || len(ps[2].Media) != 1 || ps[2].Media[0].PDQ == nil {
		t.Fatalf("Posts = %+v, %v", ps, err)
	}
	ps, _ = s.Posts(ctx, ids[0], 1, channels.Published, channels.Held)
	if len(ps) != 1 || ps[0].ID != ids[1] {
		t.Fatalf("paged Posts = %+v", ps)
	}
	if ps, _ = s.Posts(ctx, 0, 0, channels.Removed); len(ps) != 1 || ps[0].ID != ids[2] {
		t.Fatalf("removed Posts = %+v", ps)
	}
}

func testRescanCheckpoint(t *testing.T, s channels.Store) {
	ctx := context.Background()
	if v, err := s.RescanCheckpoint(ctx); err != nil || v != 0 {
		t.Fatalf("initial checkpoint %d, %v", v, err)
	}
	for _, step := range []struct{ set, want int64 }{{5, 5}, {9, 9}, {7, 9}} {
		if err := s.SetRescanCheckpoint(ctx, step.set); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.RescanCheckpoint(ctx); v != step.want {
			t.Fatalf("after setting %d: %d, want %d", step.set, v, step.want)
		}
	}
}

func testDeletePost(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	pub, err := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Text: "secret-ish", Status: channels.Published,
		Media: []channels.Media{media(1, true)}}, [][]byte{[]byte("img")})
	if err != nil {
		t.Fatal(err)
	}
	held, _ := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Text: "held", Status: channels.Held}, nil)
	evs, _ := s.Events(ctx, "news", 0, 0)
	cursor := evs[len(evs)-1].Seq

	p, err := s.DeletePost(ctx, pub.ID, "deleted by alice")
	if err != nil || p.Status != channels.Deleted || p.Text != "" {
		t.Fatalf("DeletePost = %+v, %v", p, err)
	}
	got, err := s.Post(ctx, pub.ID)
	if err != nil || got.Status != channels.Deleted || got.Text != "" || len(got.Media) != 0 || got.Reason != "deleted by alice" {
		t.Fatalf("deleted post reads back as %+v, %v", got, err)
	}
	if _, _, err := s.MediaData(ctx, pub.ID, 0); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("media of a deleted post: %v", err)
	}
	evs, _ = s.Events(ctx, "news", cursor, 0)
	if len(evs) != 1 || evs[0].Kind != channels.EventTakedown || evs[0].PostID != pub.ID || evs[0].Reason != "deleted by alice" {
		t.Fatalf("events after deleting a published post: %+v", evs)
	}
	cursor = evs[0].Seq
	// Deleting a held post makes no event (it was never visible).
	if _, err := s.DeletePost(ctx, held.ID, "x"); err != nil {
		t.Fatal(err)
	}
	if evs, _ = s.Events(ctx, "news", cursor, 0); len(evs) != 0 {
		t.Fatalf("deleting a held post made events %+v", evs)
	}
	// Final: no way back, and deleting again changes nothing.
	if _, _, err := s.SetStatus(ctx, held.ID, channels.Published, "approved"); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("publishing a deleted post: %v", err)
	}
	if p, err := s.DeletePost(ctx, pub.ID, "again"); err != nil || p.Reason != "deleted by alice" {
		t.Fatalf("second delete = %+v, %v", p, err)
	}
	if evs, _ = s.Events(ctx, "news", cursor, 0); len(evs) != 0 {
		t.Fatalf("second delete made events %+v", evs)
	}
	if _, err := s.DeletePost(ctx, 9999, "x"); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("deleting a missing post: %v", err)
	}
	if ps, _ := s.Posts(ctx, 0, 10, channels.Published, channels.Held, channels.Removed); len(ps) != 0 {
		t.Fatalf("deleted posts still listed: %+v", ps)
	}
}

func testDeleteChannel(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	mustChannel(t, s, "other", "alice")
	p, _ := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Published,
		Media: []channels.Media{media(1, false)}}, [][]byte{[]byte("img")})
	keep, _ := s.AddPost(ctx, channels.Post{Channel: "other", Author: "alice", Status: channels.Published}, nil)
	s.SetAdmin(ctx, "news", "bob", true)
	s.SetFollow(ctx, "news", "carol", true)
	s.SetFollow(ctx, "other", "carol", true)

	if err := s.DeleteChannel(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Channel(ctx, "news"); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("deleted channel: %v", err)
	}
	if _, err := s.Post(ctx, p.ID); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("post of a deleted channel: %v", err)
	}
	if _, _, err := s.MediaData(ctx, p.ID, 0); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("media of a deleted channel: %v", err)
	}
	if evs, _ := s.Events(ctx, "news", 0, 0); len(evs) != 0 {
		t.Fatalf("events of a deleted channel: %+v", evs)
	}
	if f, _ := s.Following(ctx, "carol"); !slices.Equal(f, []string{"other"}) {
		t.Fatalf("carol follows %v, want [other]", f)
	}
	if _, err := s.Post(ctx, keep.ID); err != nil {
		t.Fatalf("other channel's post: %v", err)
	}
	// The id stays taken.
	if err := s.CreateChannel(ctx, channels.Channel{ID: "news", Owner: "mallory"}); !errors.Is(err, channels.ErrExists) {
		t.Fatalf("re-creating a deleted channel's id: %v", err)
	}
	if err := s.DeleteChannel(ctx, "news"); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func testForgetUser(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "alices", "alice")
	mustChannel(t, s, "alices2", "alice")
	mustChannel(t, s, "bobs", "bob")
	s.SetAdmin(ctx, "bobs", "alice", true)
	s.SetFollow(ctx, "bobs", "alice", true)
	s.SetFollow(ctx, "alices", "bob", true)
	mine, _ := s.AddPost(ctx, channels.Post{Channel: "bobs", Author: "alice", Text: "by alice", Status: channels.Published}, nil)
	his, _ := s.AddPost(ctx, channels.Post{Channel: "bobs", Author: "bob", Text: "by bob", Status: channels.Published}, nil)

	gone, err := s.ForgetUser(ctx, "alice")
	if err != nil || !slices.Equal(gone, []string{"alices", "alices2"}) {
		t.Fatalf("ForgetUser = %v, %v", gone, err)
	}
	for _, id := range gone {
		if _, err := s.Channel(ctx, id); !errors.Is(err, channels.ErrNotFound) {
			t.Fatalf("alice's channel %s: %v", id, err)
		}
	}
	c, err := s.Channel(ctx, "bobs")
	if err != nil || len(c.Admins) != 0 || c.Followers != 0 {
		t.Fatalf("bob's channel after alice left: %+v, %v", c, err)
	}
	if p, _ := s.Post(ctx, mine.ID); p.Status != channels.Deleted || p.Text != "" {
		t.Fatalf("alice's post in bob's channel: %+v", p)
	}
	if p, _ := s.Post(ctx, his.ID); p.Status != channels.Published || p.Text != "by bob" {
		t.Fatalf("bob's post: %+v", p)
	}
	if f, _ := s.Following(ctx, "bob"); len(f) != 0 {
		t.Fatalf("bob still follows %v", f)
	}
	if gone, err := s.ForgetUser(ctx, "nobody"); err != nil || len(gone) != 0 {
		t.Fatalf("ForgetUser(nobody) = %v, %v", gone, err)
	}
}

// testVideoHashes: a video's vPDQ and TMK hashes come back from Post and
// Posts as stored (rescans of published videos read them).
func testVideoHashes(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	tmk := &video.TMK{FramesPerSecond: 15, FrameCount: 42, Periods: []int32{3, 5}, Coefficients: []float32{0.5, 0.25}}
	tmk.Cos = make([]float32, 2*2*video.TMKFeatureDim)
	tmk.Sin = make([]float32, len(tmk.Cos))
	for i := range tmk.Cos {
		tmk.Cos[i], tmk.Sin[i] = float32(i)/7, -float32(i)/3
	}
	tmk.Average[5] = 1.5
	m := media(7, false)
	m.ContentType = "video/mp4"
	m.VPDQ = []video.Feature{{Frame: 0, Quality: 100, Hash: pdq.Hash{1, 2}, Timestamp: 0}, {Frame: 30, Quality: 45, Hash: pdq.Hash{3}, Timestamp: 1}}
	m.TMK = tmk
	p, err := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Published, Media: []channels.Media{m, media(8, true)}},
		[][]byte{[]byte("video bytes"), []byte("image bytes")})
	if err != nil {
		t.Fatal(err)
	}
	check := func(how string, got channels.Post) {
		t.Helper()
		v := got.Media[0]
		if len(v.VPDQ) != 2 || v.VPDQ[1] != m.VPDQ[1] || v.VPDQ[0] != m.VPDQ[0] || v.TMK == nil ||
			v.TMK.FrameCount != 42 || v.TMK.Average != tmk.Average || !slices.Equal(v.TMK.Cos, tmk.Cos) || !slices.Equal(v.TMK.Sin, tmk.Sin) ||
			!slices.Equal(v.TMK.Periods, tmk.Periods) {
			t.Fatalf("%s: video hashes %+v", how, v.VPDQ)
		}
		if i := got.Media[1]; i.VPDQ != nil || i.TMK != nil || i.PDQ == nil {
			t.Fatalf("%s: image media %+v", how, i)
		}
	}
	got, err := s.Post(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	check("Post", got)
	ps, err := s.Posts(ctx, 0, 10, channels.Published)
	if err != nil || len(ps) != 1 {
		t.Fatalf("Posts: %v %v", ps, err)
	}
	check("Posts", ps[0])
}

// testMediaObjects: a file whose bytes are in an object store is stored
// with its object's name and size and no bytes. Erasing it (a post
// deleted, a channel deleted, an account forgotten) records its object
// as dropped in the same transaction, until forgotten; files in the
// Store itself record nothing.
func testMediaObjects(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "pics", "alice")
	mustChannel(t, s, "bobs", "bob")
	obj := func(name string, size int64) channels.Media {
		m := media(len(name), false)
		m.Object, m.Size = name, size
		return m
	}
	p1, err := s.AddPost(ctx, channels.Post{Channel: "pics", Author: "alice", Status: channels.Published,
		Media: []channels.Media{obj("o-1", 5000), media(9, false)}}, [][]byte{nil, []byte("in the store")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Post(ctx, p1.ID)
	if err != nil || got.Media[0].Object != "o-1" || got.Media[0].Size != 5000 || got.Media[1].Object != "" || got.Media[1].Size != 12 {
		t.Fatalf("Post = %+v, %v", got.Media, err)
	}
	if b, object, err := s.MediaData(ctx, p1.ID, 0); err != nil || len(b) != 0 || object != "o-1" {
		t.Fatalf("MediaData of a file in an object: %d bytes, object %q, %v", len(b), object, err)
	}
	for _, o := range []string{"o-1"} {
		if used, err := s.ObjectInUse(ctx, o); err != nil || !used {
			t.Fatalf("ObjectInUse(%s) = %v, %v", o, used, err)
		}
	}
	if used, err := s.ObjectInUse(ctx, "o-unknown"); err != nil || used {
		t.Fatalf("ObjectInUse(o-unknown) = %v, %v", used, err)
	}
	p2, _ := s.AddPost(ctx, channels.Post{Channel: "pics", Author: "alice", Status: channels.Held,
		Media: []channels.Media{obj("o-2", 10), obj("o-3", 20)}}, [][]byte{nil, nil})
	p3, _ := s.AddPost(ctx, channels.Post{Channel: "bobs", Author: "alice", Status: channels.Published,
		Media: []channels.Media{obj("o-4", 30)}}, [][]byte{nil})
	keep, _ := s.AddPost(ctx, channels.Post{Channel: "bobs", Author: "bob", Status: channels.Published,
		Media: []channels.Media{obj("o-5", 40)}}, [][]byte{nil})
	if d, err := s.DroppedObjects(ctx, 0); err != nil || len(d) != 0 {
		t.Fatalf("DroppedObjects before any deletion = %v, %v", d, err)
	}
	// Removed by a moderator: the post (and its files) stay.
	if _, _, err := s.SetStatus(ctx, p2.ID, channels.Removed, "r"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DroppedObjects(ctx, 0); len(d) != 0 {
		t.Fatalf("a status change dropped %v", d)
	}
	if used, _ := s.ObjectInUse(ctx, "o-2"); !used {
		t.Fatal("a removed post's object is not in use: the orphan sweep would delete what an appeal needs")
	}
	if _, err := s.DeletePost(ctx, p1.ID, "gone"); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DroppedObjects(ctx, 0); err != nil || !slices.Equal(d, []string{"o-1"}) {
		t.Fatalf("after DeletePost: %v, %v", d, err)
	}
	if _, err := s.DeletePost(ctx, p1.ID, "again"); err != nil {
		t.Fatal(err)
	}
	if used, _ := s.ObjectInUse(ctx, "o-1"); used {
		t.Fatal("a deleted post's object is still in use")
	}
	// Account deletion: alice's channel (o-2, o-3) and her post in bob's (o-4).
	if _, err := s.ForgetUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	d, err := s.DroppedObjects(ctx, 0)
	if err != nil || !slices.Equal(d, []string{"o-1", "o-2", "o-3", "o-4"}) {
		t.Fatalf("after ForgetUser: %v, %v", d, err)
	}
	if d, _ := s.DroppedObjects(ctx, 2); !slices.Equal(d, []string{"o-1", "o-2"}) {
		t.Fatalf("DroppedObjects(limit 2) = %v", d)
	}
	if err := s.ForgetDroppedObjects(ctx, []string{"o-1", "o-3", "o-never"}); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DroppedObjects(ctx, 0); !slices.Equal(d, []string{"o-2", "o-4"}) {
		t.Fatalf("after forgetting o-1 and o-3: %v", d)
	}
	if err := s.DeleteChannel(ctx, "bobs"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DroppedObjects(ctx, 0); !slices.Equal(d, []string{"o-2", "o-4", "o-5"}) {
		t.Fatalf("after DeleteChannel: %v", d)
	}
	if _, err := s.Post(ctx, keep.ID); !errors.Is(err, channels.ErrNotFound) {
		t.Fatalf("post of a deleted channel: %v", err)
	}
	_ = p3
	if err := s.ForgetDroppedObjects(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// testPostsBy: an author's posts in every status, in ID order, paged,
// and no one else's.
func testPostsBy(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	var want []int64
	for i, st := range []channels.Status{channels.Published, channels.Held, channels.Published, channels.Published} {
		p, err := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Text: fmt.Sprint("post ", i), Status: st,
			Media: []channels.Media{media(i, false)}}, [][]byte{[]byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p.ID)
		if _, err := s.AddPost(ctx, channels.Post{Channel: "news", Author: "bob", Status: channels.Published}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.SetStatus(ctx, want[2], channels.Removed, "r")
	s.DeletePost(ctx, want[3], "gone")
	var got []int64
	var after int64
	for {
		ps, err := s.PostsBy(ctx, "alice", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Author != "alice" {
				t.Fatalf("PostsBy(alice) returned %+v", p)
			}
			got = append(got, p.ID)
			after = p.ID
		}
		if len(ps) < 3 {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("PostsBy(alice) = %v, want %v", got, want)
	}
	if ps, _ := s.PostsBy(ctx, "alice", 0, 1); len(ps) != 1 || len(ps[0].Media) != 1 || ps[0].Media[0].MD5[0] != 0 {
		t.Fatalf("PostsBy with media: %+v", ps)
	}
	if ps, err := s.PostsBy(ctx, "nobody", 0, 0); err != nil || len(ps) != 0 {
		t.Fatalf("PostsBy(nobody) = %v, %v", ps, err)
	}
}

// testMoveMedia: the files whose bytes are in the Store, paged by post
// and index, skipping files in objects and deleted posts; moving one
// sets its object and drops its bytes, once; moving a file whose post was
// deleted meanwhile moves nothing.
func testMoveMedia(t *testing.T, s channels.Store) {
	ctx := context.Background()
	mustChannel(t, s, "news", "alice")
	add := func(media []channels.Media, data [][]byte) int64 {
		t.Helper()
		p, err := s.AddPost(ctx, channels.Post{Channel: "news", Author: "alice", Status: channels.Published, Media: media}, data)
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	inObject := media(7, false)
	inObject.Object, inObject.Size = "already-there", 3
	p1 := add([]channels.Media{media(1, false), media(2, false)}, [][]byte{[]byte("first"), []byte("second!")})
	add([]channels.Media{inObject}, [][]byte{nil})
	p3 := add([]channels.Media{media(3, false)}, [][]byte{[]byte("to be deleted")})
	add(nil, nil)
	p5 := add([]channels.Media{media(5, false)}, [][]byte{[]byte("fifth")})
	p6 := add([]channels.Media{media(6, false)}, [][]byte{[]byte("taken down")})
	if _, err := s.DeletePost(ctx, p3, "gone"); err != nil {
		t.Fatal(err)
	}
	// Taken down (by a list or a moderator): its file stays out of the
	// object store.
	if _, _, err := s.SetStatus(ctx, p6, channels.Removed, ""); err != nil {
		t.Fatal(err)
	}
	var got []channels.MediaRef
	var after channels.MediaRef
	for {
		page, err := s.StoredMedia(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	want := []channels.MediaRef{{PostID: p1, Index: 0, Size: 5}, {PostID: p1, Index: 1, Size: 7}, {PostID: p5, Index: 0, Size: 5}}
	if !slices.Equal(got, want) {
		t.Fatalf("StoredMedia = %+v, want %+v", got, want)
	}
	if moved, err := s.MoveMediaToObject(ctx, p1, 1, "obj-1"); err != nil || !moved {
		t.Fatalf("MoveMediaToObject = %v, %v", moved, err)
	}
	if moved, err := s.MoveMediaToObject(ctx, p1, 1, "obj-again"); err != nil || moved {
		t.Fatalf("moving a moved file again = %v, %v", moved, err)
	}
	if moved, err := s.MoveMediaToObject(ctx, p3, 0, "obj-3"); err != nil || moved {
		t.Fatalf("moving a deleted post's file = %v, %v", moved, err)
	}
	if moved, err := s.MoveMediaToObject(ctx, p6, 0, "obj-6"); err != nil || moved {
		t.Fatalf("moving a taken-down post's file = %v, %v", moved, err)
	}
	if moved, err := s.MoveMediaToObject(ctx, p5, 0, ""); !errors.Is(err, channels.ErrInvalid) || moved {
		t.Fatalf("moving a file to no object = %v, %v", moved, err)
	}
	p, err := s.Post(ctx, p1)
	if err != nil || p.Media[1].Object != "obj-1" || p.Media[1].Size != 7 || p.Media[0].Object != "" {
		t.Fatalf("after the move: %+v, %v", p.Media, err)
	}
	if b, object, err := s.MediaData(ctx, p1, 1); err != nil || len(b) != 0 || object != "obj-1" {
		t.Fatalf("the moved file in the store: %d bytes, object %q, %v; want no bytes and obj-1", len(b), object, err)
	}
	if b, object, err := s.MediaData(ctx, p1, 0); err != nil || string(b) != "first" || object != "" {
		t.Fatalf("the file not moved: %q, object %q, %v", b, object, err)
	}
	if used, _ := s.ObjectInUse(ctx, "obj-1"); !used {
		t.Fatal("the moved file's object is not in use")
	}
	if left, _ := s.StoredMedia(ctx, channels.MediaRef{}, 0); len(left) != 2 {
		t.Fatalf("files left in the store: %+v", left)
	}
	// Deleting a post whose file was moved drops its object.
	if _, err := s.DeletePost(ctx, p1, "gone"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DroppedObjects(ctx, 0); !slices.Equal(d, []string{"obj-1"}) {
		t.Fatalf("dropped after deleting a moved file's post: %v", d)
	}
}
