package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/internal/durable"
)

// Store kinds of a StoreURL.
const (
	Pebble = "pebble"
	HBase  = "hbase"
)

// ErrStoreInUse: the embedded store's folder is locked by another process.
var ErrStoreInUse = errors.New("config: store folder in use by another process")

// StoreURL is a parsed store URL.
type StoreURL struct {
	// Kind is Pebble or HBase.
	Kind string
	// Dir is the folder of a Pebble store.
	Dir string
	// ZooKeeper is the quorum of an HBase store, comma separated ("":
	// $TIDEMARK_HBASE_ZK, else 127.0.0.1:2181); Namespace its namespace
	// ("": "tidemark").
	ZooKeeper, Namespace string
}

// ParseStore parses a store URL:
//
//	pebble://PATH               the embedded store in the folder PATH (relative)
//	pebble:///abs/path          … an absolute folder
//	PATH                        the same as pebble://PATH
//	hbase://ZK1,ZK2/NAMESPACE   HBase through the ZooKeeper quorum (host[:port], comma
//	                            separated); hbase:///NS takes the quorum from
//	                            $TIDEMARK_HBASE_ZK, hbase://ZK the namespace "tidemark"
func ParseStore(s string) (StoreURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || strings.ContainsAny(scheme, `/\.`) {
		scheme, rest = Pebble, s // a bare path
	}
	switch scheme {
	case Pebble:
		if rest == "" {
			return StoreURL{}, fmt.Errorf("config: store %q: no folder (pebble://PATH)", s)
		}
		return StoreURL{Kind: Pebble, Dir: rest}, nil
	case HBase:
		zk, ns, _ := strings.Cut(rest, "/")
		if strings.Contains(ns, "/") || strings.ContainsAny(zk, "?#@") || strings.ContainsAny(ns, "?#") {
			return StoreURL{}, fmt.Errorf("config: store %q: want hbase://ZK1,ZK2/NAMESPACE", s)
		}
		return StoreURL{Kind: HBase, ZooKeeper: zk, Namespace: ns}, nil
	}
	return StoreURL{}, fmt.Errorf("config: store %q: unknown kind %q (pebble://PATH or hbase://ZK/NAMESPACE)", s, scheme)
}

// String is the URL in its canonical form.
func (u StoreURL) String() string {
	if u.Kind == HBase {
		return "hbase://" + u.ZooKeeper + "/" + u.Namespace
	}
	return "pebble://" + u.Dir
}

// HBaseConfig is the hbase.Config of an HBase URL, the rest at defaults.
func (u StoreURL) HBaseConfig() hbase.Config {
	return hbase.Config{ZooKeeper: u.ZooKeeper, Namespace: u.Namespace}
}

// StoreOptions tune OpenStore.
type StoreOptions struct {
	// NoSync skips the embedded store's fsync of each append (see
	// embedded.Config.NoSync). Default false.
	NoSync bool
	// MustExist: the command consults an event center that processes
	// already write (the job catalog, the parameters), so an embedded
	// folder that holds no store is ErrNoStore, not a new empty store.
	// (An HBase namespace is opened as always.)
	MustExist bool
}

// ErrNoStore: StoreOptions.MustExist and no embedded store in the folder.
var ErrNoStore = errors.New("no event center")

// OpenStore opens the event center of u: the embedded store (creating its
// folder) or HBase (creating its namespace and tables if absent). An
// embedded folder locked by another process fails with ErrStoreInUse and
// a sentence saying what to do.
func OpenStore(ctx context.Context, u StoreURL, o StoreOptions) (eventcenter.Store, error) {
	switch u.Kind {
	case Pebble:
		if !o.MustExist {
			if err := durable.MkdirAll(u.Dir, 0o755); err != nil {
				return nil, fmt.Errorf("config: store folder: %w", err)
			}
		}
		s, err := embedded.Open(embedded.Config{Dir: u.Dir, NoSync: o.NoSync, MustExist: o.MustExist})
		if errors.Is(err, embedded.ErrNoStore) {
			return nil, fmt.Errorf("%w in %s: give the event center the workers use (--store, $TIDEMARK_STORE or the config's store; "+
				"tidemark dev keeps its own, by default in .tidemark-dev/eventcenter, locked while it runs: stop it to use its folder, or take jobs and parameters to its console or HTTP API)", ErrNoStore, u.Dir)
		}
		if lockConflict(err) {
			return nil, fmt.Errorf("%w: the event center folder %s is locked by another process (a tidemark dev, ingest, live or worker?): "+
				"stop it, or share one event center between processes with --store hbase://ZK/NAMESPACE", ErrStoreInUse, u.Dir)
		}
		return s, err
	case HBase:
		QuietHBaseClient()
		return hbase.Open(ctx, u.HBaseConfig())
	}
	return nil, fmt.Errorf("config: store kind %q", u.Kind)
}

// lockConflict reports whether err is the refusal of the LOCK file's
// fcntl lock, held by another process (EAGAIN or EACCES, as POSIX allows
// both); an EACCES creating the file is a permission problem instead.
func lockConflict(err error) bool {
	var pathErr *os.PathError
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) && !errors.As(err, &pathErr)
}

// QuietHBaseClient keeps the HBase client's own logging to warnings (it
// logs every region it finds at info).
func QuietHBaseClient() { logrus.SetLevel(logrus.WarnLevel) }

// ParseCold parses a cold tier URL: file://PATH or s3://BUCKET/PREFIX. It
// returns the folder (file) or the bucket and prefix (s3, prefix ending
// in "/" unless empty).
func ParseCold(s string) (kind, where string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case ok && scheme == "file" && rest != "":
		return "file", rest, nil
	case ok && scheme == "s3" && rest != "" && !strings.HasPrefix(rest, "/"):
		return "s3", rest, nil
	}
	return "", "", fmt.Errorf("config: cold %q: want file://PATH or s3://BUCKET/PREFIX", s)
}

// OpenCold returns the cold tier of cfg.Cold, nil if none is configured.
func OpenCold(ctx context.Context, cfg Config) (tiered.Blob, error) {
	if cfg.Cold == "" {
		return nil, nil
	}
	kind, where, err := ParseCold(cfg.Cold)
	if err != nil {
		return nil, err
	}
	if kind == "file" {
		return tiered.Dir(where), nil
	}
	bucket, prefix, _ := strings.Cut(where, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	client, err := cfg.S3.S3Client(ctx)
	if err != nil {
		return nil, err
	}
	return tiered.S3{Client: client, Bucket: bucket, Prefix: prefix}, nil
}
