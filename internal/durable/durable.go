// Package durable makes a file's name survive a crash: a rename, or a new
// directory, is on disk only once the directory holding it is synced, and
// syncing a file syncs its data, not its name. A local sink that syncs an
// object, renames it into place and then records that it is done (a
// backfill's cursor, a cold segment before its hot copy is evicted) needs
// both, or a crash soon after can leave the record without the object.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Rename renames oldpath to newpath, as os.Rename does, then syncs
// newpath's directory: when it returns, the new name is on disk. Sync the
// file's data before.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return syncDir(filepath.Dir(newpath))
}

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and
// syncs the parent of each directory it created.
func MkdirAll(dir string, perm os.FileMode) error {
	var created []string // the missing directories, deepest first
	for d := filepath.Clean(dir); ; {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if len(created) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- { // parents first
		if err := syncDir(filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
