package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobpg"
	"github.com/parleychat/parley/store/blobs3"
	"github.com/parleychat/parley/store/blobstore"
	"github.com/parleychat/parley/web"
)

// blobBackend is where attachments are: a directory (store/blobstore) or
// an S3-compatible bucket (store/blobs3).
type blobBackend interface {
	store.Blobs
	Close() error
}

// The environment variables holding the S3 credentials when
// --blobs-credentials is not given (never flags: a command line is
// visible to every user of the machine).
const (
	envS3KeyID  = "PARLEY_S3_ACCESS_KEY_ID"
	envS3Secret = "PARLEY_S3_SECRET_ACCESS_KEY"
)

// s3IndexFile is the SQLite index of an S3 blob store on a single node
// (no --db), in the data directory.
const s3IndexFile = "blobs-s3-index/blobs.db"

const blobsFlagHelp = "where attachments are stored: a `directory` (default DATA/blobs), or an S3-compatible bucket as " +
	"s3://BUCKET/PREFIX?endpoint=HOST:PORT[&region=R][&ca=PEM-FILE][&tls=off][&sweep=24h|off][&presign=5m] (AWS S3, MinIO, Ceph RGW, ...): objects are named PREFIX/<blob id>, " +
	"spoken to over TLS (tls=off only for an endpoint on loopback), with the credentials from --blobs-credentials or " +
	envS3KeyID + " and " + envS3Secret + " (never in the URL). The bucket must exist; it is checked at start-up. " +
	"Objects of uploads a crash interrupted are swept once per sweep interval (off: leave it to a bucket lifecycle rule). " +
	"With presign=DURATION, downloads are redirected to pre-signed URLs of the objects, and clients upload to pre-signed URLs, valid that long, so attachments' bytes go between clients and the bucket without passing through parleyd (the clients must reach the endpoint; the web client too with --web-direct-transfers). " +
	"The attachments' index (owner, size, time, quotas, expiry) is in --db if given, else in DATA/" + s3IndexFile + ". " +
	"With --db and a directory, every node must see the same directory (a shared mount); with a bucket, nothing is shared but the bucket and the database"

const webDirectFlagHelp = "the `origin` users open the web client at (https://chat.example.org): its attachments then go to and from the --blobs bucket directly, as the CLI's do, " +
	"instead of through parleyd. Needs an s3:// --blobs with presign=; the page's Content-Security-Policy names the bucket's endpoint, and the bucket's CORS rules must let this origin " +
	"PUT and GET with the headers if-none-match and parley-follow-redirect, and not with Authorization: no AllowedHeader * (checked at start-up where the endpoint serves them; docs/web.md)"

const blobsCredentialsHelp = "`file` (mode 0600) holding the S3 access key id and secret access key of an s3:// --blobs or --channel-media, as lines " +
	"access_key_id=... and secret_access_key=...; default: the environment variables " + envS3KeyID + " and " + envS3Secret

// openBlobs opens the attachments' store for "parleyd serve".
func openBlobs(ctx context.Context, dir, db, blobs, credsFile string, log *slog.Logger) (blobBackend, error) {
	if strings.HasPrefix(blobs, "s3://") {
		cfg, err := s3Config("--blobs", blobs, credsFile)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log
		var idx blobstore.Index
		if db != "" {
			idx, err = blobpg.OpenIndex(ctx, db)
		} else {
			idx, err = blobstore.OpenSQLiteIndex(filepath.Join(dir, s3IndexFile))
		}
		if err != nil {
			return nil, err
		}
		s, err := blobs3.Open(ctx, cfg, idx)
		if err != nil {
			idx.Close()
			return nil, fmt.Errorf("--blobs %s: %w", redactS3(blobs), err)
		}
		log.Info("attachments in S3-compatible storage", "endpoint", cfg.Endpoint, "bucket", cfg.Bucket, "prefix", cfg.Prefix, "tls", !cfg.Insecure)
		return s, nil
	}
	if strings.Contains(blobs, "://") {
		return nil, fmt.Errorf("--blobs %q: want a directory or an s3:// URL", redactS3(blobs))
	}
	if blobs == "" {
		blobs = filepath.Join(dir, "blobs")
	}
	if db != "" {
		return blobpg.Open(ctx, blobs, db)
	}
	return blobstore.Open(blobs)
}

const channelMediaFlagHelp = "where public channels' media files are stored: empty (the default) keeps them in the channels database; " +
	"s3://BUCKET/PREFIX?endpoint=HOST:PORT[&region=R][&ca=PEM-FILE][&tls=off][&sweep=24h|off][&presign=1m] puts each in an object named PREFIX/<random id> of an S3-compatible bucket, " +
	"with the credentials of --blobs-credentials (or " + envS3KeyID + " and " + envS3Secret + "), so that with --db the database holds hashes and text, not the files. " +
	"Posts live until deleted: no lifecycle rule (such as the attachments' retention) may cover that bucket and prefix. " +
	"Files stored before stay where they are. Objects of erased posts are removed at once (retried every minute); objects of posts a crash interrupted are swept once per sweep interval. " +
	"With presign=DURATION (at most 15m), clients that ask (the CLI) are redirected to pre-signed URLs valid that long: a URL handed out before a takedown (by a moderator or a hash list) works until it expires (a deleted post's objects are gone at once)"

// maxMediaPresign bounds how long a channel file's pre-signed link
// lives: a post taken down after the link was handed out keeps its
// objects (for an appeal), so the link works until it expires.
const maxMediaPresign = 15 * time.Minute

// openChannelMedia opens --channel-media: nil if empty.
func openChannelMedia(ctx context.Context, raw, blobsURL, credsFile string, log *slog.Logger) (*blobs3.Media, time.Duration, error) {
	if raw == "" {
		return nil, 0, nil
	}
	if err := separateFromBlobs(raw, blobsURL); err != nil {
		return nil, 0, err
	}
	if !strings.HasPrefix(raw, "s3://") {
		return nil, 0, fmt.Errorf("--channel-media %q: want an s3:// URL (or nothing, to keep the files in the channels database)", redactS3(raw))
	}
	cfg, err := s3Config("--channel-media", raw, credsFile)
	if err != nil {
		return nil, 0, err
	}
	if cfg.Presign > maxMediaPresign {
		return nil, 0, fmt.Errorf("--channel-media: presign=%v is longer than %v: a link handed out before a post is taken down (by a moderator or a hash list) works until it expires, so keep it short", cfg.Presign, maxMediaPresign)
	}
	cfg.Logger = log
	m, err := blobs3.OpenMedia(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("--channel-media %s: %w", redactS3(raw), err)
	}
	log.Info("channel media in S3-compatible storage", "endpoint", cfg.Endpoint, "bucket", cfg.Bucket, "prefix", cfg.Prefix, "tls", !cfg.Insecure)
	return m, cfg.SweepInterval, nil
}

// s3Config reads an s3:// URL given to flag (--blobs, --channel-media)
// and the credentials.
func s3Config(flag, raw, credsFile string) (blobs3.Config, error) {
	var cfg blobs3.Config
	u, err := url.Parse(raw)
	if err != nil {
		return cfg, fmt.Errorf("%s: not a valid s3:// URL (want s3://BUCKET/PREFIX?endpoint=HOST:PORT)", flag)
	}
	if u.User != nil {
		return cfg, errors.New(flag + ": credentials do not go in the URL (it shows in the process list and the logs): put them in a --blobs-credentials file or in " + envS3KeyID + " and " + envS3Secret)
	}
	cfg.Bucket = u.Host
	if cfg.Bucket == "" {
		return cfg, fmt.Errorf(flag+" %s: no bucket (want s3://BUCKET/PREFIX?endpoint=HOST:PORT)", raw)
	}
	cfg.Prefix = strings.Trim(u.Path, "/")
	for _, seg := range strings.Split(cfg.Prefix, "/") {
		if seg == "." || seg == ".." {
			return cfg, fmt.Errorf(flag+" %s: the prefix may not contain . or .. segments", raw)
		}
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "tls", "ca", "sweep", "presign":
		default:
			return cfg, fmt.Errorf(flag+" %s: unknown parameter %q (known: endpoint, region, tls, ca, sweep, presign)", raw, k)
		}
	}
	cfg.Endpoint, cfg.Region = q.Get("endpoint"), q.Get("region")
	if cfg.Endpoint == "" {
		return cfg, fmt.Errorf(flag+" %s: no endpoint: add ?endpoint=HOST:PORT (for AWS, ?endpoint=s3.REGION.amazonaws.com&region=REGION)", raw)
	}
	if strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/") {
		return cfg, fmt.Errorf(flag+": endpoint %q: want HOST:PORT without a scheme (TLS is on unless tls=off)", cfg.Endpoint)
	}
	switch q.Get("tls") {
	case "", "on":
	case "off":
		host := cfg.Endpoint
		if h, _, err := net.SplitHostPort(cfg.Endpoint); err == nil {
			host = h
		}
		if !isLoopback(host) {
			return cfg, fmt.Errorf(flag+": tls=off with endpoint %s, which is not a loopback address: the credentials' signatures and every attachment would cross the network in clear; use TLS (ca=FILE for a private CA)", cfg.Endpoint)
		}
		cfg.Insecure = true
	default:
		return cfg, fmt.Errorf(flag+": tls=%q: want on or off", q.Get("tls"))
	}
	switch sw := q.Get("sweep"); sw {
	case "":
	case "off":
		cfg.SweepInterval = -1
	default:
		d, err := time.ParseDuration(sw)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf(flag+": sweep=%q: want a duration such as 24h, or off", sw)
		}
		cfg.SweepInterval = d
	}
	switch ps := q.Get("presign"); ps {
	case "", "off":
	default:
		d, err := time.ParseDuration(ps)
		if err != nil || d < time.Second || d > 7*24*time.Hour {
			return cfg, fmt.Errorf(flag+": presign=%q: want how long a download's pre-signed URL is valid, 1s to 168h (S3's limit), such as 5m; or off", ps)
		}
		cfg.Presign = d
	}
	if ca := q.Get("ca"); ca != "" {
		pemData, err := os.ReadFile(ca)
		if err != nil {
			return cfg, fmt.Errorf(flag+": ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pemData) {
			return cfg, fmt.Errorf(flag+": ca %s holds no PEM certificate", ca)
		}
	}
	cfg.AccessKeyID, cfg.SecretAccessKey, err = s3Credentials(credsFile)
	return cfg, err
}

// s3Credentials reads the access key from the file, or else the
// environment.
func s3Credentials(file string) (keyID, secret string, err error) {
	if file == "" {
		keyID, secret = os.Getenv(envS3KeyID), os.Getenv(envS3Secret)
		if keyID == "" || secret == "" {
			return "", "", fmt.Errorf("--blobs s3://...: no credentials: set %s and %s, or pass --blobs-credentials FILE", envS3KeyID, envS3Secret)
		}
		return keyID, secret, nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", "", fmt.Errorf("--blobs-credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", "", fmt.Errorf("--blobs-credentials %s: mode %v lets other users read the secret key: chmod 600 %s", file, fi.Mode().Perm(), file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("--blobs-credentials: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case ok && k == "access_key_id":
			keyID = v
		case ok && k == "secret_access_key":
			secret = v
		default:
			// The line is not quoted back: it may hold the secret.
			return "", "", fmt.Errorf("--blobs-credentials %s: line %d: want access_key_id=KEY or secret_access_key=SECRET", file, line)
		}
	}
	if keyID == "" || secret == "" {
		return "", "", fmt.Errorf("--blobs-credentials %s: want both access_key_id=KEY and secret_access_key=SECRET", file)
	}
	return keyID, secret, nil
}

// redactS3 is a --blobs value fit for errors and logs.
func redactS3(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// webDirectTransfers checks --web-direct-transfers against the blob
// store and returns how the web client is to be served: with the
// bucket's origin in its page's policy, or as before if the flag is
// empty. Rules the bucket serves that would refuse the page stop the
// start-up (every upload from the web client would fail); an endpoint
// that does not serve its rules gets a warning.
func webDirectTransfers(ctx context.Context, webOrigin string, blobs blobBackend, log *slog.Logger) (web.Options, error) {
	if webOrigin == "" {
		return web.Options{}, nil
	}
	if err := web.CheckOrigin(webOrigin); err != nil {
		return web.Options{}, fmt.Errorf("--web-direct-transfers: %w", err)
	}
	s3, ok := blobs.(*blobs3.Store)
	if !ok {
		return web.Options{}, errors.New("--web-direct-transfers: attachments are not in a bucket: give --blobs s3://...&presign=DURATION")
	}
	origin, err := s3.BrowserOrigin(ctx)
	if errors.Is(err, blobs3.ErrNoPresign) {
		return web.Options{}, errors.New("--web-direct-transfers: the --blobs bucket hands out no pre-signed URLs: add presign=DURATION to its URL (e.g. &presign=5m)")
	}
	if err != nil {
		return web.Options{}, fmt.Errorf("--web-direct-transfers: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	switch err := s3.CheckBrowserAccess(cctx, webOrigin); {
	case errors.Is(err, blobs3.ErrCORSUnreadable):
		log.Warn("web client's direct transfers: the bucket's CORS rules could not be checked; browsers refuse the transfers unless they let the web origin PUT and GET (docs/web.md)", "web_origin", webOrigin, "err", err)
	case err != nil:
		return web.Options{}, fmt.Errorf("--web-direct-transfers %s: %w", webOrigin, err)
	}
	log.Info("web client's attachments go directly to the bucket", "web_origin", webOrigin, "object_store", origin)
	return web.Options{ObjectStore: origin}, nil
}

// separateFromBlobs refuses a --channel-media whose objects could be
// among --blobs' (the same endpoint and bucket, one prefix inside the
// other): both name objects alike, and each store's sweep removes the
// objects its own database does not hold, which would delete the
// other's files.
func separateFromBlobs(media, blobs string) error {
	m, errM := url.Parse(media)
	b, errB := url.Parse(blobs)
	if errM != nil || errB != nil || b.Scheme != "s3" {
		return nil // a directory --blobs, or a URL the stores refuse themselves
	}
	if m.Host != b.Host || m.Query().Get("endpoint") != b.Query().Get("endpoint") {
		return nil
	}
	mp, bp := strings.Trim(m.Path, "/")+"/", strings.Trim(b.Path, "/")+"/"
	if mp == "/" || bp == "/" || strings.HasPrefix(mp, bp) || strings.HasPrefix(bp, mp) {
		return fmt.Errorf("--channel-media %s and --blobs %s share bucket %q with overlapping prefixes: each store's sweep would delete the other's objects; give them separate prefixes (e.g. s3://%s/media and s3://%s/att) or buckets",
			redactS3(media), redactS3(blobs), m.Host, m.Host, m.Host)
	}
	return nil
}
