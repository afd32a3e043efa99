package hashlist

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const (
	pdqA      = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
	pdqB      = "f0a10efd51c83d429053d48d0fffbc52e34e0e17ada956a9d29685211ea9e58f"
	md5A      = "d35c785545392755e7e4164457657269"
	shaA      = "b5b0799616df52d475a3968dc7e54f1d0724c912244ffa6175bc786375dd7298"
	pdqAUpper = "D8F8F0CEE0F4A84F0637022A078F67F0B36E2ED596621E1D33E6339C4E9C9B22"
)

func TestParseHMA(t *testing.T) {
	in := "pdq " + pdqA + "\n\n# a comment\nvideo_md5 " + strings.ToUpper(md5A) + "\r\nvideo_sha256 " + shaA + "\nmd5 " + md5A + "\n"
	got, err := ParseHMA(strings.NewReader(in), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Type: PDQ, Value: pdqA}, {Type: MD5, Value: md5A}, {Type: SHA256, Value: shaA}}
	if !slices.EqualFunc(got, want, entryEqual) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Bare hashes with a default type.
	got, err = ParseHMA(strings.NewReader(pdqA+"\n"+pdqB+"\n"), PDQ)
	if err != nil || len(got) != 2 {
		t.Errorf("default type: %v %v", got, err)
	}
}

func TestParseHMAErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
		want error
	}{
		{"pdq " + pdqA + "\nphash " + pdqA + "\n", 2, ErrUnknownType},
		{"pdq " + pdqA[:63] + "\n", 1, ErrBadHash},
		{"\n\nmd5 " + pdqA + "\n", 3, ErrBadHash},
		{"sha256 " + shaA[:63] + "z\n", 1, ErrBadHash},
		{pdqA + "\n", 1, ErrSyntax},
		{"pdq " + strings.Repeat("a", maxLine+10), 1, ErrSyntax},
	}
	for _, tt := range tests {
		_, err := ParseHMA(strings.NewReader(tt.in), "")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.N != tt.line || !errors.Is(err, tt.want) {
			t.Errorf("%.40q: got %v, want %v at line %d", tt.in, err, tt.want, tt.line)
		}
	}
}

func TestParseCSV(t *testing.T) {
	in := "\ufeffSignal,Signal_Type,note,tags\n" +
		pdqA + ",pdq,x,\"TVEC, ideology:far-right\"\n" +
		md5A + ",md5,,\n" +
		pdqA + ",pdq,dup,video\n"
	got, err := ParseCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Type: PDQ, Value: pdqA, Tags: []string{"ideology:far-right", "tvec", "video"}},
		{Type: MD5, Value: md5A},
	}
	if !slices.EqualFunc(got, want, entryEqual) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseCSVErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
		want error
	}{
		{"", 1, ErrSyntax},
		{"signal,type\n", 1, ErrSyntax},
		{"signal_type,signal\npdq," + pdqA + "\nmd5,abc\n", 3, ErrBadHash},
		{"signal_type,signal\npdq," + pdqA + ",extra\n", 2, ErrSyntax},
		{"signal_type,signal,tags\npdq," + pdqA + ",bad!tag\n", 2, ErrBadTag},
		{"signal_type,signal\n\"pdq," + pdqA + "\n", 2, ErrSyntax},
		{"signal_type,signal\ntmk," + pdqA + "\n", 2, ErrUnknownType},
	}
	for _, tt := range tests {
		got, err := ParseCSV(strings.NewReader(tt.in))
		var pe *ParseError
		if got != nil || !errors.As(err, &pe) || pe.N != tt.line || !errors.Is(err, tt.want) {
			t.Errorf("%.50q: got %v, want %v at line %d", tt.in, err, tt.want, tt.line)
		}
	}
}

const tcapPageJSON = `{"count": 5, "next": "https://app.terrorismanalytics.org/api/hash-list/v2/all?limit=4&offset=4", "previous": null,
 "checkpoint": "1724856487.709035,10594",
 "results": [
  {"hash_digest": "` + md5A + `", "algorithm": "MD5", "ideology": "islamist", "file_type": "mp4", "deleted": false, "updated_on": 1704901040.2, "created_on": "2025-03-03T23:05:22.587000", "id": 2819},
  {"hash_digest": "` + pdqAUpper + `", "algorithm": "PDQ", "ideology": "far-right", "file_type": "gif", "deleted": false, "updated_on": 1704901040.3, "created_on": "2025-03-03T23:05:22.587000", "id": 2820},
  {"hash_digest": "` + pdqB + `", "algorithm": "PDQ", "ideology": "islamist", "file_type": "jpg", "deleted": true, "updated_on": 1704901040.4, "created_on": "2025-03-03T23:05:22.587000", "id": 2821},
  {"hash_digest": "abcd", "algorithm": "TMK", "ideology": "islamist", "file_type": "mp4", "deleted": false, "updated_on": 1704901040.5, "created_on": "2025-03-03T23:05:22.587000", "id": 2822}
 ]}`

func TestParseTCAPPage(t *testing.T) {
	p, err := ParseTCAPPage(strings.NewReader(tcapPageJSON))
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 5 || p.Checkpoint != "1724856487.709035,10594" || !strings.HasSuffix(p.Next, "offset=4") || p.Skipped != 1 {
		t.Errorf("page metadata %+v", p)
	}
	wantUp := []Entry{
		{Type: MD5, Value: md5A, Tags: []string{"file_type:mp4", "ideology:islamist"}},
		{Type: PDQ, Value: pdqA, Tags: []string{"file_type:gif", "ideology:far-right"}},
	}
	if !slices.EqualFunc(p.Upserts, wantUp, entryEqual) {
		t.Errorf("upserts %v", p.Upserts)
	}
	if len(p.Deletions) != 1 || p.Deletions[0].Value != pdqB {
		t.Errorf("deletions %v", p.Deletions)
	}
	// A deleted bank entry goes; an unchanged page changes nothing.
	current := []Entry{{Type: PDQ, Value: pdqB}, {Type: SHA256, Value: shaA}}
	d := DiffTCAP(current, p)
	if len(d.Added) != 2 || len(d.Removed) != 1 || d.Removed[0].Value != pdqB || len(d.Changed) != 0 {
		t.Errorf("diff %+v", d)
	}
	next := Apply(current, d)
	if d2 := DiffTCAP(next, p); !d2.Empty() {
		t.Errorf("re-import not idempotent: %+v", d2)
	}
}

func TestParseTCAPErrors(t *testing.T) {
	tests := []struct {
		in     string
		record int
		want   error
	}{
		{`{"checkpoint": "1,2", "results": [{"hash_digest": "` + md5A + `", "algorithm": "MD5", "deleted": false}, {"hash_digest": "12", "algorithm": "PDQ", "deleted": false}]}`, 2, ErrBadHash},
		{`{"checkpoint": "1,2", "results": [{"hash_digest": "` + md5A + `", "algorithm": "MD5"}]}`, 1, ErrSyntax},
		{`{"checkpoint": "1,2", "results": [3]}`, 1, ErrSyntax},
		{`{"checkpoint": "1,2", "results": [{"hash_digest": "` + md5A + `", "algorithm": "MD5", "deleted": false, "ideology": "bad tag"}]}`, 1, ErrBadTag},
		{`{"results": []}`, 0, ErrSyntax},
		{`[]`, 0, ErrSyntax},
		{`{"checkpoint": "1,2", "results": [`, 0, ErrSyntax},
	}
	for _, tt := range tests {
		p, err := ParseTCAPPage(strings.NewReader(tt.in))
		if p != nil || !errors.Is(err, tt.want) {
			t.Errorf("%.60s: got %v, want %v", tt.in, err, tt.want)
			continue
		}
		var pe *ParseError
		if tt.record > 0 && (!errors.As(err, &pe) || pe.N != tt.record) {
			t.Errorf("%.60s: got %v, want record %d", tt.in, err, tt.record)
		}
	}
}

func TestBankUpdateAndDiff(t *testing.T) {
	b := &Bank{Name: "gifct", Source: "test", Action: Block, Tags: []string{"tvec"}}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	v1 := []Entry{{Type: PDQ, Value: pdqA}, {Type: MD5, Value: md5A, Tags: []string{"x"}}}
	b1, d := b.Update(v1)
	if b1.Version != 1 || len(d.Added) != 2 || b.Version != 0 || len(b.Entries) != 0 {
		t.Fatalf("first import: v%d %+v", b1.Version, d)
	}
	if err := b1.Validate(); err != nil {
		t.Fatal(err)
	}
	b2, d := b1.Update(slices.Clone(v1))
	if b2.Version != 1 || !d.Empty() {
		t.Errorf("re-import changed the bank: v%d %+v", b2.Version, d)
	}
	v2 := []Entry{{Type: MD5, Value: md5A, Tags: []string{"y"}}, {Type: SHA256, Value: shaA}}
	b3, d := b2.Update(v2)
	if b3.Version != 2 || len(d.Added) != 1 || len(d.Removed) != 1 || d.Removed[0].Value != pdqA || len(d.Changed) != 1 {
		t.Errorf("second import: v%d %+v", b3.Version, d)
	}
	if !slices.EqualFunc(b3.Entries, Apply(v1, Diff(v1, v2)), entryEqual) || len(b3.Entries) != 2 {
		t.Errorf("entries %v", b3.Entries)
	}
	bad := []*Bank{
		{Name: "", Action: Block},
		{Name: "x", Action: "delete"},
		{Name: "x", Action: Review, Entries: []Entry{{Type: PDQ, Value: pdqA}, {Type: PDQ, Value: pdqA}}},
		{Name: "x", Action: Review, Entries: []Entry{{Type: PDQ, Value: strings.ToUpper(pdqA)}}},
		{Name: "x", Action: Review, Entries: []Entry{{Type: "phash", Value: pdqA}}},
		{Name: "x", Action: Review, Tags: []string{"no spaces"}},
	}
	for i, b := range bad {
		if err := b.Validate(); !errors.Is(err, ErrBadBank) {
			t.Errorf("bad bank %d: %v", i, err)
		}
	}
}

func entryEqual(a, b Entry) bool {
	return a.Type == b.Type && a.Value == b.Value && slices.Equal(a.Tags, b.Tags)
}

// checkEntries asserts the invariants every parser's output has.
func checkEntries(t *testing.T, es []Entry) {
	seen := map[string]bool{}
	for _, e := range es {
		n, err := NewEntry(e.Type, e.Value, e.Tags)
		if err != nil || !entryEqual(n, e) {
			t.Fatalf("entry %v not valid and normalised: %v", e, err)
		}
		if seen[e.Key()] {
			t.Fatalf("duplicate %v", e.Key())
		}
		seen[e.Key()] = true
	}
}

func FuzzParseHMA(f *testing.F) {
	f.Add("pdq " + pdqA + "\nmd5 " + md5A + "\n")
	f.Add("video_sha256 " + shaA + "\n# c\n\n")
	f.Add(pdqA)
	f.Fuzz(func(t *testing.T, s string) {
		es, err := ParseHMA(strings.NewReader(s), "")
		if err != nil && es != nil {
			t.Fatal("entries with an error")
		}
		checkEntries(t, es)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add("signal_type,signal,tags\npdq," + pdqA + ",a b\n")
	f.Add("signal,signal_type\n" + md5A + ",md5\n")
	f.Add("signal_type,signal\n\"pdq\n")
	f.Fuzz(func(t *testing.T, s string) {
		es, err := ParseCSV(strings.NewReader(s))
		if err != nil && es != nil {
			t.Fatal("entries with an error")
		}
		checkEntries(t, es)
	})
}

func FuzzParseTCAPPage(f *testing.F) {
	f.Add(tcapPageJSON)
	f.Add(`{"checkpoint": "", "results": []}`)
	f.Add(`{"checkpoint": "1,2", "results": [{"hash_digest": "` + md5A + `", "algorithm": "md5", "deleted": true}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseTCAPPage(strings.NewReader(s))
		if err != nil {
			if p != nil {
				t.Fatal("page with an error")
			}
			return
		}
		checkEntries(t, p.Upserts)
		checkEntries(t, p.Deletions)
	})
}

func TestEntryBytes(t *testing.T) {
	for _, e := range []Entry{{Type: PDQ, Value: pdqA}, {Type: MD5, Value: md5A}, {Type: SHA256, Value: shaA}} {
		b, err := e.Bytes()
		if err != nil || len(b)*2 != e.Type.HexLen() {
			t.Errorf("%v: %x %v", e, b, err)
		}
	}
	if _, err := (Entry{Type: MD5, Value: pdqA}).Bytes(); !errors.Is(err, ErrBadHash) {
		t.Errorf("wrong length accepted: %v", err)
	}
}
