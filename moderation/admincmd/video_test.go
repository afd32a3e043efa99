package admincmd

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/parleychat/parley/internal/shareddata"
)

// A list of vPDQ and TMK hashes imports from an HMA file and exports back
// to the same lines; corrupt video entries are refused with the line at
// fault and leave the bank as it was.
func TestImportExportVideoHashes(t *testing.T) {
	dir := serverDir(t)
	raw, err := os.ReadFile(shareddata.Path(t, "testdata", "video", "tmk", "chair-orig-22-sd-bar.tmk"))
	if err != nil {
		t.Fatal(err)
	}
	tmk := base64.StdEncoding.EncodeToString(raw)
	vp := `["` + pdqH(1) + `,100,0.000","` + pdqH(2) + `,90,1.000"]`
	list := "vpdq " + vp + "\nvideo_tmk_pdqf " + tmk + "\nvideo_md5 " + hexN(7, 32) + "\n"
	run(t, dir, 0, "lists", "import", "--name", "gifct-video", "--action", "review", write(t, dir, "v.txt", list))
	out := run(t, dir, 0, "lists", "export", "gifct-video")
	for _, line := range []string{"vpdq " + vp, "video_tmk_pdqf " + tmk, "md5 " + hexN(7, 32)} {
		if !strings.Contains(out, line+"\n") {
			t.Fatalf("export lacks %.60q...", line)
		}
	}
	before := banks(t, dir)
	if len(before) != 1 || before[0].Entries != 3 || before[0].Action != "review" {
		t.Fatalf("banks %+v", before)
	}
	for name, bad := range map[string]string{
		"truncated tmk":     "video_tmk_pdqf " + base64.StdEncoding.EncodeToString(raw[:len(raw)-100]),
		"bad frame":         `vpdq ["` + pdqH(1) + `,100"]`,
		"csv wrong quality": "",
	} {
		content := "vpdq " + vp + "\n" + bad + "\n"
		file := "bad.txt"
		if bad == "" {
			content = "signal_type,signal\nvpdq,\"[\"\"" + pdqH(3) + ",200,0.0\"\"]\"\n"
			file = "bad.csv"
		}
		out := run(t, dir, 1, "lists", "import", "--name", "gifct-video", write(t, dir, file, content))
		if !strings.Contains(out, "line 2") || !strings.Contains(out, "nothing imported") {
			t.Errorf("%s: %s", name, out)
		}
	}
	if after := banks(t, dir); len(after) != 1 || after[0].Version != before[0].Version || after[0].Entries != 3 {
		t.Fatalf("refused imports changed the bank: %+v → %+v", before, after)
	}
}
