package correction

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/source"
)

// Errors naming why a source cannot be corrected. They are wrapped with the
// source's name.
var (
	ErrNoTable      = errors.New("correction: the table does not exist")
	ErrNoKey        = errors.New("correction: the table has no primary key and its source names no mysql.key")
	ErrUnmappedType = errors.New("correction: a column type the CDC does not map")
)

// Target is one table to correct: a concrete mysql source and its table.
type Target struct {
	Source   string   `json:"source"`        // the events' source name
	Database string   `json:"database"`      // the table's schema
	Table    string   `json:"table"`         // the table's name
	Key      []string `json:"key,omitempty"` // the source's mysql.key; nil for the primary key
}

func (t Target) String() string { return t.Source + " (" + t.Database + "." + t.Table + ")" }

// Targets lists the tables the registry's mysql sources capture, as the
// server's information_schema names them, ordered by source name. If names
// is not empty, only the sources named (concrete names, as events carry
// them) are listed, and a name that no table of the server matches is an
// error wrapping ErrNoTable.
func Targets(ctx context.Context, db *sql.DB, reg *source.Config, names []string) ([]Target, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')`)
	if err != nil {
		return nil, fmt.Errorf("correction: listing tables: %w", err)
	}
	defer rows.Close()
	var out []Target
	for rows.Next() {
		var dbName, table string
		if err := rows.Scan(&dbName, &table); err != nil {
			return nil, fmt.Errorf("correction: listing tables: %w", err)
		}
		for _, s := range reg.ByKind(source.KindMySQL) {
			name, ok := s.MatchTable(dbName, table)
			if !ok {
				continue
			}
			if len(names) == 0 || slices.Contains(names, name) {
				out = append(out, Target{Source: name, Database: dbName, Table: table, Key: s.MySQL.Key})
			}
			break // the first matching source captures the table, as in the CDC
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("correction: listing tables: %w", err)
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Source, b.Source) })
	for _, n := range names {
		if !slices.ContainsFunc(out, func(t Target) bool { return t.Source == n }) {
			return nil, fmt.Errorf("correction: source %s: %w (no table of the server matches it)", n, ErrNoTable)
		}
	}
	return out, nil
}

// mapped are the DATA_TYPEs the CDC's mapping covers (see cdc.ValueFromText).
var mapped = map[string]bool{}

func init() {
	for _, t := range strings.Fields(`tinyint smallint mediumint int integer bigint bool boolean year bit
		decimal numeric float double real datetime date timestamp time
		char varchar tinytext text mediumtext longtext json enum set
		binary varbinary tinyblob blob mediumblob longblob geometry point linestring polygon
		multipoint multilinestring multipolygon geometrycollection`) {
		mapped[t] = true
	}
}

// LoadSchema reads the target's columns and key as the CDC does
// (cdc.LoadTable), and checks that the table can be corrected: it exists
// (else ErrNoTable), has a key (else ErrNoKey) and only columns of types
// the CDC maps (else ErrUnmappedType, naming the column). Errors name the
// source.
func LoadSchema(ctx context.Context, db *sql.DB, t Target) (*cdc.Table, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
		t.Database, t.Table).Scan(&n); err != nil {
		return nil, fmt.Errorf("correction: source %s: %w", t, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("correction: source %s: %w", t, ErrNoTable)
	}
	if len(t.Key) == 0 {
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.STATISTICS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'`, t.Database, t.Table).Scan(&n); err != nil {
			return nil, fmt.Errorf("correction: source %s: %w", t, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("correction: source %s: %w", t, ErrNoKey)
		}
	}
	schema, err := cdc.LoadTable(ctx, db, t.Database, t.Table, t.Key)
	if err != nil {
		return nil, fmt.Errorf("correction: source %s: %w", t, err)
	}
	for _, c := range schema.Columns {
		if !mapped[c.DataType] {
			return nil, fmt.Errorf("correction: source %s: column %s of type %s: %w", t, c.Name, c.DataType, ErrUnmappedType)
		}
	}
	return schema, nil
}
