package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/transparency/directory"
	"github.com/parleychat/parley/transparency/log"
	"github.com/parleychat/parley/transparency/vrf"
	"github.com/parleychat/parley/wire"
)

// ktFlags configure the key transparency directory of "parleyd serve".
type ktFlags struct {
	origin              string
	interval, heartbeat time.Duration
	witnesses           stringsFlag
	follow              bool
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func (f *ktFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.origin, "kt-origin", defaultKTOrigin, "`name` of the key transparency log, as a schema-less URL naming this server (e.g. chat.example.org/kt); fixed when the directory's keys are made")
	fs.DurationVar(&f.interval, "kt-interval", 2*time.Second, "least `duration` between two key transparency epochs: a new device list is in the directory within about this long")
	fs.DurationVar(&f.heartbeat, "kt-heartbeat", 5*time.Minute, "publish an epoch after this `duration` even when nothing changed (clients refuse a directory that seems frozen for a day)")
	fs.BoolVar(&f.follow, "kt-follow", false, "do not publish key transparency epochs: serve those another node stores in the shared --db (give every node the same kt-note.key and kt-vrf.key; exactly one node publishes)")
	fs.Var(&f.witnesses, "kt-witness", "note verifier `key` of an auditor (\"parleyd audit keygen\") that must cosign every epoch before it is served; repeat for several")
}

const defaultKTOrigin = "parleyd.local/kt"

// Key files in the data directory, readable by the server's user only.
const (
	ktNoteKeyFile = "kt-note.key"
	ktVRFKeyFile  = "kt-vrf.key"
)

// transparencyConfig loads the directory's keys from the data directory,
// making them the first time. They are the directory's alone, separate
// from every other key the server has.
func (f *ktFlags) transparencyConfig(dir string) (*server.TransparencyConfig, error) {
	if f.origin == "" {
		f.origin = defaultKTOrigin
	}
	skey, err := readOrCreate(filepath.Join(dir, ktNoteKeyFile), func() ([]byte, error) {
		s, _, err := directory.GenerateNoteKey(rand.Reader, f.origin)
		return []byte(s + "\n"), err
	})
	if err != nil {
		return nil, err
	}
	signer, vkey, err := directory.NewNoteKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ktNoteKeyFile, err)
	}
	if signer.Name() != f.origin {
		return nil, fmt.Errorf("the key transparency log in %s is named %q, not %q: keep --kt-origin as it was (clients pin the log's name and keys)", dir, signer.Name(), f.origin)
	}
	seed, err := readOrCreate(filepath.Join(dir, ktVRFKeyFile), func() ([]byte, error) {
		k, err := vrf.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(k.Seed()) + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(seed)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ktVRFKeyFile, err)
	}
	vk, err := vrf.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ktVRFKeyFile, err)
	}
	cfg := &server.TransparencyConfig{
		Directory:   directory.Config{Origin: f.origin, Signer: signer, VRF: vk},
		VerifierKey: vkey, Interval: f.interval, Heartbeat: f.heartbeat, Follow: f.follow,
	}
	for _, w := range f.witnesses {
		v, err := note.NewVerifier(w)
		if err != nil {
			return nil, fmt.Errorf("--kt-witness %q: %w", w, err)
		}
		cfg.Directory.Witnesses = append(cfg.Directory.Witnesses, v)
		cfg.WitnessKeys = append(cfg.WitnessKeys, w)
	}
	return cfg, nil
}

// readOrCreate reads a secret file, or creates it (mode 0600) with make.
func readOrCreate(path string, make func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if b, err = make(); err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return nil, err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return nil, err
	}
	return b, fh.Close()
}

const auditUsage = `Usage:
  parleyd audit keygen --name NAME --key FILE   make an auditor's signing key (FILE, 0600) and print its verifier key
  parleyd audit --server URL --key FILE [flags] follow a server's key transparency log and cosign it

An auditor checks every epoch of a Parley server's key transparency
directory: that each extends the one before, that every changed account's
leaf is chained from its previous one (so no version of anyone's device
list can be hidden later), and that the published root is the one the
changes give. It cosigns only checkpoints of the log it rebuilt. Give its
verifier key to the server (parleyd serve --kt-witness KEY) so that every
epoch waits for it, and to clients (PARLEY_KT_WITNESS) so that they refuse
checkpoints it did not cosign. Run it somewhere the server's operator does
not control.
`

// audit runs "parleyd audit".
func audit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "keygen" {
		return auditKeygen(args[1:], stdout, stderr)
	}
	fs := newFlagSet("parleyd audit", "Follow a Parley server's key transparency log, check every epoch and cosign its checkpoints.", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage, "\nFlags:\n"); fs.PrintDefaults() }
	srvURL := fs.String("server", "", "`URL` of the server (http://127.0.0.1:7867)")
	keyFile := fs.String("key", "", "auditor's signing key `file` (\"parleyd audit keygen\")")
	logKey := fs.String("log-key", "", "the directory's note verifier `key`, if known out of band; otherwise the first one seen is pinned in the state file")
	stateFile := fs.String("state", "", "`file` keeping the pinned log key and the latest checkpoint cosigned (default: KEYFILE.state)")
	interval := fs.Duration("interval", 2*time.Second, "how often to look for new epochs")
	once := fs.Bool("once", false, "audit up to the latest epoch, cosign, and exit")
	jsonOut := fs.Bool("json", false, "print one JSON object per cosigned checkpoint")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd audit: %v\n", err)
		return 2
	}
	if *srvURL == "" || *keyFile == "" {
		fmt.Fprint(stderr, "parleyd audit: --server and --key are required\n\n", auditUsage)
		return 2
	}
	if *stateFile == "" {
		*stateFile = *keyFile + ".state"
	}
	a, err := newAuditRun(*srvURL, *keyFile, *logKey, *stateFile)
	if err == nil {
		err = a.loop(ctx, *interval, *once, func(size int64) {
			if *jsonOut {
				json.NewEncoder(stdout).Encode(map[string]any{"cosigned": size, "labels": a.auditor.Len()})
			} else {
				fmt.Fprintf(stdout, "cosigned the checkpoint of %d epochs (%d accounts in the directory)\n", size, a.auditor.Len())
			}
		})
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "parleyd audit: %v\n", err)
		if errors.Is(err, directory.ErrAudit) || errors.Is(err, log.ErrInconsistent) {
			fmt.Fprint(stderr, "THE DIRECTORY FAILED ITS AUDIT: keep the state file and the output above as evidence; clients that require this auditor will refuse its new checkpoints.\n")
			return 3
		}
		return 1
	}
	return 0
}

func auditKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("parleyd audit keygen", "Make an auditor's signing key.", stderr)
	name := fs.String("name", "", "the auditor's `name` (e.g. auditor.example.org)")
	keyFile := fs.String("key", "", "`file` to write the signing key to (created with mode 0600; must not exist)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *name == "" || *keyFile == "" {
		fmt.Fprint(stderr, "parleyd audit keygen: --name and --key are required\n")
		return 2
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err == nil {
		_, err = readOrCreate(*keyFile, func() ([]byte, error) { return nil, nil })
		if err == nil {
			err = os.WriteFile(*keyFile, []byte(skey+"\n"), 0o600)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "parleyd audit keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, vkey)
	return 0
}

type auditState struct {
	LogKey   string `json:"log_key"`
	Origin   string `json:"origin"`
	Cosigned []byte `json:"cosigned,omitempty"`
}

type auditRun struct {
	base      string
	client    *http.Client
	signer    note.Signer
	statePath string
	state     auditState
	auditor   *directory.Auditor
}

func newAuditRun(srvURL, keyFile, logKey, statePath string) (*auditRun, error) {
	u, err := url.Parse(srvURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--server must be an http(s) URL, not %q", srvURL)
	}
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	a := &auditRun{base: strings.TrimSuffix(srvURL, "/") + wire.PathKT, client: &http.Client{Timeout: time.Minute}, signer: signer, statePath: statePath}
	if b, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(b, &a.state); err != nil {
			return nil, fmt.Errorf("%s: %w", statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var keys server.KTKeysJSON
	if err := a.getJSON("/keys", &keys); err != nil {
		return nil, err
	}
	switch {
	case logKey != "" && keys.NoteKey != logKey:
		return nil, fmt.Errorf("the server's directory key is %q, not the --log-key given", keys.NoteKey)
	case a.state.LogKey != "" && (keys.NoteKey != a.state.LogKey || keys.Origin != a.state.Origin):
		return nil, fmt.Errorf("%w: the server's directory key changed from %q to %q", directory.ErrAudit, a.state.LogKey, keys.NoteKey)
	}
	a.state.LogKey, a.state.Origin = keys.NoteKey, keys.Origin
	v, err := note.NewVerifier(keys.NoteKey)
	if err != nil {
		return nil, err
	}
	a.auditor = directory.NewAuditor(log.Policy{Origin: keys.Origin, Log: v})
	return a, a.saveState()
}

func (a *auditRun) saveState() error {
	b, err := json.Marshal(a.state)
	if err != nil {
		return err
	}
	tmp := a.statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath)
}

func (a *auditRun) getJSON(path string, v any) error {
	resp, err := a.client.Get(a.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

// step audits every epoch not audited yet and cosigns the latest
// checkpoint; it returns the size cosigned (0 if nothing new).
func (a *auditRun) step() (int64, error) {
	var keys server.KTKeysJSON
	if err := a.getJSON("/keys", &keys); err != nil {
		return 0, err
	}
	for n := a.auditor.Size(); n < keys.Size; n++ {
		var e server.KTEpochJSON
		if err := a.getJSON(fmt.Sprintf("/epochs/%d", n), &e); err != nil {
			return 0, err
		}
		ch, err := directory.ParseChanges(e.Changes)
		if err != nil {
			return 0, fmt.Errorf("%w: epoch %d: %w", directory.ErrAudit, n, err)
		}
		if err := a.auditor.Apply(e.Record, ch); err != nil {
			return 0, err
		}
	}
	// On a restart, the log replayed must still contain what was cosigned.
	if a.state.Cosigned != nil {
		if _, err := a.auditor.Check(a.state.Cosigned); err != nil {
			return 0, fmt.Errorf("%w: the log no longer contains the checkpoint this auditor cosigned before: %w", log.ErrInconsistent, err)
		}
	}
	resp, err := a.client.Get(a.base + "/checkpoint")
	if err != nil {
		return 0, err
	}
	cp, err := io.ReadAll(io.LimitReader(resp.Body, log.MaxNoteSize+1))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /checkpoint: %s %v", resp.Status, err)
	}
	checked, err := a.auditor.Check(cp)
	if err != nil {
		return 0, err
	}
	if prev := a.state.Cosigned; prev != nil {
		if old, err := log.OpenCheckpoint(prev, log.Policy{Origin: a.state.Origin, Log: mustVerifier(a.state.LogKey)}); err == nil && checked.Size <= old.Size {
			return 0, nil
		}
	}
	cosigned, err := a.auditor.Cosign(cp, a.signer)
	if err != nil {
		return 0, err
	}
	post, err := a.client.Post(a.base+"/cosign", "text/plain; charset=utf-8", bytes.NewReader(cosigned))
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(io.LimitReader(post.Body, 512))
	post.Body.Close()
	if post.StatusCode != http.StatusNoContent {
		// A server that does not list this auditor refuses its
		// cosignature; the audit itself still stands.
		slog.Warn("the server did not take the cosignature", "status", post.Status, "reply", string(bytes.TrimSpace(body)))
	}
	a.state.Cosigned = cosigned
	return checked.Size, a.saveState()
}

func mustVerifier(vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err) // checked when the state was made
	}
	return v
}

func (a *auditRun) loop(ctx context.Context, interval time.Duration, once bool, report func(int64)) error {
	for {
		size, err := a.step()
		if err != nil {
			if errors.Is(err, directory.ErrAudit) || errors.Is(err, log.ErrInconsistent) || once {
				return err
			}
			slog.Warn("audit step failed; retrying", "err", err)
		} else if size > 0 {
			report(size)
		}
		if once && err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
