package cdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	_ "github.com/go-sql-driver/mysql" // database/sql driver for schema reads
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/durable"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// DefaultLateness is Config.Lateness's default.
const DefaultLateness = 2 * time.Second

// Config configures a CDC. Addr, User, Sources, Brokers and Dir are
// required; every other field has a default.
type Config struct {
	// Addr (host:port), User and Password reach the MySQL or MariaDB
	// server. The user needs REPLICATION SLAVE, REPLICATION CLIENT (MariaDB:
	// BINLOG MONITOR) and a privilege on the captured tables
	// (information_schema, where the CDC reads their schemas and lists them
	// for progress, shows a user only those).
	Addr, User, Password string
	// Flavor is "mysql" or "mariadb". Default "mysql".
	Flavor string
	// ServerID registers the CDC as a replica; unique among the server's
	// replicas. Default: random in [1<<20, 1<<31).
	ServerID uint32
	// Sources is the registry: its mysql sources are captured, every other
	// table is skipped.
	Sources *source.Config
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Dir holds the checkpoint and the schema history. Required.
	Dir string
	// NoGTID resumes by binlog file and position instead of GTID set.
	// Default false: GTID when the server has it.
	NoGTID bool
	// Start is where a CDC without checkpoint begins: "current" (the
	// server's current binlog position; default), "earliest" (the oldest
	// binlog kept) or "FILE:POS".
	Start string
	// Codec is the wire codec of the records. Default wire.Binary (ingest
	// decodes it about 4x faster than JSON; see bench/README.md).
	Codec wire.Codec
	// Zone reads DATETIME and DATE values (which have no zone). Default UTC.
	Zone *time.Location
	// Lateness: how much older than the newest acknowledged commit time, or
	// than a heartbeat, a change read later may be stamped (MariaDB: the
	// longest statement that commits a transaction; see "Commit time" in
	// the package doc). Progress claims trail by it. Default
	// DefaultLateness.
	Lateness time.Duration
	// TxnMemory bounds the memory holding a transaction's changes until its
	// commit is read (estimated bytes); the changes beyond it are spilled
	// to a file in Dir. Default 64 MiB.
	TxnMemory int
	// CheckpointInterval: how often the checkpoint is written. Default 1s.
	CheckpointInterval time.Duration
	// ProgressInterval: how often progress is reported. Default 1s.
	ProgressInterval time.Duration
	// ProducerID names this CDC in progress reports. Default "cdc-<ServerID>".
	ProducerID string
	// ProgressTopic receives the progress reports; the deployment's ingest
	// must read the same one. Default source.DefaultProgressTopic.
	ProgressTopic string
	// Partitions, if positive, creates the sources' topics that do not
	// exist with this many partitions. Default 0: they must exist.
	Partitions int32
	// Metrics, if not nil, are updated.
	Metrics *Metrics
	// Logger logs. Default slog.Default().
	Logger *slog.Logger
	// KafkaOptions are added to the producer's kgo options.
	KafkaOptions []kgo.Opt
}

func (c *Config) setDefaults() {
	if c.Flavor == "" {
		c.Flavor = mysql.MySQLFlavor
	}
	if c.ServerID == 0 {
		c.ServerID = 1<<20 + rand.Uint32N(1<<31-1<<20)
	}
	if c.Start == "" {
		c.Start = "current"
	}
	if c.Codec == nil {
		c.Codec = wire.Binary
	}
	if c.Zone == nil {
		c.Zone = time.UTC
	}
	if c.Lateness == 0 {
		c.Lateness = DefaultLateness
	}
	if c.TxnMemory == 0 {
		c.TxnMemory = 64 << 20
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
	if c.ProducerID == "" {
		c.ProducerID = "cdc-" + strconv.FormatUint(uint64(c.ServerID), 10)
	}
	if c.ProgressTopic == "" {
		c.ProgressTopic = source.DefaultProgressTopic
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a Config that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Addr == "" || c.User == "":
		return errors.New("cdc: Config.Addr and Config.User are required")
	case c.Flavor != mysql.MySQLFlavor && c.Flavor != mysql.MariaDBFlavor:
		return fmt.Errorf("cdc: Config.Flavor %q: want mysql or mariadb", c.Flavor)
	case c.Sources == nil || len(c.Sources.ByKind(source.KindMySQL)) == 0:
		return errors.New("cdc: Config.Sources has no mysql source")
	case len(c.Brokers) == 0:
		return errors.New("cdc: Config.Brokers is required")
	case c.Dir == "":
		return errors.New("cdc: Config.Dir is required")
	case c.Lateness < 0 || c.TxnMemory < 0:
		return errors.New("cdc: Config.Lateness or Config.TxnMemory is negative")
	}
	if c.Start != "current" && c.Start != "earliest" {
		if _, _, err := parseStart(c.Start); err != nil {
			return err
		}
	}
	if err := source.ValidateTopic(c.ProgressTopic); err != nil {
		return fmt.Errorf("cdc: Config.ProgressTopic: %w", err)
	}
	return nil
}

func parseStart(s string) (string, uint32, error) {
	file, pos, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(pos, 10, 32)
	if !ok || err != nil || file == "" {
		return "", 0, fmt.Errorf("cdc: Config.Start %q: want current, earliest or FILE:POS", s)
	}
	return file, uint32(n), nil
}

// CDC captures the row changes of the registry's mysql sources.
type CDC struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a CDC; Run starts it.
func New(cfg Config) (*CDC, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &CDC{cfg: cfg, log: cfg.Logger}, nil
}

// errFatal wraps errors that a reconnection cannot cure.
type errFatal struct{ error }

func (e errFatal) Unwrap() error { return e.error }

// Run captures until ctx ends (it then waits for Kafka to acknowledge what
// was sent, writes the checkpoint and returns nil) or a fatal error. A lost
// MySQL connection is retried from the checkpoint.
func (c *CDC) Run(ctx context.Context) error {
	cfg := &c.cfg
	if err := durable.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/?timeout=10s&readTimeout=60s", cfg.User, cfg.Password, cfg.Addr))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	if err := checkServer(ctx, db); err != nil {
		return err
	}
	hist, err := openHistory(cfg.Dir)
	if err != nil {
		return err
	}
	defer hist.close()
	if err := removeSpills(cfg.Dir); err != nil {
		return fmt.Errorf("cdc: %w", err)
	}

	cp, ok, err := loadCheckpoint(cfg.Dir)
	if err != nil {
		return err
	}
	if !ok {
		if cp, err = c.startPoint(ctx, db); err != nil {
			return err
		}
		// Saved at once: a crash before the first acknowledged change must
		// resume here, not at a later "current" position.
		if err := saveCheckpoint(cfg.Dir, cp); err != nil {
			return err
		}
		c.log.Info("cdc: starting without checkpoint", "file", cp.File, "pos", cp.Pos, "gtid", cp.GTID)
	} else {
		c.log.Info("cdc: resuming", "file", cp.File, "pos", cp.Pos, "gtid", cp.GTID)
	}

	kcl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.MaxBufferedRecords(100000),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}, cfg.KafkaOptions...)...)
	if err != nil {
		return err
	}
	defer kcl.Close()
	if cfg.Partitions > 0 {
		var topics []string
		for _, s := range cfg.Sources.ByKind(source.KindMySQL) {
			topics = append(topics, s.Topic)
		}
		if err := source.EnsureTopics(ctx, kcl, cfg.Partitions, topics...); err != nil {
			return err
		}
		if err := source.EnsureTopics(ctx, kcl, 1, cfg.ProgressTopic); err != nil {
			return err
		}
	}

	r := &run{
		c: c, db: db, hist: hist, kcl: kcl,
		rep:      source.NewReporter(kcl, cfg.ProducerID, cfg.ProgressTopic),
		acks:     newAcks(cp),
		txn:      &txnBuffer{dir: cfg.Dir, limit: cfg.TxnMemory},
		tables:   map[string]*capture{},
		seen:     map[string]string{},
		verified: map[string]Coord{},
	}
	for _, name := range cp.Sources {
		if s, err := cfg.Sources.Lookup(name); err == nil && s.Kind == source.KindMySQL {
			r.seen[name] = s.Topic
		}
	}
	for _, s := range cfg.Sources.ByKind(source.KindMySQL) {
		if !s.IsPattern() {
			r.seen[s.Name] = s.Topic
		}
	}
	if err := r.discover(ctx); err != nil {
		return err
	}
	return r.run(ctx)
}

func checkServer(ctx context.Context, db *sql.DB) error {
	var format, image string
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image").Scan(&format, &image); err != nil {
		return fmt.Errorf("cdc: read binlog settings: %w", err)
	}
	if !strings.EqualFold(format, "ROW") || !strings.EqualFold(image, "FULL") {
		return errFatal{fmt.Errorf("cdc: the server logs binlog_format=%s, binlog_row_image=%s; CDC needs ROW and FULL", format, image)}
	}
	return nil
}

// startPoint is where a CDC without checkpoint begins.
// errNoBinlog: a binlog status query returned no row (log_bin is off).
var errNoBinlog = errFatal{errors.New("cdc: the server has no binlog (log_bin is off)")}

// firstRow returns the first row of query as text, or errNoBinlog if it
// has none (the binlog status statements answer no row when log_bin is off).
func firstRow(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, errNoBinlog
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = v.String
	}
	return out, nil
}

func (c *CDC) startPoint(ctx context.Context, db *sql.DB) (Checkpoint, error) {
	cp := Checkpoint{Saved: time.Now().UTC()}
	switch c.cfg.Start {
	case "current":
		vals, err := firstRow(ctx, db, "SHOW MASTER STATUS")
		if err != nil && !errors.Is(err, errNoBinlog) { // MySQL 8.4 renamed it
			vals, err = firstRow(ctx, db, "SHOW BINARY LOG STATUS")
		}
		if err != nil {
			return cp, fmt.Errorf("cdc: current binlog position: %w", err)
		}
		pos, _ := strconv.ParseUint(vals[1], 10, 32)
		cp.File, cp.Pos = vals[0], uint32(pos)
		if c.cfg.NoGTID {
			return cp, nil
		}
		q := "SELECT @@GLOBAL.gtid_executed"
		if c.cfg.Flavor == mysql.MariaDBFlavor {
			q = "SELECT @@GLOBAL.gtid_binlog_pos"
		}
		var gtid sql.NullString
		if err := db.QueryRowContext(ctx, q).Scan(&gtid); err == nil {
			cp.GTID = gtid.String
		}
		return cp, nil // an empty GTID set (gtid_mode=OFF): positions only
	case "earliest":
		vals, err := firstRow(ctx, db, "SHOW BINARY LOGS")
		if err != nil {
			return cp, fmt.Errorf("cdc: binlog files: %w", err)
		}
		cp.File, cp.Pos = vals[0], 4
		return cp, nil
	}
	file, pos, err := parseStart(c.cfg.Start)
	cp.File, cp.Pos = file, pos
	return cp, err
}

// capture is what the CDC knows of one table.
type capture struct {
	src   *source.Source // nil: not captured
	name  string         // the events' source name
	topic string
}

type run struct {
	c    *CDC
	db   *sql.DB
	hist *history
	kcl  *kgo.Client
	rep  *source.Reporter
	acks *acks

	// reader state (one goroutine)
	tables   map[string]*capture // "db.table"
	file     string
	seq      uint64
	cur      *txn
	txn      *txnBuffer // the events of cur, until its end
	gtidTime time.Time  // MySQL: the commit time of cur from its GTID event
	commit   time.Time  // the commit time stamped on the last transaction
	lastDDL  Coord
	verified map[string]Coord // table → last DDL after which its schema was checked
	buf      []byte

	seenMu sync.Mutex
	seen   map[string]string // source name → topic, for progress reports
	ddl    atomic.Bool       // a DDL was read since the last discover
}

func (r *run) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.acks.onFatal = func(err error) { cancel(errFatal{err}) }

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.checkpointLoop(ctx) }()
	go func() { defer wg.Done(); r.progressLoop(ctx) }()

	var err error
	for attempt := 0; ; attempt++ {
		err = r.stream(ctx)
		if ctx.Err() != nil {
			break
		}
		var fatal errFatal
		if errors.As(err, &fatal) {
			break
		}
		// Wait for what was sent, then resume from the acknowledged end.
		fctx, fcancel := context.WithTimeout(ctx, time.Minute)
		ferr := r.kcl.Flush(fctx)
		fcancel()
		if ferr != nil {
			break
		}
		r.c.log.Warn("cdc: binlog stream failed, resuming from the checkpoint", "err", err)
		if !sleepCtx(ctx, time.Duration(min(attempt+1, 10))*time.Second) {
			break
		}
	}
	cancel(nil)
	wg.Wait()
	// Let Kafka acknowledge what was sent, then record it.
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fcancel()
	if ferr := r.kcl.Flush(fctx); ferr != nil {
		r.c.log.Warn("cdc: flush at exit", "err", ferr)
	}
	if serr := r.saveCheckpoint(); serr != nil {
		return serr
	}
	cause := context.Cause(ctx)
	var fatal errFatal
	if errors.As(cause, &fatal) {
		return fatal.error
	}
	if errors.As(err, &fatal) {
		return fatal.error
	}
	return nil
}

// stream reads the binlog from the acknowledged checkpoint until an error.
func (r *run) stream(ctx context.Context) error {
	cfg := &r.c.cfg
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return errFatal{fmt.Errorf("cdc: Addr %q: %w", cfg.Addr, err)}
	}
	pn, _ := strconv.ParseUint(port, 10, 16)
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: cfg.ServerID, Flavor: cfg.Flavor, Host: host, Port: uint16(pn),
		User: cfg.User, Password: cfg.Password,
		TimestampStringLocation: time.UTC,
		HeartbeatPeriod:         time.Second,
		ReadTimeout:             30 * time.Second,
		DisableRetrySync:        true,
		Logger:                  slog.New(slog.DiscardHandler),
	})
	defer syncer.Close()
	defer r.txn.reset()

	cp := r.acks.checkpoint()
	r.cur = nil
	r.txn.reset()
	r.gtidTime, r.commit = time.Time{}, cp.Commit
	r.acks.reset()
	var st *replication.BinlogStreamer
	if cp.GTID != "" && !cfg.NoGTID {
		gset, err := mysql.ParseGTIDSet(cfg.Flavor, cp.GTID)
		if err != nil {
			return errFatal{fmt.Errorf("cdc: checkpoint GTID %q: %w", cp.GTID, err)}
		}
		st, err = syncer.StartSyncGTID(gset)
		if err != nil {
			return fmt.Errorf("cdc: start at GTID %s: %w", cp.GTID, err)
		}
	} else {
		st, err = syncer.StartSync(mysql.Position{Name: cp.File, Pos: cp.Pos})
		if err != nil {
			return fmt.Errorf("cdc: start at %s:%d: %w", cp.File, cp.Pos, err)
		}
	}
	r.file = cp.File
	if r.seq, err = fileSeq(cp.File); err != nil {
		return errFatal{err}
	}
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			return err
		}
		if err := r.handle(ctx, ev); err != nil {
			return err
		}
	}
}

func (r *run) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		seq, err := fileSeq(string(e.NextLogName))
		if err != nil {
			return errFatal{err}
		}
		r.file, r.seq = string(e.NextLogName), seq
	case *replication.RowsEvent:
		return r.rows(ctx, h, e)
	case *replication.GTIDEvent: // MySQL; MariaDB's has no commit time
		r.gtidTime = e.ImmediateCommitTime()
	case *replication.GtidTaggedLogEvent:
		r.gtidTime = e.ImmediateCommitTime()
	case *replication.XIDEvent:
		return r.endTxn(h, e.GSet)
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		upper := strings.ToUpper(q[:min(len(q), 16)])
		switch {
		case upper == "BEGIN", strings.HasPrefix(upper, "SAVEPOINT"), strings.HasPrefix(upper, "ROLLBACK TO"), strings.HasPrefix(upper, "XA "):
		case upper == "COMMIT", upper == "ROLLBACK":
			return r.endTxn(h, e.GSet)
		default: // DDL: schemas may have changed from here on
			r.lastDDL = Coord{r.seq, uint64(h.LogPos)}
			r.ddl.Store(true)
			if m := r.c.cfg.Metrics; m != nil {
				m.DDL.Inc()
			}
			return r.endTxn(h, e.GSet)
		}
	case *replication.GenericEvent:
		if h.EventType == replication.HEARTBEAT_EVENT || h.EventType == replication.HEARTBEAT_LOG_EVENT_V2 {
			if r.cur == nil {
				r.acks.heartbeat(time.Now())
			}
			if m := r.c.cfg.Metrics; m != nil {
				m.BinlogDelay.Set(0)
			}
		}
	}
	return nil
}

// endTxn ends the current transaction at its end event (XID, COMMIT,
// ROLLBACK or DDL): its changes are produced, stamped with its commit time.
func (r *run) endTxn(h *replication.EventHeader, gset mysql.GTIDSet) error {
	commit := r.commitTime(h)
	err := r.txn.drain(func(topic string, ev *eventcenter.Event) error {
		ev.Time = commit
		return r.produce(topic, ev)
	})
	if err != nil {
		return err
	}
	end := Checkpoint{File: r.file, Pos: h.LogPos, Commit: commit}
	if gset != nil {
		end.GTID = gset.String()
	}
	r.acks.end(r.cur, end, commit)
	r.cur = nil
	if m := r.c.cfg.Metrics; m != nil && h.Timestamp > 0 {
		m.BinlogDelay.Set(max(time.Since(time.Unix(int64(h.Timestamp), 0)).Seconds(), 0))
	}
	return nil
}

// commitTime returns the time stamped on every change of the transaction
// ending at the end event h: its commit time as the binlog gives it (see
// "Commit time" in the package doc), but never earlier than the previous
// transaction's, so that time order is binlog order, which is commit order.
// It depends only on the binlog from the checkpoint on and the checkpoint's
// Commit, so a replay stamps the same times.
func (r *run) commitTime(h *replication.EventHeader) time.Time {
	t := time.Unix(int64(h.Timestamp), 0).UTC()
	if !r.gtidTime.IsZero() {
		t = r.gtidTime.UTC()
	}
	if t.Before(r.commit) {
		t = r.commit
	}
	r.commit, r.gtidTime = t, time.Time{}
	return t
}

func (r *run) capture(db, table string) *capture {
	k := db + "." + table
	if c, ok := r.tables[k]; ok {
		return c
	}
	c := &capture{}
	for _, s := range r.c.cfg.Sources.ByKind(source.KindMySQL) {
		if name, ok := s.MatchTable(db, table); ok {
			c.src, c.name, c.topic = s, name, s.Topic
			break
		}
	}
	r.tables[k] = c
	return c
}

// schema returns the schema of db.table for a rows event at coord.
func (r *run) schema(ctx context.Context, c *capture, db, table string, at Coord, types []byte) (*Table, error) {
	k := db + "." + table
	v, ok := r.hist.at(db, table, at)
	reload := !ok
	reason := "first seen"
	if ok && r.lastDDL.Compare(v.At) > 0 && r.lastDDL.Compare(at) <= 0 && r.verified[k].Compare(r.lastDDL) < 0 {
		reload, reason = true, "DDL"
	}
	if ok && !reload && !v.Table.matchesBinlog(types) {
		reload, reason = true, "binlog columns differ"
	}
	if !reload {
		return v.Table, nil
	}
	t, err := LoadTable(ctx, r.db, db, table, c.src.MySQL.Key)
	if err != nil {
		return nil, err
	}
	if !t.matchesBinlog(types) {
		return nil, errFatal{fmt.Errorf("cdc: %s at %d:%d: the binlog has %d columns of other types than the table's %d today: "+
			"a DDL changed it since; restart from a checkpoint after it, or log binlog_row_metadata=FULL", k, at.File, at.Pos, len(types), len(t.Columns))}
	}
	recordAt := at
	if reason == "DDL" {
		recordAt = r.lastDDL
		r.verified[k] = r.lastDDL
	}
	if err := r.hist.record(schemaVersion{At: recordAt, Table: t}); err != nil {
		return nil, errFatal{fmt.Errorf("cdc: schema history: %w", err)}
	}
	r.c.log.Info("cdc: schema", "table", k, "at", fmt.Sprintf("%d:%d", recordAt.File, recordAt.Pos), "reason", reason, "columns", len(t.Columns))
	return t, nil
}

func (r *run) rows(ctx context.Context, h *replication.EventHeader, e *replication.RowsEvent) error {
	db, table := string(e.Table.Schema), string(e.Table.Table)
	c := r.capture(db, table)
	if c.src == nil {
		return nil
	}
	start := uint64(h.LogPos) - uint64(h.EventSize)
	if h.LogPos == 0 || uint64(h.LogPos) < uint64(h.EventSize) {
		return errFatal{fmt.Errorf("cdc: rows event of %s.%s without a log position", db, table)}
	}
	t, err := r.schema(ctx, c, db, table, Coord{r.seq, start}, e.Table.ColumnType)
	if err != nil {
		return err
	}
	if r.cur == nil {
		r.cur = r.acks.begin()
	}
	r.seenMu.Lock()
	if _, ok := r.seen[c.name]; !ok {
		r.seen[c.name] = c.topic
	}
	r.seenMu.Unlock()

	// The statement's time, until the transaction's end gives the commit
	// time (endTxn).
	ts := time.Unix(int64(h.Timestamp), 0).UTC()
	kind := e.Type()
	step := 1
	if kind == replication.EnumRowsEventTypeUpdate {
		step = 2
	}
	if len(e.Rows)/step >= 1<<16 {
		return errFatal{fmt.Errorf("cdc: a rows event of %s.%s holds %d rows, more than 65535", db, table, len(e.Rows)/step)}
	}
	m := r.c.cfg.Metrics
	for i := 0; i+step <= len(e.Rows); i += step {
		pos := eventcenter.Position{Log: r.seq, Offset: start<<16 | uint64(i/step)}
		var before, after eventcenter.Row
		var op eventcenter.Op
		switch kind {
		case replication.EnumRowsEventTypeInsert:
			op = eventcenter.OpInsert
			if after, err = r.row(t, e.Rows[i]); err != nil {
				return err
			}
		case replication.EnumRowsEventTypeUpdate:
			op = eventcenter.OpUpdate
			if before, err = r.row(t, e.Rows[i]); err != nil {
				return err
			}
			if after, err = r.row(t, e.Rows[i+1]); err != nil {
				return err
			}
		case replication.EnumRowsEventTypeDelete:
			op = eventcenter.OpDelete
			if before, err = r.row(t, e.Rows[i]); err != nil {
				return err
			}
		default:
			return errFatal{fmt.Errorf("cdc: unknown rows event type %v", h.EventType)}
		}
		ev := eventcenter.Event{Source: c.name, Time: ts, Pos: pos, Op: op, After: after, Before: before}
		img := after
		if op == eventcenter.OpDelete {
			img = before
		}
		if ev.Key, err = key(t, img); err != nil {
			return errFatal{fmt.Errorf("cdc: %s.%s: %w", db, table, err)}
		}
		if op == eventcenter.OpUpdate {
			if oldKey, err := key(t, before); err == nil && oldKey != ev.Key {
				// The key changed: the old entity is gone, a new one exists.
				del := eventcenter.Event{Source: c.name, Key: oldKey, Time: ts, Pos: pos, Op: eventcenter.OpDelete, Before: before}
				if err := r.txn.add(c.topic, del); err != nil {
					return err
				}
				ev.Op, ev.Before = eventcenter.OpInsert, nil
			}
		}
		if err := r.txn.add(c.topic, ev); err != nil {
			return err
		}
		if m != nil {
			m.RowChanges.WithLabelValues(c.name).Inc()
		}
	}
	return nil
}

func (r *run) row(t *Table, vals []any) (eventcenter.Row, error) {
	if len(vals) != len(t.Columns) {
		return nil, errFatal{fmt.Errorf("cdc: %s.%s: row image of %d columns, schema of %d", t.Database, t.Name, len(vals), len(t.Columns))}
	}
	row := make(eventcenter.Row, len(vals))
	for i := range t.Columns {
		c := &t.Columns[i]
		v, err := binlogValue(c, vals[i], r.c.cfg.Zone)
		if err != nil {
			return nil, errFatal{fmt.Errorf("cdc: %s.%s: %w", t.Database, t.Name, err)}
		}
		row[c.Name] = v
	}
	return row, nil
}

func key(t *Table, row eventcenter.Row) (string, error) {
	vals := make([]any, len(t.Key))
	for i, k := range t.Key {
		vals[i] = row[t.Columns[k].Name]
	}
	return source.RowKey(vals...)
}

// produce sends one event; its acknowledgement is counted on the current
// transaction.
func (r *run) produce(topic string, e *eventcenter.Event) error {
	v, err := r.c.cfg.Codec.Append(nil, e)
	if err != nil {
		return errFatal{fmt.Errorf("cdc: encode %s %s: %w", e.Source, e.Key, err)}
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(e.Key), Value: v,
		Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(r.c.cfg.Codec.Name())}}}
	t := r.cur
	r.acks.sent(t)
	r.kcl.Produce(context.Background(), rec, func(rec *kgo.Record, err error) {
		if err == nil {
			r.rep.Acked(rec)
		}
		r.acks.acked(t, err)
	})
	return nil
}

func (r *run) saveCheckpoint() error {
	cp := r.acks.checkpoint()
	r.seenMu.Lock()
	cp.Sources = cp.Sources[:0]
	for name := range r.seen {
		cp.Sources = append(cp.Sources, name)
	}
	r.seenMu.Unlock()
	slices.Sort(cp.Sources)
	cp.Saved = time.Now().UTC()
	if err := saveCheckpoint(r.c.cfg.Dir, cp); err != nil {
		return fmt.Errorf("cdc: save checkpoint: %w", err)
	}
	r.acks.saved(cp)
	if m := r.c.cfg.Metrics; m != nil {
		m.Checkpoints.Inc()
	}
	return nil
}

func (r *run) checkpointLoop(ctx context.Context) {
	tick := time.NewTicker(r.c.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !r.acks.dirty() {
			continue
		}
		if err := r.saveCheckpoint(); err != nil {
			r.c.log.Error("cdc: checkpoint", "err", err)
		}
	}
}

// discoverInterval: how often the captured tables are listed again,
// besides after every DDL read (a table created with sql_log_bin=0 leaves
// no DDL in the binlog).
const discoverInterval = time.Minute

// discover adds to the sources whose progress is reported the source of
// every table that exists now and that the registry captures (the first
// mysql source matching it, as for its changes). A claim holds for every
// captured table, changed or not: its changes are in the binlog the
// frontier passed. So a source none of whose changes was read since the
// CDC started (its table written before, only with sql_log_bin=0, or not
// at all) has its watermark moved on too, and a reader waiting on it (the
// nightly correction waits for its chunk's snapshot time) does not wait for
// a write that may never come.
func (r *run) discover(ctx context.Context) error {
	rows, err := r.db.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		return fmt.Errorf("cdc: list tables: %w", err)
	}
	defer rows.Close()
	srcs := r.c.cfg.Sources.ByKind(source.KindMySQL)
	found := map[string]string{}
	for rows.Next() {
		var db, table string
		if err := rows.Scan(&db, &table); err != nil {
			return fmt.Errorf("cdc: list tables: %w", err)
		}
		for _, s := range srcs {
			if name, ok := s.MatchTable(db, table); ok {
				found[name] = s.Topic
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cdc: list tables: %w", err)
	}
	r.seenMu.Lock()
	maps.Copy(r.seen, found)
	r.seenMu.Unlock()
	return nil
}

func (r *run) progressLoop(ctx context.Context) {
	tick := time.NewTicker(r.c.cfg.ProgressInterval)
	defer tick.Stop()
	discovered := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if r.ddl.Swap(false) || time.Since(discovered) >= discoverInterval {
			if err := r.discover(ctx); err != nil {
				if ctx.Err() == nil {
					r.c.log.Warn("cdc: progress: captured tables not listed; retrying", "err", err)
				}
				r.ddl.Store(true)
			} else {
				discovered = time.Now()
			}
		}
		claim := r.acks.claim(r.c.cfg.Lateness)
		if m := r.c.cfg.Metrics; m != nil {
			m.Unacked.Set(float64(r.acks.unackedCount()))
		}
		if claim.IsZero() {
			continue
		}
		r.seenMu.Lock()
		seen := make(map[string]string, len(r.seen))
		for k, v := range r.seen {
			seen[k] = v
		}
		r.seenMu.Unlock()
		for name, topic := range seen {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.rep.Report(rctx, name, topic, claim)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.c.log.Warn("cdc: progress report", "source", name, "err", err)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
