// Package blobs3 implements store.Blobs on S3-compatible object storage
// (AWS S3, MinIO, Ceph RGW, a cloud's), through
// github.com/minio/minio-go/v7: each blob is one object named PREFIX+id,
// where id is the blob's random id (32 hex digits) and nothing of the
// request. Who uploaded each blob, its size and when stay in a
// store/blobstore.Index: SQLite on a single node, PostgreSQL
// (store/blobpg) when several nodes share --db, so quotas, deletion by
// the owner and expiry hold across nodes exactly as with a directory.
//
// Ordering, so that the index never names an object that was not stored:
// Put uploads the object first and commits its index row second (the
// quota is checked atomically with that insert); the upload is
// acknowledged only after both. If the insert fails the object is
// removed at once. A node that dies between the two leaves an object no
// row names (an orphan): Sweep lists the prefix and removes objects older
// than a grace period that the index does not know, and incomplete
// multipart uploads older than it; DeleteExpired runs it at most once
// per SweepInterval. Deletion goes the other way: the object first, then
// the row, so a failure in between leaves a row whose object is gone
// (Open says so clearly, and expiry removes the row) rather than an
// object nothing will ever delete.
//
// Bodies are the clients' ciphertext, streamed both ways: an upload is
// read in parts of PartSize bytes (the only buffer), a download streams
// the object's body and supports Range requests (the returned reader is
// an io.ReadSeeker over ranged GETs).
package blobs3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/parleychat/parley/store"
	"github.com/parleychat/parley/store/blobstore"
)

// Sentinel errors of Open's start-up check, so that a caller can tell the
// operator which setting to fix.
var (
	// ErrNoBucket: the endpoint answered, and the bucket does not exist.
	ErrNoBucket = errors.New("blobs3: bucket does not exist")
	// ErrCredentials: the endpoint refused the access key or its
	// signature, or the key may not read or write the bucket.
	ErrCredentials = errors.New("blobs3: credentials refused")
	// ErrUnreachable: no S3 answer from the endpoint (connection refused,
	// DNS, timeout, TLS handshake with a plain-HTTP server, ...).
	ErrUnreachable = errors.New("blobs3: endpoint unreachable")
	// ErrObjectMissing: the index names a blob whose object is not in
	// the bucket (removed behind the server's back, or a bucket restored
	// from an older backup). It wraps store.ErrNotFound, so clients get a
	// 404; Open logs it as an error for the operator.
	ErrObjectMissing = fmt.Errorf("blobs3: object missing from the bucket: %w", store.ErrNotFound)
)

// Config says where the objects are.
type Config struct {
	// Endpoint is the S3 endpoint's host[:port], without a scheme
	// (s3.eu-central-1.amazonaws.com, minio.internal:9000).
	Endpoint string
	// Insecure speaks plain HTTP instead of TLS (loopback test servers).
	Insecure bool
	// Region is the bucket's region; empty asks the endpoint.
	Region string
	// Bucket must exist; Open checks it.
	Bucket string
	// Prefix is prepended to every object's key ("" or ending in "/").
	Prefix string
	// AccessKeyID and SecretAccessKey sign requests (AWS signature V4).
	AccessKeyID, SecretAccessKey string
	// RootCAs, if set, are the certificate authorities trusted for the
	// endpoint's TLS certificate instead of the system's (a private CA).
	RootCAs *x509.CertPool
	// PartSize is the size of one part of a multipart upload and the
	// most an upload holds in memory (default 8 MiB; at least 5 MiB,
	// S3's minimum).
	PartSize int64
	// MaxRetries is how many times one request is tried against
	// transient failures (default 3).
	MaxRetries int
	// OrphanGrace is how old an object must be before Sweep may remove it
	// for want of an index row (default 1 hour: longer than any upload).
	OrphanGrace time.Duration
	// SweepInterval is how often DeleteExpired also runs Sweep (default
	// 24 hours; negative: never).
	SweepInterval time.Duration
	// Presign, if positive, is how long the pre-signed URLs DownloadURL
	// and UploadURL hand out are valid: the server then redirects
	// downloads to the bucket, and clients upload to it directly,
	// instead of passing the bytes through the server (store.BlobURLs,
	// store.BlobDirectUploads). Zero hands out none. The bucket must be
	// reachable by the clients.
	Presign time.Duration
	// Logger receives what the operator should know (default: discard).
	Logger *slog.Logger
}

const (
	defaultPartSize = 8 << 20
	minPartSize     = 5 << 20
	// maxPresign is the longest a signature V4 pre-signed URL may be
	// valid.
	maxPresign = 7 * 24 * time.Hour
)

// bucket is the connection to one bucket under one prefix, checked at
// start-up: the attachments' Store and channel Media each have one.
type bucket struct {
	c   *minio.Client
	cfg Config
	log *slog.Logger
	// conditional: the endpoint honours If-None-Match: * on PUT, so the
	// upload URLs are signed to create their object once (check).
	conditional bool
}

// Store is a store.Blobs whose bodies are objects in one bucket.
type Store struct {
	*bucket
	idx    blobstore.Index
	sweepM sync.Mutex
	swept  time.Time // last Sweep started by DeleteExpired
}

var _ store.Blobs = (*Store)(nil)

// Open connects to the endpoint and checks, before anything is served,
// that the bucket exists and that the credentials may write, read and
// delete objects in it (a probe object under the prefix, removed at
// once). Its errors wrap ErrNoBucket, ErrCredentials or ErrUnreachable
// and say what to fix. The Store closes idx when it is closed.
func Open(ctx context.Context, cfg Config, idx blobstore.Index) (*Store, error) {
	b, err := openBucket(ctx, cfg, cfg.Presign > 0)
	if err != nil {
		return nil, err
	}
	return &Store{bucket: b, idx: idx}, nil
}

// openBucket connects to cfg's bucket and runs the start-up check, with
// the probe of conditional writes if uploads will use them.
func openBucket(ctx context.Context, cfg Config, probeConditional bool) (*bucket, error) {
	if cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("blobs3: endpoint %q: want host[:port], without a scheme or path", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("blobs3: no bucket")
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Presign < 0 || cfg.Presign > maxPresign || (cfg.Presign > 0 && cfg.Presign < time.Second) {
		return nil, fmt.Errorf("blobs3: pre-signed URLs valid for %v: want 1s to 7 days (S3's limit), or 0 for none", cfg.Presign)
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = defaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("blobs3: part size %d is under S3's minimum of 5 MiB", cfg.PartSize)
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 3
	}
	if cfg.OrphanGrace <= 0 {
		cfg.OrphanGrace = time.Hour
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 24 * time.Hour
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr, err := minio.DefaultTransport(!cfg.Insecure)
	if err != nil {
		return nil, fmt.Errorf("blobs3: %w", err)
	}
	if cfg.RootCAs != nil && tr.TLSClientConfig != nil {
		tr.TLSClientConfig.RootCAs = cfg.RootCAs
	}
	opts := &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		Secure:     !cfg.Insecure,
		Region:     cfg.Region,
		Transport:  tr,
		MaxRetries: cfg.MaxRetries,
	}
	c, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("blobs3: endpoint %q: %w", cfg.Endpoint, err)
	}
	s := &bucket{c: c, cfg: cfg, log: log}
	// The check tries each request once: a wrong endpoint fails in
	// seconds, not after the retries meant for a flaky network.
	opts.MaxRetries = 1
	check, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("blobs3: endpoint %q: %w", cfg.Endpoint, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.check(cctx, check, probeConditional); err != nil {
		return nil, err
	}
	return s, nil
}

// check is Open's start-up check.
func (s *bucket) check(ctx context.Context, c *minio.Client, probeConditional bool) error {
	where := fmt.Sprintf("bucket %q at %s", s.cfg.Bucket, s.endpointURL())
	ok, err := c.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.startupError(where, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s: create it (for example \"mc mb ALIAS/%s\" or \"aws s3 mb s3://%s\"), or fix the bucket name in --blobs",
			ErrNoBucket, where, s.cfg.Bucket, s.cfg.Bucket)
	}
	probe := s.cfg.Prefix + "parleyd-probe-" + newID()
	body := []byte("parleyd start-up check; deleted at once")
	if _, err := c.PutObject(ctx, s.cfg.Bucket, probe, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		return s.startupError(where+": writing a probe object", err)
	}
	obj, err := c.GetObject(ctx, s.cfg.Bucket, probe, minio.GetObjectOptions{})
	if err == nil {
		var got []byte
		got, err = io.ReadAll(obj)
		obj.Close()
		if err == nil && !bytes.Equal(got, body) {
			err = fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(body))
		}
	}
	if err != nil {
		c.RemoveObject(context.WithoutCancel(ctx), s.cfg.Bucket, probe, minio.RemoveObjectOptions{})
		return s.startupError(where+": reading a probe object back", err)
	}
	if probeConditional {
		if err := s.checkConditional(ctx, c, probe, body); err != nil {
			c.RemoveObject(context.WithoutCancel(ctx), s.cfg.Bucket, probe, minio.RemoveObjectOptions{})
			return s.startupError(where+": probing conditional writes (If-None-Match: *)", err)
		}
	}
	if err := c.RemoveObject(ctx, s.cfg.Bucket, probe, minio.RemoveObjectOptions{}); err != nil {
		return s.startupError(where+": deleting a probe object", err)
	}
	return nil
}

// checkConditional finds out whether the endpoint honours a PUT's
// If-None-Match: * (S3's conditional write: AWS since 2024, MinIO), with
// the probe object, which exists: the PUT must be refused. Upload URLs
// are signed with the condition only if it is; otherwise an upload URL
// could put other bytes over its checked object until it expires, which
// is logged for the operator. A server that ignores the condition
// overwrites the probe, which is removed next anyway. Only those two
// answers (the PUT done, or 501 NotImplemented) turn the condition off:
// any other failure (a timeout, a 5xx, a policy's AccessDenied) says
// nothing about it and is returned, so that one passing failure at
// start-up cannot leave every upload URL reusable for the life of the
// process.
func (s *bucket) checkConditional(ctx context.Context, c *minio.Client, probe string, body []byte) error {
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	_, err := c.PutObject(ctx, s.cfg.Bucket, probe, bytes.NewReader(body), int64(len(body)), opts)
	resp := minio.ToErrorResponse(err)
	switch {
	case err != nil && resp.StatusCode == http.StatusPreconditionFailed:
		s.conditional = true
		return nil
	case err != nil && resp.StatusCode != http.StatusNotImplemented && resp.Code != "NotImplemented":
		return err
	}
	s.log.Warn("blobs3: the object store does not honour conditional writes (If-None-Match: *); a pre-signed upload URL can replace its object with bytes of the same size until it expires (presign=), which can only spoil the uploader's own attachment",
		"answer", describeOrNil(err))
	return nil
}

func describeOrNil(err error) string {
	if err == nil {
		return "the PUT over an existing object succeeded"
	}
	return describe(err)
}

func (s *bucket) endpointURL() string {
	scheme := "https"
	if s.cfg.Insecure {
		scheme = "http"
	}
	return scheme + "://" + s.cfg.Endpoint
}

// startupError classifies an error of the start-up check and says what
// to do about it.
func (s *bucket) startupError(where string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" ||
		resp.Code == "InvalidToken" || resp.Code == "ExpiredToken" || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: %s: %s: check PARLEY_S3_ACCESS_KEY_ID and PARLEY_S3_SECRET_ACCESS_KEY (or the --blobs-credentials file), and that the key may read, write and delete objects in the bucket",
			ErrCredentials, where, describe(err))
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%w: %s: create it, or fix the bucket name in --blobs", ErrNoBucket, where)
	case resp.Code != "" && resp.StatusCode != 0:
		return fmt.Errorf("blobs3: %s: the endpoint answered %s", where, describe(err))
	}
	hint := "check the endpoint's host and port, and that the S3 server is running"
	if !s.cfg.Insecure {
		hint += "; it is spoken to over TLS (for a plain-HTTP server on loopback, add tls=off)"
	}
	return fmt.Errorf("%w: %s: %v: %s", ErrUnreachable, where, err, hint)
}

func describe(err error) string {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "" {
		return err.Error()
	}
	msg := resp.Message
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return fmt.Sprintf("%s (HTTP %d): %s", resp.Code, resp.StatusCode, msg)
}

// Close closes the index.
func (s *Store) Close() error { return s.idx.Close() }

// key is the object key of blob id: the prefix and the id, nothing else.
func (s *bucket) key(id string) string { return s.cfg.Prefix + id }

func newID() string {
	var raw [16]byte
	rand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}

// s3Error marks a failed request to the object store as
// store.ErrUnavailable: the server answers 507 with Retry-After, and the
// client retries later. Nothing was stored.
func s3Error(what string, err error) error {
	return fmt.Errorf("blobs3: %s: %w: %w", what, store.ErrUnavailable, err)
}

// limitReader reads at most n bytes from r and fails with err on the
// next byte, so that an upload over a limit stops (and a multipart upload
// is aborted) as soon as the limit is passed.
type limitReader struct {
	ctx context.Context
	r   io.Reader
	n   int64 // bytes still allowed
	err error // returned once more than n bytes arrive
	got int64 // bytes read
	// rerr is the body's own error (the client's connection), if any.
	rerr error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if l.n < 0 {
		return 0, l.err
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		l.rerr = err
	}
	l.got += int64(n)
	l.n -= int64(n)
	if l.n < 0 {
		return n, l.err
	}
	return n, err
}

// Put uploads r to a new object, then records it in the index (the
// quota checked there, atomically). See the package comment for why in
// this order.
func (s *Store) Put(ctx context.Context, owner string, r io.Reader, lim store.PutLimits) (string, int64, error) {
	if owner == "" {
		return "", 0, fmt.Errorf("blobs3: a blob needs an owner: %w", store.ErrBadRequest)
	}
	lr := &limitReader{ctx: ctx, r: r, n: lim.Max, err: fmt.Errorf("blobs3: more than %d bytes: %w", lim.Max, store.ErrTooLarge)}
	if lim.Quota > 0 {
		// Stop reading as soon as the quota is certainly exceeded rather
		// than at the end of a large body; the index's check is the exact
		// one.
		u, err := s.Usage(ctx, owner)
		if err != nil {
			return "", 0, err
		}
		if left := lim.Quota - u.Bytes; left < lim.Max {
			lr.n = max(left, 0)
			lr.err = fmt.Errorf("blobs3: %s holds %d bytes, more is over the quota of %d: %w", owner, u.Bytes, lim.Quota, store.ErrQuotaExceeded)
		}
	}
	id := newID()
	key := s.key(id)
	// A body that fits in one part goes up in one PUT of known length;
	// a longer one as a multipart upload of PartSize parts.
	first, complete, err := readPart(lr, s.cfg.PartSize)
	if err != nil {
		return "", 0, s.readError(ctx, lr, err)
	}
	body, size := io.Reader(bytes.NewReader(first)), int64(len(first))
	if !complete {
		body, size = io.MultiReader(bytes.NewReader(first), lr), -1
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: uint64(s.cfg.PartSize)}
	if _, err := s.c.PutObject(ctx, s.cfg.Bucket, key, body, size, opts); err != nil {
		if lr.n < 0 || lr.rerr != nil || ctx.Err() != nil || !isS3Error(err) {
			return "", 0, s.readError(ctx, lr, err)
		}
		return "", 0, s3Error("upload", err)
	}
	if err := s.idx.Insert(ctx, id, owner, lr.got, lim.Quota, time.Now(), lim.Expires); err != nil {
		s.removeObject(context.WithoutCancel(ctx), id)
		if errors.Is(err, store.ErrQuotaExceeded) {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
	}
	return id, lr.got, nil
}

// readPart reads up to max bytes of r, into a buffer that grows with what
// arrives (a small attachment does not cost a whole part's buffer), and
// reports whether r ended within them.
func readPart(r io.Reader, max int64) (data []byte, complete bool, err error) {
	buf := make([]byte, 0, min(64<<10, max))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) == max {
				return buf, false, nil
			}
			bigger := make([]byte, len(buf), min(2*int64(cap(buf)), max))
			copy(bigger, buf)
			buf = bigger
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// readError is the error of an upload that failed while reading the
// client's body: over a limit, cancelled, or the client's connection.
func (s *Store) readError(ctx context.Context, lr *limitReader, err error) error {
	if lr.n < 0 {
		return lr.err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("blobs3: upload: %w", cerr)
	}
	return fmt.Errorf("blobs3: upload: %w", err)
}

// isS3Error reports whether err came from the object store (an S3 error
// response or the connection to it) rather than from reading the body.
func isS3Error(err error) bool {
	if minio.ToErrorResponse(err).Code != "" {
		return true
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

// removeObject removes one object; a failure is logged, and Sweep will
// remove the object later.
func (s *Store) removeObject(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.c.RemoveObject(ctx, s.cfg.Bucket, s.key(id), minio.RemoveObjectOptions{}); err != nil {
		s.log.Warn("blobs3: removing the object of a failed upload failed; the orphan sweep will remove it", "object", s.key(id), "err", err)
	}
}

// Open returns the blob's object, streaming: its first GET is sent here
// (so a missing object is reported now, not at the first read), and the
// reader seeks with ranged GETs.
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if !blobstore.ValidID(id) {
		return nil, 0, fmt.Errorf("blobs3: bad id: %w", store.ErrNotFound)
	}
	size, found, err := s.idx.Lookup(ctx, id)
	if err != nil {
		return nil, 0, fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
	}
	if !found {
		return nil, 0, fmt.Errorf("blobs3: %w", store.ErrNotFound)
	}
	obj, got, err := s.openObject(ctx, s.key(id), "download")
	if errors.Is(err, errNoSuchKey) {
		s.log.Error("blobs3: an indexed blob's object is missing from the bucket (removed outside parleyd, or the bucket was restored from an older backup); clients get 404",
			"bucket", s.cfg.Bucket, "object", s.key(id))
		return nil, 0, fmt.Errorf("blob %s: object %q in bucket %q: %w", id, s.key(id), s.cfg.Bucket, ErrObjectMissing)
	}
	if err != nil {
		return nil, 0, err
	}
	if got != size {
		obj.Close()
		return nil, 0, fmt.Errorf("blobs3: blob %s: the object holds %d bytes, the index says %d: %w", id, got, size, store.ErrUnavailable)
	}
	return obj, size, nil
}

// errNoSuchKey: openObject found no object under the key.
var errNoSuchKey = errors.New("blobs3: no such object")

// openObject sends the first GET of the object at key (so that a
// missing object is reported now, not at the first read) and returns
// it, streaming, with its size; errNoSuchKey if there is none. what
// names the operation in other errors.
func (s *bucket) openObject(ctx context.Context, key, what string) (*minio.Object, int64, error) {
	obj, err := s.c.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, s3Error(what, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, 0, errNoSuchKey
		}
		return nil, 0, s3Error(what, err)
	}
	return obj, info.Size, nil
}

var _ store.BlobURLs = (*Store)(nil)

// DownloadURL implements store.BlobURLs: a pre-signed GET of the blob's
// object (AWS signature V4, query-string authentication), valid for
// Presign, for a blob the index holds.
func (s *Store) DownloadURL(ctx context.Context, id string) (string, bool, error) {
	if s.cfg.Presign <= 0 {
		return "", false, nil
	}
	if !blobstore.ValidID(id) {
		return "", false, fmt.Errorf("blobs3: bad id: %w", store.ErrNotFound)
	}
	// The index, not the bucket, says what exists: an object of a blob
	// deleted or expired may linger until the sweep or a lifecycle rule.
	_, found, err := s.idx.Lookup(ctx, id)
	if err != nil {
		return "", false, fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
	}
	if !found {
		return "", false, fmt.Errorf("blobs3: %w", store.ErrNotFound)
	}
	// The response says what the server's own download says: opaque
	// bytes, not something for a browser to render.
	params := url.Values{"response-content-type": {"application/octet-stream"}}
	u, err := s.c.PresignedGetObject(ctx, s.cfg.Bucket, s.key(id), s.cfg.Presign, params)
	if err != nil {
		return "", false, s3Error("pre-sign download", err)
	}
	return u.String(), true, nil
}

var _ store.BlobDirectUploads = (*Store)(nil)

// UploadURL implements store.BlobDirectUploads: a pre-signed PUT of a
// new object, valid for Presign. Its signature covers the
// Content-Length, so that S3 takes exactly size bytes through it, and,
// where the endpoint honours it (checkConditional), If-None-Match: *
// (S3's conditional write), so that it creates the object once: without
// it the URL's holder could, until it expires, PUT other bytes over the
// object after the server checked and indexed it.
func (s *Store) UploadURL(ctx context.Context, size int64) (store.DirectUpload, bool, error) {
	if s.cfg.Presign <= 0 {
		return store.DirectUpload{}, false, nil
	}
	if size <= 0 || size > maxSinglePut {
		return store.DirectUpload{}, false, fmt.Errorf("blobs3: a direct upload of %d bytes: %w", size, store.ErrBadRequest)
	}
	id := newID()
	signed := http.Header{"Content-Length": {strconv.FormatInt(size, 10)}}
	up := store.DirectUpload{ID: id}
	if s.conditional {
		signed.Set("If-None-Match", "*")
		up.Header = map[string]string{"If-None-Match": "*"}
	}
	u, err := s.c.PresignHeader(ctx, http.MethodPut, s.cfg.Bucket, s.key(id), s.cfg.Presign, nil, signed)
	if err != nil {
		return store.DirectUpload{}, false, s3Error("pre-sign upload", err)
	}
	up.URL = u.String()
	return up, true, nil
}

// FinishUpload implements store.BlobDirectUploads: the object must be
// there and hold size bytes; then it is indexed like a Put's.
func (s *Store) FinishUpload(ctx context.Context, owner, id string, size int64, lim store.PutLimits) error {
	if owner == "" || !blobstore.ValidID(id) {
		return fmt.Errorf("blobs3: finish upload: %w", store.ErrBadRequest)
	}
	if got, found, err := s.idx.Lookup(ctx, id); err != nil {
		return fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
	} else if found {
		// Finished before (a retry): fine if it is owner's and this size.
		if owns, err := s.idx.Owns(ctx, owner, id); err != nil {
			return fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
		} else if owns && got == size {
			return nil
		}
		return fmt.Errorf("blobs3: finish upload %s: %w", id, store.ErrBadRequest)
	}
	info, err := s.c.StatObject(ctx, s.cfg.Bucket, s.key(id), minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return fmt.Errorf("blobs3: finish upload %s: nothing was uploaded: %w", id, store.ErrNotFound)
		}
		return s3Error("finish upload", err)
	}
	var refuse error
	switch {
	case info.Size != size:
		refuse = fmt.Errorf("blobs3: finish upload %s: %d bytes arrived, not %d: %w", id, info.Size, size, store.ErrBadRequest)
	case lim.Max > 0 && size > lim.Max:
		refuse = fmt.Errorf("blobs3: finish upload %s: %d bytes: %w", id, size, store.ErrTooLarge)
	}
	if refuse == nil {
		refuse = s.idx.Insert(ctx, id, owner, size, lim.Quota, time.Now(), lim.Expires)
		if refuse != nil && !errors.Is(refuse, store.ErrQuotaExceeded) {
			return fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(refuse))
		}
	}
	if refuse != nil {
		s.removeObject(context.WithoutCancel(ctx), id)
	}
	return refuse
}

// maxSinglePut is the largest object one PUT may create on S3 (5 GiB).
const maxSinglePut = 5 << 30

// Delete removes blob id if owner uploaded it.
func (s *Store) Delete(ctx context.Context, owner, id string) error {
	if owner == "" || !blobstore.ValidID(id) {
		return fmt.Errorf("blobs3: %w", store.ErrNotFound)
	}
	owns, err := s.idx.Owns(ctx, owner, id)
	if err != nil {
		return fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
	}
	if !owns {
		return fmt.Errorf("blobs3: %w", store.ErrNotFound)
	}
	return s.remove(ctx, []string{id})
}

// remove deletes objects, then the index rows of those that went.
func (s *Store) remove(ctx context.Context, ids []string) error {
	ch := make(chan minio.ObjectInfo, len(ids))
	for _, id := range ids {
		ch <- minio.ObjectInfo{Key: s.key(id)}
	}
	close(ch)
	failed := map[string]bool{}
	var errs []error
	for e := range s.c.RemoveObjects(ctx, s.cfg.Bucket, ch, minio.RemoveObjectsOptions{}) {
		if e.Err == nil || minio.ToErrorResponse(e.Err).Code == "NoSuchKey" {
			continue
		}
		failed[strings.TrimPrefix(e.ObjectName, s.cfg.Prefix)] = true
		if len(errs) < 3 {
			errs = append(errs, s3Error("delete "+e.ObjectName, e.Err))
		}
	}
	gone := make([]string, 0, len(ids))
	for _, id := range ids {
		if !failed[id] {
			gone = append(gone, id)
		}
	}
	if err := s.idx.Delete(ctx, gone); err != nil {
		errs = append(errs, fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err)))
	}
	if len(failed) > 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("blobs3: %d objects not deleted: %w", len(failed), store.ErrUnavailable))
	}
	return errors.Join(errs...)
}

// removeWhere removes, in batches, the blobs whose ids next selects.
func (s *Store) removeWhere(ctx context.Context, next func() ([]string, error)) (int, error) {
	total := 0
	for {
		ids, err := next()
		if err != nil {
			return total, fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
		}
		if len(ids) == 0 {
			return total, nil
		}
		if err := s.remove(ctx, ids); err != nil {
			return total, err
		}
		total += len(ids)
	}
}

// DeleteOwner removes every blob of owner.
func (s *Store) DeleteOwner(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, nil
	}
	return s.removeWhere(ctx, func() ([]string, error) { return s.idx.Owned(ctx, owner, 1000) })
}

// DeleteExpired removes blobs stored before the given time and, at most
// once per SweepInterval, sweeps orphan objects (Sweep).
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	n, err := s.removeWhere(ctx, func() ([]string, error) { return s.idx.Expired(ctx, before, 1000) })
	if err != nil {
		return n, err
	}
	if s.cfg.SweepInterval > 0 {
		s.sweepM.Lock()
		due := time.Since(s.swept) >= s.cfg.SweepInterval
		if due {
			s.swept = time.Now()
		}
		s.sweepM.Unlock()
		if due {
			if swept, err := s.Sweep(ctx, time.Now().Add(-s.cfg.OrphanGrace)); err != nil {
				s.log.Warn("blobs3: orphan sweep failed; it runs again after the next interval", "err", err)
			} else if swept > 0 {
				s.log.Info("blobs3: removed orphan objects of interrupted uploads", "objects", swept)
			}
		}
	}
	return n, nil
}

// DeleteDisappeared removes the blobs whose expiry passed. An object
// store cannot be asked to overwrite an object's storage in place, so
// unlike the directory backend nothing is zeroed: the bodies are the
// clients' ciphertext, and the keys that open them went with the
// message.
func (s *Store) DeleteDisappeared(ctx context.Context, now time.Time) (int, time.Time, error) {
	n, err := s.removeWhere(ctx, func() ([]string, error) { return s.idx.Disappeared(ctx, now, 1000) })
	if err != nil {
		return n, time.Time{}, err
	}
	next, err := s.idx.NextExpiry(ctx)
	if err != nil {
		return n, time.Time{}, fmt.Errorf("blobs3: index: %w", blobstore.Unavailable(err))
	}
	return n, next, nil
}

// Usage returns what owner holds.
func (s *Store) Usage(ctx context.Context, owner string) (store.BlobUsage, error) {
	u, err := s.idx.Usage(ctx, owner)
	if err != nil {
		return u, fmt.Errorf("blobs3: usage: %w", blobstore.Unavailable(err))
	}
	return u, nil
}

// Sweep removes orphans: objects under the prefix named like a blob,
// last modified before olderThan, that the index does not know (an
// upload whose node died between storing the object and committing its
// row), and multipart uploads begun before olderThan and never completed
// or aborted. olderThan must leave room for uploads in progress (Config's
// OrphanGrace). It lists the whole prefix, so it runs rarely; a bucket
// lifecycle rule deleting objects after the retention period and
// aborting incomplete multipart uploads is the backstop (docs/scaling.md).
func (s *Store) Sweep(ctx context.Context, olderThan time.Time) (int, error) {
	removed := 0
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var orphans []string
	for obj := range s.c.ListObjects(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix, Recursive: true}) {
		if obj.Err != nil {
			return removed, s3Error("sweep: list", obj.Err)
		}
		id := strings.TrimPrefix(obj.Key, s.cfg.Prefix)
		if !blobstore.ValidID(id) || !obj.LastModified.Before(olderThan) {
			continue
		}
		_, found, err := s.idx.Lookup(ctx, id)
		if err != nil {
			return removed, fmt.Errorf("blobs3: sweep: index: %w", err)
		}
		if !found {
			orphans = append(orphans, id)
		}
	}
	for _, id := range orphans {
		// Looked up again just before: a row committed since the listing
		// (an upload finishing late) keeps its object.
		if _, found, err := s.idx.Lookup(ctx, id); err != nil || found {
			continue
		}
		if err := s.c.RemoveObject(ctx, s.cfg.Bucket, s.key(id), minio.RemoveObjectOptions{}); err != nil {
			return removed, s3Error("sweep: remove", err)
		}
		removed++
	}
	for up := range s.c.ListIncompleteUploads(lctx, s.cfg.Bucket, s.cfg.Prefix, true) {
		if up.Err != nil {
			// Not every S3-compatible server lists multipart uploads; the
			// lifecycle rule covers those.
			s.log.Debug("blobs3: sweep: listing incomplete uploads", "err", up.Err)
			break
		}
		if up.Initiated.Before(olderThan) && blobstore.ValidID(strings.TrimPrefix(up.Key, s.cfg.Prefix)) {
			if err := s.c.RemoveIncompleteUpload(ctx, s.cfg.Bucket, up.Key); err != nil {
				return removed, s3Error("sweep: abort incomplete upload", err)
			}
			removed++
		}
	}
	return removed, nil
}
