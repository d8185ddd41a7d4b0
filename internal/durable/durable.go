// Package durable makes a file's name survive a crash: a rename, or a new
// directory, is on disk only once the directory holding it is synced, and
// syncing a file syncs its data, not its name. A local sink that syncs an
// object, renames it into place and then records that it is done (a
// backfill's cursor, a cold segment before its hot copy is evicted, a CDC
// checkpoint) needs both, or a crash soon after can leave the record
// without the object. Linux and macOS; a directory cannot be synced this
// way on Windows.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Rename renames oldpath to newpath, as os.Rename does, then syncs
// newpath's directory: when it returns, the new name is on disk. Sync the
// file's data before; rename within one directory (the old name's
// directory is not synced).
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return syncDir(filepath.Dir(newpath))
}

// synced holds the directories whose entries this process has synced in
// their parents (or created and synced).
var synced sync.Map

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and
// makes their entries durable: the parent of each directory on the path is
// synced the first time this process meets it, whoever created it (a
// writer that finds a directory another has just created, and not yet
// synced, syncs it too). A directory this call creates is synced again
// even if met before (it was removed since).
func MkdirAll(dir string, perm os.FileMode) error {
	var chain []string // missing or not known synced, deepest first
	missing := false
walk:
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		switch _, err := os.Stat(d); {
		case err == nil:
			if _, ok := synced.Load(d); ok {
				break walk
			}
		case errors.Is(err, fs.ErrNotExist):
			missing = true
		default:
			return err
		}
		chain = append(chain, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if missing {
		if err := os.MkdirAll(dir, perm); err != nil {
			return err
		}
	}
	for i := len(chain) - 1; i >= 0; i-- { // parents first
		if parent := filepath.Dir(chain[i]); parent != chain[i] {
			if err := syncDir(parent); err != nil {
				return err
			}
		}
		synced.Store(chain[i], struct{}{})
	}
	return nil
}

// syncDir syncs a directory (a variable, so that tests can count).
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
