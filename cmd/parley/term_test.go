package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRenderBar(t *testing.T) {
	tests := []struct {
		done, total int64
		want        string
	}{
		{0, 100, "up [>         ]   0% 0 B/100 B"},
		{50, 100, "up [=====>    ]  50% 50 B/100 B"},
		{100, 100, "up [==========] 100% 100 B/100 B"},
		{200, 100, "up [==========] 100% 100 B/100 B"},
		{3 << 20, 4 << 20, "up [=======>  ]  75% 3 MiB/4 MiB"},
		{5, -1, "up 5 B"},
	}
	for _, tt := range tests {
		if got := renderBar("up", tt.done, tt.total, 10); got != tt.want {
			t.Errorf("renderBar(%d, %d) = %q, want %q", tt.done, tt.total, got, tt.want)
		}
	}
}

func TestProgressBarOnlyOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	e := &env{stderr: &buf}
	p := newProgressBar(e, "uploading")
	p.update(1, 2)
	p.done()
	if buf.Len() != 0 {
		t.Fatalf("progress written to a non-terminal: %q", buf.String())
	}
}

func TestParseInterspersed(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), []string{"send", "--help"}, nil, &out, &out)
	if code != 0 || !strings.Contains(out.String(), "usage: parley send") {
		t.Fatalf("send --help: %d %q", code, out.String())
	}
	got := hoistGlobalFlags([]string{"--json", "--profile", "/p", "group", "create", "team", "@bob"})
	want := []string{"group", "create", "--json", "--profile", "/p", "team", "@bob"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("hoist = %q", got)
	}
}

func TestKDFFromEnv(t *testing.T) {
	t.Setenv("PARLEY_KDF", "t=2,m=1024,p=2")
	k, err := kdfFromEnv()
	if err != nil || k.Time != 2 || k.MemoryKiB != 1024 || k.Threads != 2 {
		t.Fatalf("kdf %+v, %v", k, err)
	}
	for _, bad := range []string{"t", "x=1", "p=300", "t=-1"} {
		t.Setenv("PARLEY_KDF", bad)
		if _, err := kdfFromEnv(); err == nil {
			t.Errorf("PARLEY_KDF=%s accepted", bad)
		}
	}
}
