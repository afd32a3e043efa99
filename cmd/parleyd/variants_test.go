package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/hashing/variants"
)

// An unknown --image-variants name stops the server before it opens or
// creates anything, with an error naming the flag and the valid names.
func TestImageVariantsFlagRejectsUnknown(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	f := serveFlags{data: data, listen: "127.0.0.1:0", registration: "open", imageVariants: "borders,zoom",
		retention: time.Hour, maxAttachment: 1 << 20, maxFrame: 1 << 20, shutdownTimeout: 10 * time.Second}
	err := serveWith(context.Background(), f, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if !errors.Is(err, variants.ErrBadOptions) || !strings.Contains(err.Error(), "--image-variants") || !strings.Contains(err.Error(), "pads") {
		t.Fatalf("unknown image variant: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the data directory was created: %v", err)
	}
}
