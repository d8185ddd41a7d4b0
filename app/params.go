package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/params/changes"
	"github.com/tidemark-dev/tidemark/params/notify"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// paramsCmd is `params`: reading parameters and changing them through
// review.
func (a *cli) paramsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "params",
		Short: "show job parameters; submit, approve and reject changes; read the audit trail",
		Long: `A job's model owner declares its parameters (name, type, bounds, description);
an operator submits a change with a reason; an approver other than the
submitter approves or rejects it; once approved it applies to the running
workers at once, without a deploy. Each change is a ParamChange workflow in
Temporal (id param-<job>-<n>), the source of truth; every step is in the audit
trail ("params history").

Writes need a bearer token (--token, $TIDEMARK_TOKEN) known to the token file
(--tokens, $TIDEMARK_TOKENS): submit the operator role on the job, approve and
reject the approver role. Reads need none.`,
		Example: "  tidemark params show credit-features\n" +
			"  tidemark params submit --job credit-features --set max_debt_to_income=0.45 --reason 'Q4 policy'\n" +
			"  tidemark params list\n" +
			"  tidemark params approve param-credit-features-3 --comment 'backtest ok'\n" +
			"  tidemark params history --job credit-features",
	}
	cmd.AddCommand(a.paramsListCmd(), a.paramsShowCmd(), a.paramsSubmitCmd(), a.paramsDecideCmd(true), a.paramsDecideCmd(false), a.paramsHistoryCmd())
	return cmd
}

// paramsFlags are the connection and identity flags of a params command.
type paramsFlags struct {
	a            *cli
	s            *settings
	queue        string
	token        string
	tokens       *string
	wantTemporal bool
	wantStore    bool
}

func (a *cli) paramsFlags(cmd *cobra.Command, temporal, store, identity bool) *paramsFlags {
	f := &paramsFlags{a: a, s: a.settings(cmd), wantTemporal: temporal, wantStore: store}
	if store {
		f.s.store()
	}
	if temporal {
		f.s.temporal()
		cmd.Flags().StringVar(&f.queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	}
	if identity {
		cmd.Flags().StringVar(&f.token, "token", a.envOr("TIDEMARK_TOKEN", ""), "your bearer token ($TIDEMARK_TOKEN)")
		f.tokens = a.tokensFlag(cmd)
	}
	return f
}

// principal authenticates --token against the token file.
func (f *paramsFlags) principal(ctx context.Context) (auth.Principal, error) {
	if f.token == "" {
		return auth.Principal{}, usagef("--token (or $TIDEMARK_TOKEN) is required: `%s token create` issues one", f.a.name)
	}
	ts, err := auth.OpenTokenStore(*f.tokens)
	if err != nil {
		return auth.Principal{}, err
	}
	return ts.Authenticate(ctx, f.token)
}

// service connects what the command needs; the returned func closes it.
func (f *paramsFlags) service(ctx context.Context) (*changes.Service, func(), error) {
	cfg, err := f.s.config()
	if err != nil {
		return nil, nil, err
	}
	svc := &changes.Service{TaskQueue: f.queue}
	var closers []func()
	closeAll := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	if f.wantStore {
		store, err := openStore(ctx, cfg, config.StoreOptions{MustExist: true})
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, func() { store.Close() })
		svc.Store, svc.Registry = store, params.NewEventCenter(store, nil)
	}
	if f.wantTemporal {
		c, err := dialTemporal(ctx, cfg.Temporal, f.a.quietLog(), nil)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, c.Close)
		svc.Temporal = c
	}
	return svc, closeAll, nil
}

func (a *cli) paramsListCmd() *cobra.Command {
	var job, state string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list parameter changes (pending ones by default)",
		Long: `list prints the parameter changes Temporal knows, newest first: id, job, state,
submitter, the values and the reason. --state all lists every state.`,
		Example: "  tidemark params list\n  tidemark params list --job credit-features --state all --json",
	}
	f := a.paramsFlags(cmd, true, false, false)
	cmd.Flags().StringVar(&job, "job", "", "only the changes of this job")
	cmd.Flags().StringVar(&state, "state", string(workflows.ChangePending), "only changes in this state (pending, applied, rejected, expired, conflict, invalid), or all")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the changes as a JSON array")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if state == "all" {
			state = ""
		}
		svc, done, err := f.service(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		cs, err := svc.List(cmd.Context(), job, workflows.ChangeState(state))
		if err != nil {
			return err
		}
		if asJSON {
			if cs == nil {
				cs = []changes.Change{}
			}
			return a.printJSON(cs)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tBASE\tSUBMITTER\tCHANGES\tREASON\tSUBMITTED")
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.State, c.Base, c.Submitter, formatValues(c.Changes), orDash(c.Reason), c.Submitted.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return cmd
}

func (a *cli) paramsShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show JOB",
		Short:   "show a job's parameters: declarations, current version and values",
		Example: "  tidemark params show credit-features",
		Args:    cobra.ExactArgs(1),
	}
	f := a.paramsFlags(cmd, false, true, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		svc, done, err := f.service(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		jp, err := svc.Show(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if asJSON {
			return a.printJSON(jp)
		}
		fmt.Fprintf(a.stdout, "%s at parameter version %d\n\n", jp.Job, jp.Version)
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tVALUE\tDEFAULT\tMIN\tMAX\tDESCRIPTION")
		for _, d := range jp.Decls {
			value := fmt.Sprint(jp.Values[d.Name])
			if _, ok := jp.Overrides[d.Name]; ok {
				value += " *"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", d.Name, d.Type, value, d.Default, orNil(d.Min), orNil(d.Max), d.Description)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "\n* set by a change; the others are at their default")
		return nil
	}
	return cmd
}

func (a *cli) paramsSubmitCmd() *cobra.Command {
	var job, reason string
	var sets, unsets []string
	var base int64
	var expiry time.Duration
	cmd := &cobra.Command{
		Use:   "submit",
		Short: "submit a change of a job's parameters for review",
		Long: `submit validates the change against the job's declarations (type, bounds, names)
and starts its review; it prints the change's id. The change applies once an
approver other than you approves it ("params approve"). --base says which
version you wrote the change against (default: the current one): if another
change is applied first, yours ends in conflict instead of overwriting it.
A rollback is a change back to the earlier values.`,
		Example: "  tidemark params submit --job credit-features --set max_open_orders=5 --set repayment_window=720h --reason 'Q4 policy'\n" +
			"  tidemark params submit --job credit-features --unset max_open_orders --reason 'back to the default' --base 4",
	}
	f := a.paramsFlags(cmd, true, true, true)
	cmd.Flags().StringVar(&job, "job", "", "the job (required)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "NAME=VALUE: a new value; repeatable")
	cmd.Flags().StringArrayVar(&unsets, "unset", nil, "NAME: back to the declared default; repeatable")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the reviewer and the audit trail (required)")
	cmd.Flags().Int64Var(&base, "base", -1, "the version the change is written against (default: the current one)")
	cmd.Flags().DurationVar(&expiry, "expiry", 0, "how long the change waits for a decision (default 168h)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if job == "" || reason == "" || len(sets)+len(unsets) == 0 {
			return usagef("--job, --reason and at least one --set or --unset are required")
		}
		sub := changes.Submission{Changes: params.Values{}, Reason: reason}
		for _, s := range sets {
			name, value, ok := strings.Cut(s, "=")
			if !ok || name == "" {
				return usagef("--set %q: want NAME=VALUE", s)
			}
			sub.Changes[name] = value // the declarations convert text
		}
		for _, name := range unsets {
			sub.Changes[name] = nil
		}
		if base >= 0 {
			v := params.Version(base)
			sub.Base = &v
		}
		p, err := f.principal(cmd.Context())
		if err != nil {
			return err
		}
		svc, done, err := f.service(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		svc.Expiry = expiry
		c, err := svc.Submit(cmd.Context(), p, job, sub)
		if err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, c.ID)
		fmt.Fprintf(a.stderr, "change %s of %s (version %d: %s) waits for an approver until %s:\n  %s params approve %s --comment '…'\n",
			c.ID, job, c.Base, formatValues(c.Changes), c.Expires.Format(time.RFC3339), a.name, c.ID)
		return nil
	}
	return cmd
}

func (a *cli) paramsDecideCmd(approve bool) *cobra.Command {
	verb, short := "reject", "reject a submitted change"
	if approve {
		verb, short = "approve", "approve a submitted change: it applies at once"
	}
	var comment string
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Long: short + `. You need the approver role on the job and may not decide your own
change. The command returns once the change is final: applied (with its new
version), rejected, or in conflict (another change was applied since it was
submitted: submit it again on the current version).`,
		Example: fmt.Sprintf("  tidemark params %s param-credit-features-3 --comment 'checked the backtest'", verb),
		Args:    cobra.ExactArgs(1),
	}
	f := a.paramsFlags(cmd, true, false, true)
	cmd.Flags().StringVar(&comment, "comment", "", "your comment, kept in the audit trail")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := f.principal(cmd.Context())
		if err != nil {
			return err
		}
		svc, done, err := f.service(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		c, err := svc.Decide(cmd.Context(), p, args[0], approve, comment)
		if err != nil {
			return err
		}
		if c.State == workflows.ChangeApplied {
			fmt.Fprintf(a.stdout, "%s applied: %s is at parameter version %d\n", c.ID, c.Job, c.Version)
		} else {
			fmt.Fprintf(a.stdout, "%s %s\n", c.ID, c.State)
		}
		return nil
	}
	return cmd
}

func (a *cli) paramsHistoryCmd() *cobra.Command {
	var job string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "print the audit trail of a job's parameter changes",
		Long: `history prints every step of every change of the job, oldest first: submitted,
refused (a self-approval, a reviewer without the approver role), approved,
rejected, expired, applied, conflict, and each worker's pick-up of a version;
who, when, old and new values, the reason and the comment.`,
		Example: "  tidemark params history --job credit-features\n  tidemark params history --job credit-features --json",
	}
	f := a.paramsFlags(cmd, false, true, false)
	cmd.Flags().StringVar(&job, "job", "", "the job (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entries as a JSON array")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if job == "" {
			return usagef("--job is required")
		}
		svc, done, err := f.service(cmd.Context())
		if err != nil {
			return err
		}
		defer done()
		es, err := svc.History(cmd.Context(), job)
		if err != nil {
			return err
		}
		if asJSON {
			if es == nil {
				es = []params.AuditEntry{}
			}
			return a.printJSON(es)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AT\tCHANGE\tSTEP\tBY\tVERSION\tOLD → NEW\tREASON\tCOMMENT")
		for _, e := range es {
			values, version := "", ""
			switch e.Step {
			case params.StepSubmitted, params.StepApplied:
				values = formatValues(e.Old) + " → " + formatValues(e.New)
			}
			switch {
			case e.Version != 0:
				version = fmt.Sprint(e.Version)
			case e.Step == params.StepSubmitted:
				version = fmt.Sprintf("base %d", e.Base)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339Nano), orDash(e.Change), e.Step, e.By,
				orDash(version), orDash(values), orDash(e.Reason), orDash(e.Comment))
		}
		return tw.Flush()
	}
	return cmd
}

// formatValues writes values as name=value pairs by name; {} for none.
func formatValues(vals params.Values) string {
	if len(vals) == 0 {
		return "{}"
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		v := vals[n]
		if v == nil {
			parts[i] = n + "=default"
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		parts[i] = n + "=" + strings.Trim(string(b), `"`)
	}
	return strings.Join(parts, " ")
}

func orNil(v any) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(v)
}

// paramsDeps gives a Temporal worker what parameter changes need: a
// publisher on the Kafka control topic, so that live workers switch within
// a second of an approval (if Kafka cannot be reached, they poll), and the
// token file as the directory of reviewers if it exists (else the API's
// and the CLI's checks of the caller's token stand alone). The returned
// func releases them.
func paramsDeps(d *workers.Deps, brokers []string, tokens string, log *slog.Logger) (func(), error) {
	if _, err := os.Stat(tokens); err == nil {
		ts, err := auth.OpenTokenStore(tokens)
		if err != nil {
			return nil, err
		}
		d.Directory = ts
	} else {
		log.Info("no token file: reviewers of parameter changes are checked by the API and the CLI only", "tokens", tokens)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	d.NotifyParams = notify.NewPublisher(cl, notify.DefaultTopic).Notify
	return cl.Close, nil
}
