//go:build !js

package profile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSQLiteBackendContract(t *testing.T) {
	runContract(t, func(t *testing.T) backendEnv {
		dir := t.TempDir()
		return backendEnv{
			open: func(t *testing.T) Backend {
				b, err := openSQLite(dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.db.Exec(schema); err != nil {
					t.Fatal(err)
				}
				return b
			},
			dump: func(t *testing.T) []byte {
				var all bytes.Buffer
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					data, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					all.Write(data)
				}
				return all.Bytes()
			},
		}
	})
}
