package s3test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// VersityVersion is the Versity S3 Gateway release the tests run
// (scripts/install-versitygw installs it).
const VersityVersion = "v1.8.0"

// EnvVersity names the variable holding the path of a versitygw binary
// to use instead of looking for one.
const EnvVersity = "PARLEY_TEST_VERSITYGW"

// StartVersity starts a real S3 server for the test: the Versity S3
// Gateway (github.com/versity/versitygw, Apache 2.0; an S3 protocol
// server over a POSIX directory, used in production), in a child
// process on a loopback port over TLS, with one bucket created, stopped
// when the test ends. The fake Start serves most tests; this one checks
// that what they assume of S3 (signatures, pre-signed URLs, conditional
// writes, multipart uploads) holds for a server that was not written for
// them. Keys, Get, Put and Remove work on the bucket's directory; the
// fake's counters and FailUploads do not exist here.
//
// The binary is found at $PARLEY_TEST_VERSITYGW, on PATH, or in Go's
// bin directory; if it is missing the test fails saying how to install
// it (scripts/install-versitygw): it is never skipped.
func StartVersity(t testing.TB) *Server {
	t.Helper()
	bin, err := versityBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Server{Bucket: "parley-test", AccessKeyID: "PARLEYTESTKEY", SecretAccessKey: "parley-test-secret", dir: root}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	s.RootCAs, s.CAFile = selfSigned(t, certFile, keyFile)

	// A free port: listen, note it, close, hand it to the child (a
	// collision with another process in between fails the start, which
	// is retried).
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoint = l.Addr().String()
		l.Close()
		cmd := exec.Command(bin, "--access", s.AccessKeyID, "--secret", s.SecretAccessKey, "--port", s.Endpoint,
			"--cert", certFile, "--key", keyFile, "--quiet", "posix", root)
		var log strings.Builder
		cmd.Stdout, cmd.Stderr = &log, &log
		if runtime.GOOS == "linux" {
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if err := s.waitReady(exited); err != nil {
			stop()
			if attempt < 2 {
				continue
			}
			t.Fatalf("versitygw did not start: %v\n%s", err, log.String())
		}
		t.Cleanup(stop)
		break
	}
	if err := s.admin(t).MakeBucket(context.Background(), s.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("versitygw: create the bucket: %v", err)
	}
	return s
}

// admin is an S3 client of a StartVersity server with its credentials.
func (s *Server) admin(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKeyID, s.SecretAccessKey, ""), Secure: true,
		Transport: &http.Transport{TLSClientConfig: tlsConfig(s.RootCAs)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// SetCORS sets the bucket's CORS rules on a StartVersity server (none:
// removes them), as an operator would for browsers to use pre-signed URLs.
func (s *Server) SetCORS(t testing.TB, rules ...cors.Rule) {
	t.Helper()
	if s.dir == "" {
		t.Fatal("s3test: SetCORS needs a StartVersity server (the fake has no CORS)")
	}
	var cfg *cors.Config
	if len(rules) > 0 {
		cfg = cors.NewConfig(rules)
	}
	if err := s.admin(t).SetBucketCors(context.Background(), s.Bucket, cfg); err != nil {
		t.Fatalf("versitygw: set the bucket's CORS rules: %v", err)
	}
}

// waitReady waits until the gateway answers TLS on its port.
func (s *Server) waitReady(exited <-chan struct{}) error {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(s.RootCAs)}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("it exited")
		default:
		}
		if resp, err := hc.Get("https://" + s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s in 30s", s.Endpoint)
}

func versityBinary() (string, error) {
	if p := os.Getenv(EnvVersity); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gobin = filepath.Join(strings.TrimSpace(string(out)), "bin")
		}
	}
	if p := filepath.Join(gobin, "versitygw"); gobin != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("s3test: no versitygw binary (the real S3 server these tests run): run scripts/install-versitygw (go install github.com/versity/versitygw/cmd/versitygw@%s), or set %s", VersityVersion, EnvVersity)
}

// selfSigned writes a P-256 certificate for 127.0.0.1 and its key.
func selfSigned(t testing.TB, certFile, keyFile string) (*x509.CertPool, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "s3test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, certFile
}

// dirKeys lists the object keys under the bucket's directory.
func (s *Server) dirKeys(t testing.TB) []string {
	t.Helper()
	base := filepath.Join(s.dir, s.Bucket)
	var keys []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".sgwtmp") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}
