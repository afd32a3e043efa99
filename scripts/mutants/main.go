// Command mutants checks that the tests holding Parley's promises fail
// when the code breaks one: each mutant is a small, deliberate bug (an
// fsync removed, a check skipped, a constant changed) applied to a copy of
// the module, and the tests it names must then fail. A mutant whose tests
// still pass "survives": either a test is missing, or the mutant changes
// nothing that matters (an equivalent mutant; docs/testing.md lists those).
//
//	go run ./scripts/mutants              every mutant
//	go run ./scripts/mutants -run safety  the mutants whose name matches
//	go run ./scripts/mutants -list        list them
//
// It prints one line per mutant and the score per area, and exits 1 if any
// mutant survives. It takes a while (each mutant rebuilds and runs real
// tests, some under strace), so scripts/test does not run it; run it after
// changing a package that carries a promise.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// edit replaces old, which must occur exactly once in the file, by new.
type edit struct{ old, new string }

type mutant struct {
	name  string // area/what
	file  string // relative to the module root
	edits []edit
	// tests are "go test" arguments: packages and, optionally, -run.
	tests [][]string
}

func run(pkg, re string) []string {
	if re == "" {
		return []string{pkg}
	}
	return []string{"-run", re, pkg}
}

var mutants = []mutant{
	// store: fsync before ack, nothing stored twice.
	{name: "store/synchronous-off", file: "store/sqlitestore/sqlitestore.go",
		edits: []edit{{"_pragma=synchronous(FULL)", "_pragma=synchronous(OFF)"}},
		tests: [][]string{run("./cmd/parleyd", "^TestFsyncBeforeAck$")}},
	{name: "store/synchronous-normal", file: "store/sqlitestore/sqlitestore.go",
		edits: []edit{{"_pragma=synchronous(FULL)", "_pragma=synchronous(NORMAL)"}},
		tests: [][]string{run("./cmd/parleyd", "^TestFsyncBeforeAck$")}},
	{name: "store/answer-before-commit", file: "store/sqlitestore/append.go",
		edits: []edit{{`	if err := tx.Commit(); err != nil {
		cc.reset()
		failAll(batch, fmt.Errorf("append: commit: %w", err))
		return true
	}
	for i, r := range batch {
		r.res <- resps[i]
	}
	return true`, `	for i, r := range batch {
		r.res <- resps[i]
	}
	if err := tx.Commit(); err != nil {
		cc.reset()
	}
	return true`}},
		tests: [][]string{run("./cmd/parleyd", "^TestFsyncBeforeAck$")}},
	{name: "store/retry-stored-twice", file: "store/sqlitestore/convcache.go",
		edits: []edit{{"ON CONFLICT (first_sent, id, conversation_id) DO NOTHING`", "ON CONFLICT (first_sent, id, conversation_id) DO UPDATE SET seq = excluded.seq`"}},
		tests: [][]string{run("./cmd/parleyd", "^TestCrashRecovery$")}},
	{name: "store/blob-without-fsync", file: "store/blobstore/blobstore.go",
		edits: []edit{{`	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("blobstore: sync: %w", err))
	}`, ""}},
		tests: [][]string{run("./cmd/parleyd", "^TestFsyncBeforeAck$")}},
	{name: "store/blob-dir-without-fsync", file: "store/blobstore/blobstore.go",
		edits: []edit{{`	if err := syncDir(d.dir); err != nil {
		return "", 0, err
	}
	return id, n, nil`, "\treturn id, n, nil"}},
		tests: [][]string{run("./cmd/parleyd", "^TestFsyncBeforeAck$")}},
	{name: "store/channel-db-synchronous-off", file: "internal/sqlitedb/sqlitedb.go",
		edits: []edit{{`"synchronous(FULL)"`, `"synchronous(OFF)"`}},
		tests: [][]string{run("./cmd/parleyd", "^TestFsyncBeforeAck$")}},

	// server: the bounded outbound queue, the real wiring.
	{name: "server/unbounded-outbound-bytes", file: "server/conn.go",
		edits: []edit{{"len(c.queue) >= c.s.cfg.OutboundQueue || c.queueBytes+len(b) > c.s.cfg.OutboundBytes", "len(c.queue) >= c.s.cfg.OutboundQueue"}},
		tests: [][]string{run("./server", "^TestHostileNeverReads$")}},
	{name: "server/wiring-without-forget-account", file: "cmd/parleyd/main.go",
		edits: []edit{{"\tchans.Wire(&cfg)\n", "\tchans.Wire(&cfg)\n\tcfg.ForgetAccount = nil\n"}},
		tests: [][]string{run("./cmd/parley", "^TestScripts$/^account$")}},

	// client/safety: the documented construction.
	{name: "safety/one-iteration", file: "client/safety/safety.go",
		edits: []edit{{"const Iterations = 5200", "const Iterations = 1"}},
		tests: [][]string{run("./client/safety", "")}},
	{name: "safety/keys-unsorted", file: "client/safety/safety.go",
		edits: []edit{{"\tslices.SortFunc(keys, bytes.Compare)\n", "\t_ = bytes.Compare\n"}},
		tests: [][]string{run("./client/safety", "")}},
	{name: "safety/not-symmetric", file: "client/safety/safety.go",
		edits: []edit{{"\t\ta, b = b, a\n", ""}},
		tests: [][]string{run("./client/safety", "")}},
	{name: "safety/four-digit-groups", file: "client/safety/safety.go",
		edits: []edit{{"%100000)", "%10000)"}},
		tests: [][]string{run("./client/safety", "")}},

	// mls framing (RFC 9420 §6).
	{name: "mls/membership-tag-unchecked", file: "mls/framing.go",
		edits: []edit{{"if subtle.ConstantTimeCompare(want, m.MembershipTag) != 1 {", "if subtle.ConstantTimeCompare(want, m.MembershipTag) != 1 && false {"}},
		tests: [][]string{run("./mls", "^(TestProcessRejectsAndLeavesStateUnchanged|TestGroupProperties)$"), run("./mls/conformance", "^TestSharedVectors$/message-protection")}},
	{name: "mls/signature-unchecked", file: "mls/framing.go",
		edits: []edit{{`"FramedContentTBS", w.Bytes(), a.Auth.Signature); err != nil {`, `"FramedContentTBS", w.Bytes(), a.Auth.Signature); err != nil && false {`}},
		tests: [][]string{run("./mls", "^(TestProcessRejectsAndLeavesStateUnchanged|TestGroupProperties)$"), run("./mls/conformance", "^TestSharedVectors$/message-protection")}},
	{name: "mls/private-content-aad-dropped", file: "mls/framing.go",
		edits: []edit{{"encodePrivateContentAAD(c), pt)", "nil, pt)"}, {"encodePrivateContentAAD(&a.Content), m.Ciphertext)", "nil, m.Ciphertext)"}},
		tests: [][]string{run("./mls", "^(TestProcessRejectsAndLeavesStateUnchanged|TestGroupProperties)$"), run("./mls/conformance", "^TestSharedVectors$/message-protection")}},
	{name: "mls/reuse-guard-ignored", file: "mls/framing.go",
		edits: []edit{{"keyschedule.ApplyReuseGuard(kn.Nonce, guard)", "kn.Nonce"}, {"keyschedule.ApplyReuseGuard(kn.Nonce, sd.reuseGuard)", "kn.Nonce"}},
		tests: [][]string{run("./mls", "^(TestProcessRejectsAndLeavesStateUnchanged|TestGroupProperties)$"), run("./mls/conformance", "^TestSharedVectors$/message-protection")}},

	// client/filecrypt: STREAM (chunk order, truncation).
	{name: "filecrypt/final-flag-dropped", file: "client/filecrypt/filecrypt.go",
		edits: []edit{{"\t\tn[11] = 1\n", ""}},
		tests: [][]string{run("./client/filecrypt", "")}},
	{name: "filecrypt/counter-not-in-nonce", file: "client/filecrypt/filecrypt.go",
		edits: []edit{{"binary.BigEndian.PutUint64(n[3:11], counter)", "binary.BigEndian.PutUint64(n[3:11], 0*counter)"}},
		tests: [][]string{run("./client/filecrypt", "")}},
	{name: "filecrypt/empty-final-chunk-accepted", file: "client/filecrypt/filecrypt.go",
		edits: []edit{{"if last && len(pt) == 0 && d.counter > 0 {", "if last && len(pt) == 0 && d.counter > 0 && false {"}},
		tests: [][]string{run("./client/filecrypt", "")}},

	// moderation decisions: what matches, block before hold.
	{name: "moderation/low-quality-matched", file: "moderation/service.go",
		edits: []edit{{"// PDQ ID → smallest distance over the variants\n\tif m.PDQ != nil && m.PDQ.Quality >= s.cfg.MinQuality {", "// PDQ ID → smallest distance over the variants\n\tif m.PDQ != nil {"}},
		tests: [][]string{run("./moderation", ""), run("./channels", "")}},
	{name: "moderation/threshold-zero", file: "moderation/service.go",
		edits: []edit{{"range s.pdqIdx.Lookup(h, s.cfg.Threshold) {", "range s.pdqIdx.Lookup(h, 0) {"}},
		tests: [][]string{run("./moderation", ""), run("./channels", "")}},
	{name: "moderation/sha256-not-looked-up", file: "moderation/service.go",
		edits: []edit{{"range s.exact.LookupSHA256(m.Digests.SHA256) {", "range s.exact.LookupSHA256([32]byte{}) {"}},
		tests: [][]string{run("./moderation", ""), run("./channels", "")}},
	{name: "moderation/hold-sorts-before-block", file: "moderation/service.go",
		edits: []edit{{"\t\t\tif a.Action == hashlist.Block {\n\t\t\t\treturn -1", "\t\t\tif a.Action != hashlist.Block {\n\t\t\t\treturn -1"}},
		tests: [][]string{run("./moderation", ""), run("./channels", "")}},
	{name: "moderation/block-published-as-held", file: "channels/service.go",
		edits: []edit{{"\t\t\tif mt.Action == hashlist.Block {\n\t\t\t\tblocked = append", "\t\t\tif false {\n\t\t\t\tblocked = append"}},
		tests: [][]string{run("./channels", "")}},
}

func main() {
	filter := flag.String("run", "", "only the mutants whose name matches this regular expression")
	list := flag.Bool("list", false, "list the mutants and exit")
	keep := flag.Bool("keep", false, "keep the copy of the module (its path is printed)")
	flag.Parse()
	re, err := regexp.Compile(*filter)
	if err != nil {
		fail("-run: %v", err)
	}
	var chosen []mutant
	for _, m := range mutants {
		if re.MatchString(m.name) {
			chosen = append(chosen, m)
		}
	}
	if *list {
		for _, m := range chosen {
			fmt.Printf("%-40s %s\n", m.name, m.file)
		}
		return
	}
	if len(chosen) == 0 {
		fail("no mutant matches %q", *filter)
	}
	root, err := moduleRoot()
	if err != nil {
		fail("%v", err)
	}
	work, err := os.MkdirTemp("", "parley-mutants-")
	if err != nil {
		fail("%v", err)
	}
	if *keep {
		fmt.Println("copy of the module:", work)
	} else {
		defer os.RemoveAll(work)
		// An interrupted run removes its copy too.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			os.RemoveAll(work)
			os.Exit(130)
		}()
	}
	if err := copyModule(root, work); err != nil {
		fail("copy the module: %v", err)
	}
	// The copy is not next to ../shared: point the tests at it.
	env := os.Environ()
	if os.Getenv("PARLEY_SHARED") == "" {
		env = append(env, "PARLEY_SHARED="+filepath.Join(filepath.Dir(root), "shared"))
	}

	type score struct{ killed, total int }
	scores := map[string]*score{}
	var areas, survivors []string
	for _, m := range chosen {
		area, _, _ := strings.Cut(m.name, "/")
		if scores[area] == nil {
			scores[area] = &score{}
			areas = append(areas, area)
		}
		scores[area].total++
		start := time.Now()
		killed, by, err := try(work, env, m)
		if err != nil {
			if !*keep {
				os.RemoveAll(work)
			}
			fail("%s: %v", m.name, err)
		}
		if killed {
			scores[area].killed++
			fmt.Printf("killed    %-40s by %s (%s)\n", m.name, by, time.Since(start).Round(time.Second))
		} else {
			survivors = append(survivors, m.name)
			fmt.Printf("SURVIVED  %-40s (%s)\n", m.name, time.Since(start).Round(time.Second))
		}
	}
	fmt.Println()
	total, killed := 0, 0
	for _, a := range areas {
		s := scores[a]
		total, killed = total+s.total, killed+s.killed
		fmt.Printf("%-12s %d/%d killed\n", a, s.killed, s.total)
	}
	fmt.Printf("%-12s %d/%d killed\n", "all", killed, total)
	if len(survivors) > 0 {
		fmt.Printf("survivors: %s\n", strings.Join(survivors, ", "))
		if !*keep {
			os.RemoveAll(work) // os.Exit skips the deferred removal
		}
		os.Exit(1)
	}
}

// try applies m to the copy, runs its tests until one fails, and restores
// the file.
func try(work string, env []string, m mutant) (killed bool, by string, err error) {
	path := filepath.Join(work, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return false, "", err
	}
	mutated := orig
	for _, e := range m.edits {
		if n := bytes.Count(mutated, []byte(e.old)); n != 1 {
			return false, "", fmt.Errorf("%s holds %q %d times, want once: update the mutant", m.file, e.old, n)
		}
		mutated = bytes.Replace(mutated, []byte(e.old), []byte(e.new), 1)
	}
	if err := os.WriteFile(path, mutated, 0o644); err != nil {
		return false, "", err
	}
	defer os.WriteFile(path, orig, 0o644)
	if out, err := goCmd(work, env, "vet", "./"+filepath.Dir(m.file)); err != nil {
		return false, "", fmt.Errorf("the mutant does not compile or vet:\n%s", out)
	}
	for _, args := range m.tests {
		out, err := goCmd(work, env, append([]string{"test", "-count=1", "-timeout", "10m"}, args...)...)
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return false, "", err
			}
			if bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")) {
				return false, "", fmt.Errorf("go test %v did not build:\n%s", args, out)
			}
			return true, strings.Join(args, " "), nil
		}
	}
	return false, "", nil
}

func goCmd(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, env
	return cmd.CombinedOutput()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this inside the Parley module")
	}
	return filepath.Dir(gomod), nil
}

// copyModule copies the files git knows of (tracked or not ignored), as
// they are in the working tree, from root to dst.
func copyModule(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, data, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutants: "+format+"\n", args...)
	os.Exit(2)
}
