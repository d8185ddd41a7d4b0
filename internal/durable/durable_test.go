package durable

import (
	"os"
	"path/filepath"
	"testing"
)

// Rename moves the file and fails as os.Rename does; MkdirAll creates the
// missing directories, accepts existing ones, and fails under a file.
// (That the names survive a crash cannot be tested here: the syncs are
// what the operating system documents for it.)
func TestRenameAndMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s: %v, %v", dir, fi, err)
	}
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("existing: %v", err)
	}
	tmp, name := filepath.Join(dir, ".tmp"), filepath.Join(dir, "object")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != "x" {
		t.Fatalf("%s: %q, %v", name, b, err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", tmp, err)
	}
	if err := Rename(tmp, name); !os.IsNotExist(err) {
		t.Fatalf("rename of a missing file: %v", err)
	}
	if err := MkdirAll(filepath.Join(name, "d"), 0o755); err == nil {
		t.Fatal("a directory under a file: no error")
	}
}
