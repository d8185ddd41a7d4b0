package hbase

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultZooKeeper      = "127.0.0.1:2181"
	DefaultNamespace      = "tidemark"
	DefaultBuckets        = 16
	DefaultRegions        = 16
	DefaultDialTimeout    = 10 * time.Second
	DefaultSchemaTimeout  = 5 * time.Minute
	DefaultFlushInterval  = time.Millisecond
	DefaultRPCQueueSize   = 100
	DefaultMaxInflight    = 512
	DefaultWatermarkPoll  = 50 * time.Millisecond
	DefaultIndexRefresh   = 10 * time.Second
	DefaultReplayWindow   = 256
	DefaultLookupParallel = 32
	DefaultBatchParallel  = 16
	DefaultMaxAppend      = time.Minute
	DefaultKnownAtLag     = 2 * time.Minute
)

// Forever, as Config.Retention, keeps everything in the hot tier: no TTL,
// no horizon.
const Forever time.Duration = -1

// DefaultRetention is the retention of a new namespace: Forever. A TTL
// deletes cells whether or not a tier holds them (and with them the
// parameter versions and catalog entries that jobs read at every run), so a
// hot window is an operator's explicit choice, not a default. The cold tier
// (eventcenter/tiered) keeps the hot store small instead: it evicts events
// only after their segment is verified, and refuses a hot store with a
// retention horizon.
const DefaultRetention = Forever

// EnvZooKeeper names the environment variable read when Config.ZooKeeper is
// empty (the services harness sets it).
const EnvZooKeeper = "TIDEMARK_HBASE_ZK"

// Config configures a Store. The zero value of every field is a sane default,
// documented on the field.
type Config struct {
	// ZooKeeper is the ZooKeeper quorum of the HBase cluster, comma-separated
	// host:port. Default: $TIDEMARK_HBASE_ZK, else 127.0.0.1:2181.
	ZooKeeper string
	// ZooKeeperRoot is the cluster's znode parent. Default /hbase.
	ZooKeeperRoot string
	// Namespace holds the store's tables (events, time, index, marks, meta).
	// Default "tidemark". Two stores on one namespace are one event center.
	Namespace string

	// Retention is how long the hot tier keeps what it stores: the TTL of the
	// events, time and index families, counted from when a cell was written.
	// Reads that reach behind it fail with eventcenter.ErrBeyondHorizon
	// (see Store.Horizon). Zero keeps what the namespace records (Forever
	// when it is created: see DefaultRetention); Forever keeps everything; a different value is
	// applied to the tables and recorded in meta.
	Retention time.Duration
	// Buckets spreads each source's time table over that many buckets (1 to
	// 256), so that the appends of a hot source do not all land on the region
	// holding "now". It is part of the layout: the namespace records it at
	// creation and Open refuses another value. Zero keeps what the namespace
	// records (16 when it is created).
	Buckets int
	// Regions is how many regions the events, time and index tables are
	// pre-split into at creation (1 to 256), on the salt or bucket byte.
	// Default 16. Changing it later has no effect on existing tables.
	Regions int
	// Compression of the families at creation, e.g. "SNAPPY" or "ZSTD" where
	// the region servers have the codec. Default "NONE".
	Compression string

	// DialTimeout bounds the first contact with ZooKeeper and the HBase
	// master at Open: a cluster that is down fails Open within it, with an
	// error naming the quorum. Default 10s.
	DialTimeout time.Duration
	// SchemaTimeout bounds creating or altering the namespace and tables at
	// Open. Default 5m.
	SchemaTimeout time.Duration
	// FlushInterval is how long the client holds concurrent puts and gets
	// for one region server to send them as one multi request. Default 1ms.
	FlushInterval time.Duration
	// RPCQueueSize is how many puts or gets the client batches into one multi
	// request before it sends it without waiting for FlushInterval.
	// Default 100.
	RPCQueueSize int
	// MaxInflight bounds the puts one Append (or an index build) has in
	// flight. Default 512.
	MaxInflight int
	// ReplayWindow is how many time rows each bucket of a replay reads per
	// scanner RPC and hands over at once; a bucket holds up to two such
	// batches ready ahead of the reader, so a replay's memory is about
	// sources × buckets × 3 × ReplayWindow events. Default 256.
	ReplayWindow int
	// LookupParallel is how many keys one Lookup checks concurrently.
	// Default 32.
	LookupParallel int
	// BatchParallel is how many scans one AsOfBatch runs concurrently (it
	// reads each region of the events table, as pre-split, with scans of
	// its own). Default 16.
	BatchParallel int
	// WatermarkPoll is how often WaitWatermark reads the watermark of a
	// source advanced by another process. Default 50ms.
	WatermarkPoll time.Duration
	// IndexRefresh is how stale this store's view of the index declarations
	// of other processes may be. DeclareIndex waits that long between
	// recording a declaration and indexing the stored events, so every
	// process's appends are indexed either by that pass or by themselves.
	// Default 10s.
	IndexRefresh time.Duration

	// MaxAppend bounds an Append: its puts get that deadline from its
	// stamp, and an Append that has not finished by then fails (a retry
	// stamps anew). Default 1m.
	MaxAppend time.Duration
	// KnownAtLag is the known-at horizon's distance from now: a read with
	// a KnownAt later than Now() - KnownAtLag reads at that instant instead,
	// because another process's append stamped before it may still become
	// visible until then (see eventcenter.Reader). It must cover MaxAppend
	// plus the skew between the clocks of the processes that append to the
	// namespace (Open refuses less than MaxAppend). Appends of this process
	// are tracked exactly. Default 2m.
	KnownAtLag time.Duration
	// SoleWriter says that no other process appends to the namespace: known-
	// at reads then need no lag (KnownAtLag is ignored), only this
	// process's appends in flight, which the store tracks. Default false.
	SoleWriter bool

	// Now stamps StoredAt. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.ZooKeeper == "" {
		c.ZooKeeper = os.Getenv(EnvZooKeeper)
	}
	if c.ZooKeeper == "" {
		c.ZooKeeper = DefaultZooKeeper
	}
	if c.ZooKeeperRoot == "" {
		c.ZooKeeperRoot = "/hbase"
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Regions == 0 {
		c.Regions = DefaultRegions
	}
	if c.Compression == "" {
		c.Compression = "NONE"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.SchemaTimeout == 0 {
		c.SchemaTimeout = DefaultSchemaTimeout
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.RPCQueueSize == 0 {
		c.RPCQueueSize = DefaultRPCQueueSize
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.ReplayWindow == 0 {
		c.ReplayWindow = DefaultReplayWindow
	}
	if c.LookupParallel == 0 {
		c.LookupParallel = DefaultLookupParallel
	}
	if c.BatchParallel == 0 {
		c.BatchParallel = DefaultBatchParallel
	}
	if c.WatermarkPoll == 0 {
		c.WatermarkPoll = DefaultWatermarkPoll
	}
	if c.IndexRefresh == 0 {
		c.IndexRefresh = DefaultIndexRefresh
	}
	if c.MaxAppend == 0 {
		c.MaxAppend = DefaultMaxAppend
	}
	if c.KnownAtLag == 0 {
		c.KnownAtLag = DefaultKnownAtLag
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

var namespaceRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,64}$`)

// Validate reports a Config that cannot open a store. It checks the fields
// as given; zero fields take their defaults in Open.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("hbase: Config."+format, args...)) }
	for _, hp := range strings.Split(c.ZooKeeper, ",") {
		if c.ZooKeeper != "" && !strings.Contains(strings.TrimSpace(hp), ":") {
			bad("ZooKeeper %q: %q is not host:port", c.ZooKeeper, hp)
		}
	}
	if c.Namespace != "" && !namespaceRE.MatchString(c.Namespace) {
		bad("Namespace %q: want 1 to 64 letters, digits or underscores", c.Namespace)
	}
	if (c.Retention < 0 && c.Retention != Forever) || (c.Retention > 0 && c.Retention < time.Second) {
		bad("Retention %v: want zero (keep), Forever or at least a second", c.Retention)
	}
	maxAppend, lag := cmpOr(c.MaxAppend, DefaultMaxAppend), cmpOr(c.KnownAtLag, DefaultKnownAtLag)
	if !c.SoleWriter && maxAppend > 0 && lag > 0 && lag < maxAppend {
		bad("KnownAtLag %v is less than MaxAppend %v: a read could miss an append still running", lag, maxAppend)
	}
	if c.Buckets < 0 || c.Buckets > 256 {
		bad("Buckets %d: want 1 to 256 (or zero: keep)", c.Buckets)
	}
	if c.Regions < 0 || c.Regions > 256 {
		bad("Regions %d: want 1 to 256", c.Regions)
	}
	for name, d := range map[string]time.Duration{
		"DialTimeout": c.DialTimeout, "SchemaTimeout": c.SchemaTimeout, "FlushInterval": c.FlushInterval,
		"WatermarkPoll": c.WatermarkPoll, "IndexRefresh": c.IndexRefresh,
		"MaxAppend": c.MaxAppend, "KnownAtLag": c.KnownAtLag,
	} {
		if d < 0 {
			bad("%s %v is negative", name, d)
		}
	}
	for name, n := range map[string]int{
		"RPCQueueSize": c.RPCQueueSize, "MaxInflight": c.MaxInflight,
		"ReplayWindow": c.ReplayWindow, "LookupParallel": c.LookupParallel,
		"BatchParallel": c.BatchParallel,
	} {
		if n < 0 {
			bad("%s %d is negative", name, n)
		}
	}
	return errors.Join(errs...)
}
