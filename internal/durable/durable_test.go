package durable

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// countSyncs records the directories synced until the test ends.
func countSyncs(t *testing.T) func() []string {
	var mu sync.Mutex
	var dirs []string
	real := syncDir
	syncDir = func(dir string) error {
		mu.Lock()
		dirs = append(dirs, dir)
		mu.Unlock()
		return real(dir)
	}
	t.Cleanup(func() { syncDir = real })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(dirs)
		dirs = dirs[:0]
		return out
	}
}

// Rename moves the file, syncs the new name's directory, and fails as
// os.Rename does. (That names survive a crash cannot be tested here: the
// syncs are what the operating system documents for it.)
func TestRename(t *testing.T) {
	syncs := countSyncs(t)
	dir := t.TempDir()
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
	if got := syncs(); !slices.Equal(got, []string{dir}) {
		t.Fatalf("synced %q, want the directory %q", got, dir)
	}
	if err := Rename(tmp, name); !os.IsNotExist(err) {
		t.Fatalf("rename of a missing file: %v", err)
	}
}

// MkdirAll creates the missing directories and syncs the parent of each
// directory on the path once: of those it creates, and of one another
// writer created (not known synced); a directory removed and created again
// is synced again. It fails under a file.
func TestMkdirAll(t *testing.T) {
	syncs := countSyncs(t)
	root := t.TempDir()
	synced.Store(root, struct{}{}) // the test's own: not the point here
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "a", "b"), filepath.Join(root, "a", "b", "c")
	if err := MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(c); err != nil || !fi.IsDir() {
		t.Fatalf("%s: %v, %v", c, fi, err)
	}
	if got := syncs(); !slices.Equal(got, []string{root, a, b}) {
		t.Fatalf("created a/b/c: synced %q, want the parents %q", got, []string{root, a, b})
	}
	if err := MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := syncs(); len(got) != 0 {
		t.Fatalf("again: synced %q, want nothing", got)
	}
	// Created by another writer: synced by the first MkdirAll to meet it.
	d := filepath.Join(c, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := syncs(); !slices.Equal(got, []string{c}) {
		t.Fatalf("found d: synced %q, want %q", got, []string{c})
	}
	// Removed and created again.
	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := syncs(); !slices.Equal(got, []string{a, b}) {
		t.Fatalf("created b/c again: synced %q, want %q", got, []string{a, b})
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "d"), 0o755); err == nil {
		t.Fatal("a directory under a file: no error")
	}
}
