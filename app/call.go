package app

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/client"
)

// callCmd is `call`: call a job through the API.
func (a *cli) callCmd() *cobra.Command {
	var (
		af   apiFlags
		data string
		o    client.CallOptions
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "call JOB --data JSON",
		Short: "call a job with a trigger row and print its record (JSON)",
		Long: `call sends the row --data to the job through the API server: the call becomes a
trigger in Kafka, the job's live worker runs it, and its record comes back. When the
job does not answer within --timeout the call's id is printed, and with --wait the
command polls until it answers. Calls need a token (--token, $TIDEMARK_TOKEN).`,
		Example: "  tidemark call credit-features --data '{\"applicant\":\"u-7\",\"amount\":1200}'\n" +
			"  tidemark call credit-features --data '{\"applicant\":\"u-7\"}' --idempotency-key order-42 --reply-to amqp://replies/credit",
		Args: cobra.ExactArgs(1),
	}
	a.registerAPIFlags(cmd, &af)
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "the trigger row, a JSON object (required)")
	f.DurationVar(&o.Timeout, "timeout", 0, "how long the server waits for the result (default: the server's, 2s)")
	f.StringVar(&o.ReplyTo, "reply-to", "", "also publish the result to amqp://exchange/routing-key or kafka://topic")
	f.StringVar(&o.IdempotencyKey, "idempotency-key", "", "names the call: a retry with the same key gets the same result, the job runs once")
	f.BoolVar(&wait, "wait", false, "poll until the job answers")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		// Numbers go out as written (json.Number): through float64, an
		// integer above 2^53 would change.
		dec := json.NewDecoder(strings.NewReader(data))
		dec.UseNumber()
		var row map[string]any
		if err := dec.Decode(&row); err != nil || row == nil || dec.Decode(new(any)) != io.EOF {
			return usagef("--data: a JSON object is required")
		}
		c := af.client()
		res, err := c.Call(cmd.Context(), args[0], row, o)
		if err != nil {
			return err
		}
		if res.Record == nil && wait {
			rec, err := c.Wait(cmd.Context(), res.ID, 250*time.Millisecond)
			if err != nil {
				return err
			}
			res.Record = &rec
		}
		if res.Record == nil {
			fmt.Fprintf(a.stderr, "not answered yet: poll with --wait, or GET /v1/calls/%s\n", res.ID)
			return a.printJSON(map[string]string{"id": res.ID, "poll": "/v1/calls/" + res.ID})
		}
		return a.printJSON(res.Record)
	}
	return cmd
}
