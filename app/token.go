package app

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/auth"
)

// defaultTokens is the token file when neither --tokens nor
// $TIDEMARK_TOKENS names one.
const defaultTokens = "tokens.yaml"

// tokensFlag adds --tokens to cmd and returns its value.
func (a *cli) tokensFlag(cmd *cobra.Command) *string {
	v := new(string)
	cmd.Flags().StringVar(v, "tokens", a.envOr("TIDEMARK_TOKENS", defaultTokens), "token file: bearer tokens, hashed, and their principals ($TIDEMARK_TOKENS)")
	return v
}

// tokenCmd is `token`: the admin's commands on the token file.
func (a *cli) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "create, revoke and list the bearer tokens of the API and the CLI",
		Long: `A bearer token names a principal (who is calling) and its grants: a role on
every job or on the jobs named. Roles: reader, owner, operator, approver, admin.
The token file keeps only each token's SHA-256: a token is shown once, when it
is created. The server rereads the file when it changes, so a revoked token
stops working at once, without a restart.

These commands work on the file directly: whoever may write the file is an
admin. Keep it readable by the server's user only (it is written mode 0600).`,
		Example: "  tidemark token create --principal alice --role operator:credit-features\n  tidemark token list\n  tidemark token revoke 3f9a0c1d2e4b",
	}
	cmd.AddCommand(a.tokenCreateCmd(), a.tokenRevokeCmd(), a.tokenListCmd())
	return cmd
}

func (a *cli) tokenCreateCmd() *cobra.Command {
	var p auth.Principal
	var roles []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "issue a token for a principal and print it (once)",
		Long: `create issues a new token for the principal and prints it on standard output;
the file keeps only its hash. --role ROLE gives the role on every job,
--role ROLE:JOB1,JOB2 on the jobs named; repeat --role for several grants.
Every principal can read.`,
		Example: "  tidemark token create --principal alice --name 'Alice A.' --role operator:credit-features\n  tidemark token create --principal bob --role approver\n  tidemark token create --principal root --role admin --tokens /etc/tidemark/tokens.yaml",
	}
	file := a.tokensFlag(cmd)
	cmd.Flags().StringVar(&p.ID, "principal", "", "the principal's durable id, named in audit events (required)")
	cmd.Flags().StringVar(&p.Name, "name", "", "the principal's display name")
	cmd.Flags().StringArrayVar(&roles, "role", nil, "a grant: ROLE (every job) or ROLE:JOB[,JOB…]; repeatable")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if p.ID == "" {
			return usagef("--principal is required")
		}
		for _, r := range roles {
			role, jobs, scoped := strings.Cut(r, ":")
			g := auth.Grant{Role: auth.Role(role)}
			if !g.Role.Valid() {
				return usagef("--role %q: unknown role (roles: %v)", r, auth.Roles)
			}
			if scoped {
				g.Jobs = strings.Split(jobs, ",")
				if slices.Contains(g.Jobs, "") {
					return usagef("--role %q: an empty job name (ROLE gives every job, ROLE:JOB[,JOB…] the jobs named)", r)
				}
			}
			p.Grants = append(p.Grants, g)
		}
		s, err := auth.OpenTokenStore(*file)
		if err != nil {
			return err
		}
		token, t, err := s.Create(p)
		if err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, token)
		fmt.Fprintf(a.stderr, "token %s for %s stored in %s; it is shown only now\n", t.ID, p.ID, *file)
		return nil
	}
	return cmd
}

func (a *cli) tokenRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke ID",
		Short:   "revoke a token: it authenticates nobody from now on",
		Long:    `revoke marks the token with ID (the second part of tdm_ID_SECRET, as "token list" shows it) revoked. Servers reading the file refuse it at once.`,
		Example: "  tidemark token revoke 3f9a0c1d2e4b",
		Args:    cobra.ExactArgs(1),
	}
	file := a.tokensFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := auth.OpenTokenStore(*file)
		if err != nil {
			return err
		}
		return s.Revoke(args[0])
	}
	return cmd
}

func (a *cli) tokenListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list the tokens: id, principal, grants, created, revoked",
		Example: "  tidemark token list\n  tidemark token list --json",
	}
	file := a.tokensFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the tokens (hashes included) as a JSON array")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := auth.OpenTokenStore(*file)
		if err != nil {
			return err
		}
		ts, err := s.List()
		if err != nil {
			return err
		}
		if asJSON {
			return a.printJSON(ts)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPRINCIPAL\tGRANTS\tCREATED\tREVOKED")
		for _, t := range ts {
			grants := make([]string, len(t.Principal.Grants))
			for i, g := range t.Principal.Grants {
				grants[i] = string(g.Role)
				if len(g.Jobs) > 0 {
					grants[i] += ":" + strings.Join(g.Jobs, ",")
				}
			}
			revoked := "-"
			if !t.Revoked.IsZero() {
				revoked = t.Revoked.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Principal.ID, orDash(strings.Join(grants, " ")), t.Created.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	}
	return cmd
}
