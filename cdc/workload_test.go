package cdc_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The workload's tables: a single-column key, a composite key, an unsigned
// key; exact decimals, times with fractions, JSON, NULLs, binary, enums.
var workloadTables = []string{
	`CREATE TABLE accounts (id BIGINT NOT NULL PRIMARY KEY, user_id VARCHAR(16) NOT NULL,
		balance DECIMAL(18,2) NOT NULL, status ENUM('open','frozen','closed') NOT NULL, rate DOUBLE NULL,
		updated DATETIME(6) NOT NULL, doc JSON NULL, note VARCHAR(64) NULL, version INT NOT NULL)`,
	`CREATE TABLE orders (user_id VARCHAR(16) NOT NULL, order_no INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
		created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), state VARCHAR(10) NOT NULL,
		payload VARBINARY(32) NULL, version INT NOT NULL, PRIMARY KEY (user_id, order_no))`,
	`CREATE TABLE ledger (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, account BIGINT NOT NULL, delta DECIMAL(18,4) NOT NULL,
		memo TEXT NULL, day DATE NOT NULL, version INT NOT NULL)`,
}

var workloadNames = []string{"accounts", "orders", "ledger"}

// workload runs a mixed insert/update/delete load until target row changes
// are committed, with `workers` connections each owning its keys. It
// returns the committed row changes per table (rolled back transactions are
// not counted: the binlog does not have them).
type workload struct {
	db      *sql.DB
	workers int
	target  int64

	done    atomic.Int64
	mu      sync.Mutex
	changes map[string]int64
}

func newWorkload(db *sql.DB, workers int, target int64) *workload {
	return &workload{db: db, workers: workers, target: target, changes: map[string]int64{}}
}

func (w *workload) run(ctx context.Context, t testing.TB) {
	var wg sync.WaitGroup
	errs := make(chan error, w.workers)
	for i := range w.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.worker(ctx, i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type op struct {
	table string
	n     int64
}

func (w *workload) worker(ctx context.Context, id int) error {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	live := map[string][]int64{} // table → live key numbers (this worker's)
	next := int64(0)
	key := func() int64 { next++; return next*int64(w.workers) + int64(id) }
	pick := func(table string) (int64, int) {
		ks := live[table]
		i := rng.IntN(len(ks))
		return ks[i], i
	}
	for w.done.Load() < w.target {
		if ctx.Err() != nil {
			return nil
		}
		tx, err := w.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var ops []op
		added := map[string][]int64{}
		deleted := map[string][]int64{}
		nops := 1 + rng.IntN(4)
		for range nops {
			table := workloadNames[rng.IntN(len(workloadNames))]
			kind := rng.IntN(100)
			if len(live[table]) < 5 {
				kind = 0
			}
			var res sql.Result
			now := time.Now().UTC().Format("2006-01-02 15:04:05.000000")
			switch {
			case kind < 45: // insert, sometimes several rows in one statement
				rows := 1 + rng.IntN(3)
				var vals []string
				var args []any
				for range rows {
					k := key()
					added[table] = append(added[table], k)
					switch table {
					case "accounts":
						vals = append(vals, "(?, ?, ?, ?, ?, ?, ?, ?, 1)")
						var doc, note any
						if rng.IntN(4) > 0 {
							doc = fmt.Sprintf(`{"k": %d, "tags": ["a", "b"], "ok": true}`, k)
						}
						if rng.IntN(3) > 0 {
							note = fmt.Sprintf("note %d é", k)
						}
						args = append(args, k, fmt.Sprintf("u%d", k%97), fmt.Sprintf("%d.%02d", rng.IntN(1e9), rng.IntN(100)),
							[]string{"open", "frozen", "closed"}[rng.IntN(3)], rng.Float64()*1000, now, doc, note)
					case "orders":
						vals = append(vals, "(?, ?, ?, NOW(6), ?, ?, 1)")
						var payload any
						if rng.IntN(2) == 0 {
							payload = []byte{byte(k), 0, byte(k >> 8), 0xff}
						}
						args = append(args, fmt.Sprintf("u%d", k%97), k, fmt.Sprintf("%d.%02d", rng.IntN(1e6), rng.IntN(100)), "new", payload)
					case "ledger":
						vals = append(vals, "(?, ?, ?, ?, ?, 1)")
						args = append(args, uint64(k)+1<<63, k%1000, fmt.Sprintf("-%d.%04d", rng.IntN(1e6), rng.IntN(1e4)),
							strings.Repeat("m", rng.IntN(200)), time.Now().UTC().Format("2006-01-02"))
					}
				}
				cols := map[string]string{
					"accounts": "(id, user_id, balance, status, rate, updated, doc, note, version)",
					"orders":   "(user_id, order_no, amount, created, state, payload, version)",
					"ledger":   "(id, account, delta, memo, day, version)",
				}[table]
				res, err = tx.ExecContext(ctx, "INSERT INTO "+table+" "+cols+" VALUES "+strings.Join(vals, ", "), args...)
			case kind < 85: // update one row, or a few in one statement
				k, _ := pick(table)
				where, args := keyWhere(table, k)
				if rng.IntN(5) == 0 && len(live[table]) > 3 {
					k2, _ := pick(table)
					w2, a2 := keyWhere(table, k2)
					where, args = "("+where+") OR ("+w2+")", append(args, a2...)
				}
				set := map[string]string{
					"accounts": "balance = balance + 1.25, status = 'frozen', updated = '" + now + "', note = NULL, rate = rate / 3, version = version + 1",
					"orders":   "amount = amount * 1.5, state = 'paid', payload = X'0102', version = version + 1",
					"ledger":   "delta = delta - 0.0001, memo = CONCAT('upd ', version), version = version + 1",
				}[table]
				res, err = tx.ExecContext(ctx, "UPDATE "+table+" SET "+set+" WHERE "+where, args...)
			default: // delete
				k, i := pick(table)
				where, args := keyWhere(table, k)
				res, err = tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE "+where, args...)
				if err == nil {
					deleted[table] = append(deleted[table], k)
					// keep the live list consistent within the transaction
					live[table] = append(live[table][:i], live[table][i+1:]...)
				}
			}
			if err != nil {
				tx.Rollback()
				return fmt.Errorf("%s: %w", table, err)
			}
			n, _ := res.RowsAffected()
			ops = append(ops, op{table, n})
		}
		if rng.IntN(50) == 0 { // a rollback now and then: nothing reaches the binlog
			if err := tx.Rollback(); err != nil {
				return err
			}
			for table, ks := range deleted { // deleted keys are back; inserted ones never were
				live[table] = append(live[table], ks...)
			}
			continue
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		for table, ks := range added {
			live[table] = append(live[table], ks...)
		}
		w.mu.Lock()
		for _, o := range ops {
			w.changes[o.table] += o.n
			w.done.Add(o.n)
		}
		w.mu.Unlock()
	}
	return nil
}

func keyWhere(table string, k int64) (string, []any) {
	switch table {
	case "orders":
		return "user_id = ? AND order_no = ?", []any{fmt.Sprintf("u%d", k%97), k}
	case "ledger":
		return "id = ?", []any{uint64(k) + 1<<63}
	}
	return "id = ?", []any{k}
}
