package cdc

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Column is one column of a captured table, as information_schema
// describes it.
type Column struct {
	Name string `json:"name"`
	// DataType is information_schema.COLUMNS.DATA_TYPE, lower case: int,
	// bigint, decimal, varchar, blob, json, datetime, timestamp, enum…
	DataType string `json:"type"`
	// Unsigned integer column.
	Unsigned bool `json:"unsigned,omitempty"`
	// Values of an enum or set column, in declaration order.
	Values []string `json:"values,omitempty"`
}

// Table is the schema of a captured table at one point of the binlog.
type Table struct {
	Database string   `json:"db"`
	Name     string   `json:"table"`
	Columns  []Column `json:"columns"`
	// Key holds the indexes in Columns of the key columns, in key order.
	Key []int `json:"key"`
}

// Equal reports whether t and u describe the same columns and key.
func (t *Table) Equal(u *Table) bool {
	if t.Database != u.Database || t.Name != u.Name || !slices.Equal(t.Key, u.Key) || len(t.Columns) != len(u.Columns) {
		return false
	}
	for i, c := range t.Columns {
		d := u.Columns[i]
		if c.Name != d.Name || c.DataType != d.DataType || c.Unsigned != d.Unsigned || !slices.Equal(c.Values, d.Values) {
			return false
		}
	}
	return true
}

// LoadTable reads the current schema of db.table from information_schema.
// The key is keyColumns if given, else the primary key; a table with
// neither is an error.
func LoadTable(ctx context.Context, conn *sql.DB, db, table string, keyColumns []string) (*Table, error) {
	rows, err := conn.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), COLUMN_KEY
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("cdc: schema of %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	t := &Table{Database: db, Name: table}
	var pk []int
	for rows.Next() {
		var name, dataType, columnType, key string
		if err := rows.Scan(&name, &dataType, &columnType, &key); err != nil {
			return nil, fmt.Errorf("cdc: schema of %s.%s: %w", db, table, err)
		}
		c := Column{Name: name, DataType: dataType, Unsigned: strings.Contains(columnType, "unsigned")}
		if dataType == "enum" || dataType == "set" {
			if c.Values, err = parseValues(columnType); err != nil {
				return nil, fmt.Errorf("cdc: schema of %s.%s: column %s: %w", db, table, name, err)
			}
		}
		if key == "PRI" {
			pk = append(pk, len(t.Columns))
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cdc: schema of %s.%s: %w", db, table, err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("cdc: schema of %s.%s: no such table", db, table)
	}
	if len(keyColumns) > 0 {
		for _, k := range keyColumns {
			i := slices.IndexFunc(t.Columns, func(c Column) bool { return strings.EqualFold(c.Name, k) })
			if i < 0 {
				return nil, fmt.Errorf("cdc: %s.%s: key column %q does not exist", db, table, k)
			}
			t.Key = append(t.Key, i)
		}
		return t, nil
	}
	if len(pk) > 1 { // COLUMNS lists them in table order; the key order is the index's
		krows, err := conn.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, db, table)
		if err != nil {
			return nil, fmt.Errorf("cdc: primary key of %s.%s: %w", db, table, err)
		}
		defer krows.Close()
		pk = pk[:0]
		for krows.Next() {
			var name string
			if err := krows.Scan(&name); err != nil {
				return nil, err
			}
			pk = append(pk, slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == name }))
		}
		if err := krows.Err(); err != nil {
			return nil, err
		}
	}
	if len(pk) == 0 {
		return nil, fmt.Errorf("cdc: %s.%s has no primary key: name its key columns in the source's mysql.key", db, table)
	}
	t.Key = pk
	return t, nil
}

// parseValues reads the values of an enum or set column type, e.g.
// "enum('a','b')", where a quote inside a value is written twice.
func parseValues(columnType string) ([]string, error) {
	open := strings.IndexByte(columnType, '(')
	if open < 0 || !strings.HasSuffix(columnType, ")") {
		return nil, fmt.Errorf("cannot read the values of %q", columnType)
	}
	s := columnType[open+1 : len(columnType)-1]
	var out []string
	for len(s) > 0 {
		if s[0] != '\'' {
			return nil, fmt.Errorf("cannot read the values of %q", columnType)
		}
		var b strings.Builder
		i := 1
		for ; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				break
			}
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
		s = strings.TrimPrefix(s[min(i+1, len(s)):], ",")
	}
	return out, nil
}

// matchesBinlog reports whether the columns agree with the types a
// TABLE_MAP event gives (count, and type family where it can tell).
func (t *Table) matchesBinlog(types []byte) bool {
	if len(types) != len(t.Columns) {
		return false
	}
	for i, tp := range types {
		if !typeFits(tp, t.Columns[i].DataType) {
			return false
		}
	}
	return true
}

func typeFits(tp byte, dataType string) bool {
	switch tp {
	case mysql.MYSQL_TYPE_TINY:
		return dataType == "tinyint" || dataType == "bool" || dataType == "boolean"
	case mysql.MYSQL_TYPE_SHORT:
		return dataType == "smallint"
	case mysql.MYSQL_TYPE_INT24:
		return dataType == "mediumint"
	case mysql.MYSQL_TYPE_LONG:
		return dataType == "int" || dataType == "integer"
	case mysql.MYSQL_TYPE_LONGLONG:
		return dataType == "bigint"
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		return dataType == "decimal" || dataType == "numeric"
	case mysql.MYSQL_TYPE_FLOAT:
		return dataType == "float"
	case mysql.MYSQL_TYPE_DOUBLE:
		return dataType == "double" || dataType == "real"
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return dataType == "timestamp"
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return dataType == "datetime"
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return dataType == "date"
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return dataType == "time"
	case mysql.MYSQL_TYPE_YEAR:
		return dataType == "year"
	case mysql.MYSQL_TYPE_BIT:
		return dataType == "bit"
	case mysql.MYSQL_TYPE_JSON:
		return dataType == "json"
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
		return dataType == "varchar" || dataType == "varbinary"
	case mysql.MYSQL_TYPE_STRING: // also enum and set, whose real type is in the metadata
		return dataType == "char" || dataType == "binary" || dataType == "enum" || dataType == "set"
	case mysql.MYSQL_TYPE_BLOB:
		return strings.HasSuffix(dataType, "text") || strings.HasSuffix(dataType, "blob") || dataType == "json"
	}
	return true // a type we cannot tell apart: trust the schema
}
