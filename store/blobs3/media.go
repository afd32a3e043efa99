package blobs3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/parleychat/parley/store/blobstore"
)

// Media keeps public channels' media files as objects in a bucket
// (channels.MediaObjects; parleyd --channel-media). Unlike attachments
// they live as long as their post, so they need a bucket or prefix that
// no lifecycle rule for attachments covers. An object is named by the
// prefix and a random 128-bit id, never anything from a request.
type Media struct {
	*bucket
}

// OpenMedia connects to cfg's bucket with Open's start-up check. With
// Presign, MediaURL hands out pre-signed downloads valid that long.
func OpenMedia(ctx context.Context, cfg Config) (*Media, error) {
	b, err := openBucket(ctx, cfg, false) // no uploads by URL here
	if err != nil {
		return nil, err
	}
	return &Media{b}, nil
}

// PutMedia stores data as a new object and returns its name.
func (m *Media) PutMedia(ctx context.Context, data []byte) (string, error) {
	id := newID()
	_, err := m.c.PutObject(ctx, m.cfg.Bucket, m.key(id), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: uint64(m.cfg.PartSize)})
	if err != nil {
		return "", s3Error("put channel media", err)
	}
	return id, nil
}

// OpenMedia streams an object; an error wrapping fs.ErrNotExist if it is
// not there.
func (m *Media) OpenMedia(ctx context.Context, object string) (io.ReadCloser, int64, error) {
	if !blobstore.ValidID(object) {
		return nil, 0, fmt.Errorf("blobs3: media object %q: %w", object, fs.ErrNotExist)
	}
	obj, size, err := m.openObject(ctx, m.key(object), "read channel media")
	if errors.Is(err, errNoSuchKey) {
		m.log.Error("blobs3: a channel post's media object is missing from the bucket (removed outside parleyd, or the bucket was restored from an older backup)",
			"bucket", m.cfg.Bucket, "object", m.key(object))
		return nil, 0, fmt.Errorf("blobs3: media object %q in bucket %q: %w", m.key(object), m.cfg.Bucket, fs.ErrNotExist)
	}
	if err != nil {
		return nil, 0, err
	}
	return obj, size, nil
}

// MediaURL is a pre-signed GET of an object, valid for Presign (ok
// false without Presign), whose answer has contentType and, unless
// inline, asks to be saved rather than displayed.
func (m *Media) MediaURL(ctx context.Context, object, contentType string, inline bool) (string, bool, error) {
	if m.cfg.Presign <= 0 {
		return "", false, nil
	}
	if !blobstore.ValidID(object) {
		return "", false, fmt.Errorf("blobs3: media object %q: %w", object, fs.ErrNotExist)
	}
	params := url.Values{"response-content-type": {contentType}}
	if !inline {
		params.Set("response-content-disposition", "attachment")
	}
	u, err := m.c.PresignedGetObject(ctx, m.cfg.Bucket, m.key(object), m.cfg.Presign, params)
	if err != nil {
		return "", false, s3Error("pre-sign channel media", err)
	}
	return u.String(), true, nil
}

// RemoveMedia removes objects; ones already gone are not an error.
func (m *Media) RemoveMedia(ctx context.Context, objects []string) error {
	ch := make(chan minio.ObjectInfo, len(objects))
	for _, o := range objects {
		if blobstore.ValidID(o) {
			ch <- minio.ObjectInfo{Key: m.key(o)}
		}
	}
	close(ch)
	var failed int
	var first error
	for e := range m.c.RemoveObjects(ctx, m.cfg.Bucket, ch, minio.RemoveObjectsOptions{}) {
		if e.Err == nil || minio.ToErrorResponse(e.Err).Code == "NoSuchKey" {
			continue
		}
		if failed++; first == nil {
			first = e.Err
		}
	}
	if failed > 0 {
		return s3Error(fmt.Sprintf("remove %d channel media objects", failed), first)
	}
	return nil
}

// SweepMedia removes objects under the prefix named like media objects,
// last modified before olderThan, that inUse says no post names (a node
// that died between putting a post's files and committing the post).
// It lists the whole prefix, so it runs rarely.
func (m *Media) SweepMedia(ctx context.Context, olderThan time.Time, inUse func(object string) (bool, error)) (int, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var orphans []string
	for obj := range m.c.ListObjects(lctx, m.cfg.Bucket, minio.ListObjectsOptions{Prefix: m.cfg.Prefix, Recursive: true}) {
		if obj.Err != nil {
			return 0, s3Error("sweep channel media: list", obj.Err)
		}
		id := strings.TrimPrefix(obj.Key, m.cfg.Prefix)
		if !blobstore.ValidID(id) || !obj.LastModified.Before(olderThan) {
			continue
		}
		used, err := inUse(id)
		if err != nil {
			return 0, fmt.Errorf("blobs3: sweep channel media: %w", err)
		}
		if !used {
			orphans = append(orphans, id)
		}
	}
	// No need to ask again before removing: every object gets a fresh
	// random name when it is put, and the post (or the move) that names
	// it commits right after, so an object older than olderThan that no
	// post names now never will be.
	if len(orphans) == 0 {
		return 0, nil
	}
	if err := m.RemoveMedia(ctx, orphans); err != nil {
		return 0, err
	}
	return len(orphans), nil
}
