package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
)

func newWorkersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workers QUEUE CONSUMER",
		Short: "List the cooperative workers of a consumer",
		Long: `workers lists the cooperative workers that share CONSUMER's stream: every Go
Consumer (one per run, named after its host and process unless WithWorker
names it), every 'pgque receive' without --single-reader, the HTTP API's
receives and streams, and '_plain' for plain receives while workers read
the consumer.  It shows the batch each holds, the time left on its lease,
and the time since it was last seen.  A negative LEASE_LEFT means the worker
stopped or is too slow: the next idle worker takes its batch over, and what
it had not acknowledged is delivered again.  Workers that hold nothing are
forgotten after an hour.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ws, err := client.Workers(cmd.Context(), args[0], args[1])
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.Workers(ws), ws, "WORKER\tBATCH\tLEASE_LEFT\tLAST_SEEN",
			func(w io.Writer, wi pgque.WorkerInfo) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", wi.Name, intOr(wi.BatchID, "-"),
					durationOr(wi.LeaseLeft, "-"), fmtDuration(wi.LastSeen))
			})
	}
	return cmd
}
