// Package credit is the example job: credit features of a loan
// application, computed when the application is created, from the
// applicant's open orders, repayments in the last 90 days and profile — all
// fetched from the event center as of the application's time, never joined.
//
// The sources are MySQL tables captured into the event center (CDC):
//
//	mysql.loan.applications  id, user_id, amount DECIMAL, term_months, created_at   (the trigger)
//	mysql.loan.orders        id, user_id, principal DECIMAL, outstanding DECIMAL, status 'open'|'closed'
//	mysql.loan.repayments    id, user_id, order_id, amount DECIMAL, late BOOL, paid_at DATETIME
//	mysql.user.profiles      id, age, monthly_income DECIMAL, kyc_level
//
// with secondary indexes orders.user_id and repayments.user_id (Indexes).
//
// The job outputs, per application (entity: the application id):
//
//	user_id, amount, open_orders, open_outstanding, repayments_90d,
//	repaid_90d, late_repayments_90d, age, monthly_income, kyc_level,
//	debt_to_income, eligible, reasons
//
// under the parameters max_open_orders, max_late_repayments,
// repayment_window, max_debt_to_income and min_kyc_level, which operators
// change without a deploy.
package credit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// Name is the job's name; its features go to the source "feature.credit-features".
const Name = "credit-features"

// Version of the logic. Change it with the logic.
const Version = "1.0.0"

// Sources.
const (
	Applications = "mysql.loan.applications"
	Orders       = "mysql.loan.orders"
	Repayments   = "mysql.loan.repayments"
	Profiles     = "mysql.user.profiles"
)

// Indexes are the secondary indexes the job's lookups use.
func Indexes() []eventcenter.Index {
	return []eventcenter.Index{
		{Source: Orders, Name: "user_id", Column: "user_id"},
		{Source: Repayments, Name: "user_id", Column: "user_id"},
	}
}

// DeclareIndexes declares Indexes in store.
func DeclareIndexes(ctx context.Context, store eventcenter.Indexes) error {
	for _, ix := range Indexes() {
		if err := store.DeclareIndex(ctx, ix); err != nil {
			return err
		}
	}
	return nil
}

// Params are the job's parameters.
func Params() []params.Decl {
	return []params.Decl{
		{Name: "max_open_orders", Type: params.Int, Default: 3, Min: 0, Max: 20,
			Description: "Most loans an applicant may have open; more makes the application ineligible."},
		{Name: "max_late_repayments", Type: params.Int, Default: 1, Min: 0, Max: 10,
			Description: "Most late repayments within the repayment window."},
		{Name: "repayment_window", Type: params.Duration, Default: "2160h", Min: "24h", Max: "8760h",
			Description: "How far back repayments count (default 90 days)."},
		{Name: "max_debt_to_income", Type: params.Float, Default: 0.5, Min: 0.0, Max: 5.0,
			Description: "Most open outstanding plus the asked amount, over twelve monthly incomes."},
		{Name: "min_kyc_level", Type: params.Int, Default: 2, Min: 0, Max: 5,
			Description: "Least identity-verification level of the applicant."},
	}
}

// New defines the job. opts are added after the defaults (outputs, a
// consistency level, another version…). Default consistency: Eventual,
// which does not make a run see an order or repayment whose stream is
// behind the applications' (see job's "Consistency"); production runs it
// FetchStrong, as full-history credit statistics must not miss an order.
func New(opts ...job.Option) (*job.Job, error) {
	all := []job.Option{
		job.Trigger(Applications, job.Ops(eventcenter.OpInsert)),
		job.Reads(Profiles, Orders, Repayments), // what Logic fetches: parity impact and correction re-backfills use it
		job.Version(Version),
	}
	for _, d := range Params() {
		all = append(all, job.Param(d))
	}
	return job.New(Name, Logic, append(all, opts...)...)
}

// Logic is the main logic: three fetches, all as of the application's time.
func Logic(c *job.Context) (eventcenter.Row, error) {
	app := c.Trigger().After
	user := str(app["user_id"])
	if user == "" {
		return nil, fmt.Errorf("application %s has no user_id", c.Trigger().Key)
	}
	amount := num(app["amount"])

	// 1. The applicant's profile.
	profile, err := c.Get(Profiles, user)
	if err != nil && !errors.Is(err, job.ErrNotFound) {
		return nil, err
	}
	// 2. All the applicant's orders ("all orders of this user"), as of now.
	orders, err := c.Lookup(Orders, "user_id", user)
	if err != nil {
		return nil, err
	}
	var open int64
	var outstanding float64
	for _, o := range orders {
		if str(o.After["status"]) == "open" {
			open++
			outstanding += num(o.After["outstanding"])
		}
	}
	// 3. Repayments paid within the window.
	window := c.Duration("repayment_window")
	reps, err := c.Lookup(Repayments, "user_id", user)
	if err != nil {
		return nil, err
	}
	var count, late int64
	var repaid float64
	from := c.Time().Add(-window)
	for _, r := range reps {
		paid, ok := r.After["paid_at"].(time.Time)
		if !ok || paid.Before(from) || paid.After(c.Time()) {
			continue
		}
		count++
		repaid += num(r.After["amount"])
		if truthy(r.After["late"]) {
			late++
		}
	}

	income := num(profile["monthly_income"])
	dti := math.Inf(1)
	if income > 0 {
		dti = (outstanding + amount) / (12 * income)
	}
	kyc := int64(num(profile["kyc_level"]))
	var reasons []string
	if profile == nil {
		reasons = append(reasons, "no profile")
	}
	if open >= c.Int("max_open_orders") {
		reasons = append(reasons, "too many open orders")
	}
	if late > c.Int("max_late_repayments") {
		reasons = append(reasons, "late repayments")
	}
	if dti > c.Float("max_debt_to_income") {
		reasons = append(reasons, "debt to income")
	}
	if kyc < c.Int("min_kyc_level") {
		reasons = append(reasons, "kyc level")
	}
	if math.IsInf(dti, 0) {
		dti = -1 // no income known
	}
	return eventcenter.Row{
		"user_id":             user,
		"amount":              amount,
		"open_orders":         open,
		"open_outstanding":    round2(outstanding),
		"repayments_90d":      count,
		"repaid_90d":          round2(repaid),
		"late_repayments_90d": late,
		"age":                 int64(num(profile["age"])),
		"monthly_income":      income,
		"kyc_level":           kyc,
		"debt_to_income":      math.Round(dti*1e4) / 1e4,
		"eligible":            len(reasons) == 0,
		"reasons":             strings.Join(reasons, "; "),
	}, nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// num reads a numeric column: Decimal, integers, floats, numeric text.
func num(v any) float64 {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case int:
		return float64(v)
	case float64:
		return v
	case eventcenter.Decimal:
		f, _ := strconv.ParseFloat(string(v), 64)
		return f
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	s, _ := eventcenter.IndexValue(v)
	return s
}

func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case int64:
		return v != 0
	case int:
		return v != 0
	}
	return false
}
