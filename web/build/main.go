// Command build makes web/dist: the web client's WebAssembly module and
// Go's loader for it (run by `go generate ./web`).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/parleychat/parley/web"
)

func main() {
	// go generate runs in the package directory (web/).
	if err := web.Build(context.Background(), "dist"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, err := web.Load(os.DirFS("."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join("dist", "SHA256SUMS"), b.SHA256SUMS(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("web/dist: %s sha256 %s\n", web.WASMName, b.WASMSHA256())
}
