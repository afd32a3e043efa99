package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleychat/parley/client/profile"
	"github.com/parleychat/parley/internal/bytesize"
)

// passphrase returns the profile passphrase from PARLEY_PASSPHRASE or,
// failing that, from the terminal without echo (twice for a new profile).
func passphrase(e *env, newProfile bool) ([]byte, error) {
	if p, ok := os.LookupEnv("PARLEY_PASSPHRASE"); ok {
		if p == "" {
			return nil, errors.New("PARLEY_PASSPHRASE is empty")
		}
		return []byte(p), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errors.New("no terminal to ask for the passphrase: set PARLEY_PASSPHRASE")
	}
	defer tty.Close()
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(tty, prompt)
		p, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		return p, nil
	}
	if !newProfile {
		return read("Passphrase for " + e.flags.profile + ": ")
	}
	p, err := read("New passphrase for " + e.flags.profile + ": ")
	if err != nil {
		return nil, err
	}
	if len(p) < 8 {
		return nil, errors.New("choose a passphrase of at least 8 characters")
	}
	again, err := read("Repeat it: ")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p, again) {
		return nil, errors.New("the passphrases differ")
	}
	return p, nil
}

// kdfFromEnv parses PARLEY_KDF ("t=3,m=65536,p=4").
func kdfFromEnv() (*profile.KDFParams, error) {
	s := os.Getenv("PARLEY_KDF")
	if s == "" {
		return nil, nil
	}
	k := profile.DefaultKDF
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(val, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("PARLEY_KDF: bad %q", part)
		}
		switch name {
		case "t":
			k.Time = uint32(n)
		case "m":
			k.MemoryKiB = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("PARLEY_KDF: bad %q", part)
			}
			k.Threads = uint8(n)
		default:
			return nil, fmt.Errorf("PARLEY_KDF: unknown parameter %q", name)
		}
	}
	return &k, nil
}

// progressBar draws a transfer's progress on stderr, only when stderr is
// a terminal and --json is off.
type progressBar struct {
	f     *os.File
	label string
	last  time.Time
	drawn bool
	// unit, if set, counts items of that unit instead of bytes.
	unit string
}

func newProgressBar(e *env, label string) *progressBar {
	f, ok := e.stderr.(*os.File)
	if !ok || e.flags.json || !term.IsTerminal(int(f.Fd())) {
		return &progressBar{}
	}
	return &progressBar{f: f, label: label}
}

func (p *progressBar) update(done, total int64) {
	if p.f == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 50*time.Millisecond && done != total {
		return
	}
	p.last = now
	line := renderBar(p.label, done, total, 30)
	if p.unit != "" {
		line = renderCount(p.label, done, total, 30, p.unit)
	}
	fmt.Fprint(p.f, "\r"+line)
	p.drawn = true
}

func (p *progressBar) done() {
	if p.f != nil && p.drawn {
		fmt.Fprintln(p.f)
	}
}

// renderBar formats "label [=====>    ]  42% 1.2 MiB/3.0 MiB".
func renderBar(label string, done, total int64, width int) string {
	if total <= 0 {
		return fmt.Sprintf("%s %s", label, bytesize.Format(done))
	}
	done = min(max(done, 0), total)
	fill := int(int64(width) * done / total)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	return fmt.Sprintf("%s [%s] %3d%% %s/%s", label, bar, 100*done/total, bytesize.Format(done), bytesize.Format(total))
}
