package hashlist

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/parleychat/parley/hashing/video"
	"github.com/parleychat/parley/internal/shareddata"
)

// refVPDQValue converts a reference vPDQ hash file (one frame a line, the
// vpdq binary's format) into HMA's vPDQ signal string, as HMA exports it
// (json.dumps: ", " between frames).
func refVPDQValue(t testing.TB, name string) string {
	t.Helper()
	f, err := os.Open(shareddata.Path(t, "testdata", "video", "vpdq", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	feats, err := video.ParseVPDQ(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]string, len(feats))
	for i, ft := range feats {
		parts[i] = fmt.Sprintf("%q", fmt.Sprintf("%s,%d,%.3f", ft.Hash, ft.Quality, ft.Timestamp))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func refTMKValue(t testing.TB, name string) (string, []byte) {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "video", "tmk", name+".tmk"))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), raw
}

// HMA and CSV lists carry vPDQ (HMA's JSON signal string) and TMK (a .tmk
// file in base64) entries; values are stored canonical, and an export
// parses back to the same entries.
func TestVideoEntries(t *testing.T) {
	vp := refVPDQValue(t, "chair-orig-22-sd-bar")
	tmk, raw := refTMKValue(t, "doorknob-hd-no-bar")
	hma := "vpdq " + vp + "\nvideo_tmk_pdqf " + tmk + "\nvideo_md5 " + md5A + "\n"
	es, err := ParseHMA(strings.NewReader(hma), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Type != VPDQ || es[1].Type != TMK || es[2].Type != MD5 {
		t.Fatalf("entries %v", es)
	}
	checkEntries(t, es)
	feats, err := ParseVPDQValue(es[0].Value)
	if err != nil || len(feats) != 673 || strings.Contains(es[0].Value, " ") {
		t.Fatalf("vpdq value: %d frames, %v", len(feats), err)
	}
	// The TMK value is the reference file, byte for byte.
	if got, _ := base64.StdEncoding.DecodeString(es[1].Value); !bytes.Equal(got, raw) {
		t.Fatal("tmk value is not the reference .tmk file")
	}
	// Export (as "parleyd admin lists export" writes) and parse back.
	var out strings.Builder
	for _, e := range es {
		fmt.Fprintf(&out, "%s %s\n", e.Type, e.Value)
	}
	back, err := ParseHMA(strings.NewReader(out.String()), "")
	if err != nil || len(back) != 3 {
		t.Fatalf("re-parse: %v", err)
	}
	for i := range es {
		if !entryEqual(es[i], back[i]) {
			t.Fatalf("entry %d changed on the round trip", i)
		}
	}
	csvList := "signal_type,signal,tags\nvpdq,\"" + strings.ReplaceAll(vp, `"`, `""`) + "\",ideology:x\nvideo_tmk_pdqf," + tmk + ",\n"
	cs, err := ParseCSV(strings.NewReader(csvList))
	if err != nil || len(cs) != 2 || cs[0].Value != es[0].Value || cs[1].Value != es[1].Value || cs[0].Tags[0] != "ideology:x" {
		t.Fatalf("csv: %v %v", cs, err)
	}
	if fp := es[1].Fingerprint(); !strings.HasPrefix(fp, "video_tmk_pdqf:sha256:") || len(fp) != len("video_tmk_pdqf:sha256:")+16 {
		t.Fatalf("fingerprint %q", fp)
	}
}

// Malformed video entries are refused with the line at fault, and the
// whole list with them.
func TestVideoEntryErrors(t *testing.T) {
	tmk, raw := refTMKValue(t, "doorknob-hd-no-bar")
	frame := `"` + pdqA + `,100,0.000"`
	million := "[" + strings.Repeat(frame+",", 1_000_000-1) + frame + "]"
	for name, tc := range map[string]struct {
		value string
		want  string
	}{
		"not json":         {"pdq,100,0", "JSON array"},
		"empty":            {"[]", "no frames"},
		"frame fields":     {`["` + pdqA + `,100"]`, "fields"},
		"quality":          {`["` + pdqA + `,101,0.0"]`, "quality"},
		"negative time":    {`["` + pdqA + `,100,-1"]`, "timestamp"},
		"short hash":       {`["abc,100,0.0"]`, "frame 1"},
		"number frame":     {`[1]`, "not a string"},
		"trailing":         {`["` + pdqA + `,100,0.0"] x`, "after the array"},
		"a million frames": {million, "longer than"},
		"18001 frames":     {"[" + strings.Repeat(frame+",", MaxVPDQEntryFrames) + frame + "]", "more than 18000 frames"},
	} {
		_, err := ParseHMA(strings.NewReader("md5 "+md5A+"\nvpdq "+tc.value+"\n"), "")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.N != 2 || !(errors.Is(err, ErrBadHash) || errors.Is(err, ErrSyntax)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("vpdq %s: %v", name, err)
		}
	}
	if _, err := ParseVPDQValue(million); !errors.Is(err, ErrBadHash) || !strings.Contains(err.Error(), "frame limit") {
		t.Errorf("a million frames: %v", err)
	}
	for name, tc := range map[string]struct {
		value string
		want  string
	}{
		"not base64":      {"!!" + tmk[2:], "base64"},
		"truncated file":  {base64.StdEncoding.EncodeToString(raw[:len(raw)-4]), "malformed .tmk"},
		"extra bytes":     {base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0)), "malformed .tmk"},
		"wrong magic":     {base64.StdEncoding.EncodeToString(append([]byte("XXXX"), raw[4:]...)), "magic"},
		"header only":     {base64.StdEncoding.EncodeToString(raw[:32]), "malformed .tmk"},
		"too long a line": {strings.Repeat("A", 1<<20+4), "more than a .tmk file"},
	} {
		_, err := ParseHMA(strings.NewReader("md5 "+md5A+"\nvideo_tmk_pdqf "+tc.value+"\n"), "")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.N != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tmk %s: %v", name, err)
		}
	}
}

func FuzzParseVPDQValue(f *testing.F) {
	f.Add(`["` + pdqA + `,100,0.000", "` + pdqA + `,50,1.5"]`)
	f.Add(`[]`)
	f.Add(`["` + pdqA + `,100,1e300"]`)
	f.Fuzz(func(t *testing.T, s string) {
		feats, err := ParseVPDQValue(s)
		if err != nil {
			if feats != nil || !errors.Is(err, ErrBadHash) {
				t.Fatalf("error %v with %d frames, or not ErrBadHash", err, len(feats))
			}
			return
		}
		// What parses is stored canonical: formatting and parsing again
		// gives the same value.
		v := FormatVPDQValue(feats)
		again, err := ParseVPDQValue(v)
		if err != nil || FormatVPDQValue(again) != v || len(again) != len(feats) {
			t.Fatalf("canonical form %q does not round-trip: %v", v, err)
		}
	})
}

func FuzzParseTMKValue(f *testing.F) {
	tmk, raw := refTMKValue(f, "doorknob-hd-no-bar")
	f.Add(tmk)
	f.Add(base64.StdEncoding.EncodeToString(raw[:40]))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseTMKValue(s)
		if err != nil {
			if h != nil || !errors.Is(err, ErrBadHash) {
				t.Fatalf("error %v with a hash, or not ErrBadHash", err)
			}
			return
		}
		v, err := TMKValue(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := ParseTMKValue(v)
		if err != nil || video.Compatible(h, h2) != nil || h2.Average != h.Average {
			t.Fatalf("re-encoded hash differs: %v", err)
		}
	})
}
