// Package fallback reads rows from their source database for the
// FetchStrongNoDelay consistency level (see job.Fallback): when the event
// center's watermark of a MySQL source is behind a fetch's time, the fetch
// reads the row by primary key from MySQL itself instead of waiting.
//
// Reading the source loads it, so every read passes a token-bucket rate
// limit; reads over the limit are refused (and the fetch waits for the
// watermark instead), never queued without bound. A row whose last-change
// time column is after the fetch time is refused too: it would show the
// logic the future.
package fallback

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"golang.org/x/time/rate"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// Table maps an event center source to the MySQL table it captures.
type Table struct {
	// Source is the event center source, e.g. "mysql.loan.orders". Required.
	Source string
	// Schema (database) and Table name. Required.
	Schema, Table string
	// Key is the primary key column; the event key is its value as text
	// (single-column keys only). Required.
	Key string
	// TimeColumn is a DATETIME or TIMESTAMP column holding the row's last
	// change time (e.g. updated_at, maintained by the application or ON
	// UPDATE CURRENT_TIMESTAMP). Required: a row changed after the fetch
	// time is refused.
	TimeColumn string
}

// Config configures a MySQL fallback.
type Config struct {
	// Addr (host:port), User, Password of the server. Addr and User required.
	Addr, User, Password string
	// Tables the fallback may read. Required.
	Tables []Table
	// Rate is the most reads per second over all tables. Default 20.
	Rate float64
	// Burst is the token bucket's size. Default max(1, Rate/10).
	Burst int
	// MaxWait is how long a read may wait for a token. Default 0: a read
	// over the rate is refused at once (the fetch then waits for the
	// watermark, which is what "no delay" avoids, so keep the rate ample).
	MaxWait time.Duration
	// MaxConns bounds the open connections. Default 4.
	MaxConns int
	// Location of DATETIME values (the session time zone is set to UTC,
	// so TIMESTAMPs are UTC). Default UTC.
	Location *time.Location
	// Timeout bounds one read (connect and query). Default 2s.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Rate == 0 {
		c.Rate = 20
	}
	if c.Burst == 0 {
		c.Burst = max(1, int(c.Rate/10))
	}
	if c.MaxConns == 0 {
		c.MaxConns = 4
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	if c.Addr == "" || c.User == "" {
		return errors.New("fallback: Config.Addr and User are required")
	}
	if len(c.Tables) == 0 {
		return errors.New("fallback: no tables")
	}
	for _, t := range c.Tables {
		if t.Source == "" || t.Schema == "" || t.Table == "" || t.Key == "" || t.TimeColumn == "" {
			return fmt.Errorf("fallback: table %+v: Source, Schema, Table, Key and TimeColumn are required", t)
		}
	}
	if c.Rate < 0 || math.IsInf(c.Rate, 0) || c.Burst < 0 || c.MaxConns < 0 {
		return errors.New("fallback: Rate, Burst and MaxConns must not be negative")
	}
	return nil
}

// Stats counts a fallback's reads.
type Stats struct {
	Reads   int64 // rows served
	Limited int64 // refused over the rate
	Newer   int64 // refused: changed after the fetch time
	Absent  int64 // refused: no such row
	Errors  int64 // failed queries
}

// MySQL is a job.Fallback reading MySQL (or MariaDB) by primary key.
type MySQL struct {
	cfg     Config
	tables  map[string]*Table
	queries map[string]string
	limiter *rate.Limiter
	conns   chan *client.Conn // idle connections
	slots   chan struct{}     // one per open connection

	reads, limited, newer, absent, errs atomic.Int64
	closeOnce                           sync.Once
}

var _ job.Fallback = (*MySQL)(nil)

// NewMySQL returns a fallback; it connects lazily.
func NewMySQL(cfg Config) (*MySQL, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &MySQL{
		cfg: cfg, tables: map[string]*Table{}, queries: map[string]string{},
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		conns:   make(chan *client.Conn, cfg.MaxConns), slots: make(chan struct{}, cfg.MaxConns),
	}
	for i := range cfg.Tables {
		t := &cfg.Tables[i]
		m.tables[t.Source] = t
		m.queries[t.Source] = fmt.Sprintf("SELECT * FROM %s.%s WHERE %s = ?", quote(t.Schema), quote(t.Table), quote(t.Key))
	}
	return m, nil
}

func quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

// Covers implements job.Fallback.
func (m *MySQL) Covers(source string) bool { _, ok := m.tables[source]; return ok }

// Stats returns the counts so far.
func (m *MySQL) Stats() Stats {
	return Stats{Reads: m.reads.Load(), Limited: m.limited.Load(), Newer: m.newer.Load(), Absent: m.absent.Load(), Errors: m.errs.Load()}
}

// Read implements job.Fallback.
func (m *MySQL) Read(ctx context.Context, source, key string, at time.Time) (eventcenter.Event, error) {
	t, ok := m.tables[source]
	if !ok {
		return eventcenter.Event{}, fmt.Errorf("%w: source %s is not configured", job.ErrFallback, source)
	}
	if !m.allow(ctx) {
		m.limited.Add(1)
		return eventcenter.Event{}, fmt.Errorf("%w: rate limit of %v reads/s", job.ErrFallback, m.cfg.Rate)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	row, err := m.query(ctx, m.queries[source], key)
	if err != nil {
		m.errs.Add(1)
		return eventcenter.Event{}, fmt.Errorf("fallback: reading %s key %q: %w", source, key, err)
	}
	if row == nil {
		m.absent.Add(1)
		return eventcenter.Event{}, fmt.Errorf("%w: %s has no row %q", job.ErrFallback, source, key)
	}
	changed, ok := row[t.TimeColumn].(time.Time)
	if !ok {
		m.errs.Add(1)
		return eventcenter.Event{}, fmt.Errorf("fallback: %s.%s: time column %q is %T, not a DATETIME or TIMESTAMP", t.Schema, t.Table, t.TimeColumn, row[t.TimeColumn])
	}
	if changed.After(at) {
		m.newer.Add(1)
		return eventcenter.Event{}, fmt.Errorf("%w: %s row %q changed at %v, after %v", job.ErrFallback, source, key, changed, at)
	}
	m.reads.Add(1)
	return eventcenter.Event{Source: source, Key: key, Time: changed, Op: eventcenter.OpSnapshot, After: row}, nil
}

func (m *MySQL) allow(ctx context.Context) bool {
	if m.cfg.MaxWait <= 0 {
		return m.limiter.Allow()
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.MaxWait)
	defer cancel()
	return m.limiter.Wait(ctx) == nil
}

// query runs q on a pooled connection and returns the first row, nil if none.
func (m *MySQL) query(ctx context.Context, q string, key string) (eventcenter.Row, error) {
	conn, err := m.get(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	res, err := conn.Execute(q, key)
	if err != nil {
		m.drop(conn)
		return nil, err
	}
	defer res.Close()
	conn.SetDeadline(time.Time{})
	m.put(conn)
	if res.Resultset == nil || len(res.Values) == 0 {
		return nil, nil
	}
	return m.convert(res.Fields, res.Values[0])
}

func (m *MySQL) get(ctx context.Context) (*client.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	default:
	}
	select {
	case c := <-m.conns:
		return c, nil
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c, err := client.ConnectWithContext(ctx, m.cfg.Addr, m.cfg.User, m.cfg.Password, "", m.cfg.Timeout)
	if err == nil {
		_, err = c.Execute("SET time_zone = '+00:00'")
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		<-m.slots
		return nil, err
	}
	return c, nil
}

func (m *MySQL) put(c *client.Conn) {
	select {
	case m.conns <- c:
	default:
		m.drop(c)
	}
}

func (m *MySQL) drop(c *client.Conn) {
	c.Close()
	<-m.slots
}

// Close closes the idle connections.
func (m *MySQL) Close() error {
	m.closeOnce.Do(func() {
		for {
			select {
			case c := <-m.conns:
				m.drop(c)
			default:
				return
			}
		}
	})
	return nil
}

// convert maps a MySQL row to an event center row: integers to int64
// (unsigned beyond int64 to Decimal), DECIMAL to Decimal, FLOAT/DOUBLE to
// float64, DATE/DATETIME/TIMESTAMP to time.Time, binary strings and blobs
// to []byte, other text to string, NULL to nil.
func (m *MySQL) convert(fields []*mysql.Field, vals []mysql.FieldValue) (eventcenter.Row, error) {
	row := make(eventcenter.Row, len(fields))
	for i, f := range fields {
		v := &vals[i]
		name := string(f.Name)
		switch v.Type {
		case mysql.FieldValueTypeNull:
			row[name] = nil
		case mysql.FieldValueTypeSigned:
			row[name] = v.AsInt64()
		case mysql.FieldValueTypeUnsigned:
			if u := v.AsUint64(); u <= math.MaxInt64 {
				row[name] = int64(u)
			} else {
				row[name] = eventcenter.Decimal(strconv.FormatUint(u, 10))
			}
		case mysql.FieldValueTypeFloat:
			row[name] = v.AsFloat64()
		case mysql.FieldValueTypeString:
			s := string(v.AsString())
			switch f.Type {
			case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
				row[name] = eventcenter.Decimal(s)
			case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
				t, err := parseTime(s, m.cfg.Location)
				if err != nil {
					return nil, fmt.Errorf("column %s: %w", name, err)
				}
				row[name] = t
			case mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB, mysql.MYSQL_TYPE_BLOB,
				mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_BIT:
				if f.Charset == 63 { // binary
					row[name] = []byte(s)
				} else {
					row[name] = s
				}
			default:
				row[name] = s
			}
		}
	}
	return row, nil
}

func parseTime(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse time %q", s)
}
