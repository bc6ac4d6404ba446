package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
)

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job QUEUE MSG_ID",
		Short: "Show where one message stands for each consumer of its queue",
		Long: `job tells, for every consumer of the queue, where the message stands:
not_ticked, pending, handed_out (to which worker, lease until when), done,
retrying (attempt, due at), dead (reason), delayed (due at), cancelled,
unclaimed (the queue has no consumer) or unknown (no table or store holds it:
never sent, or reclaimed by rotation).  It moves nothing.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID("message id", args[1])
		if err != nil {
			return err
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ss, err := client.MessageStatus(cmd.Context(), args[0], id)
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.MessageStatus(id, ss), ss,
			"CONSUMER\tSTATE\tWORKER\tLEASE_UNTIL\tRETRY\tDUE_AT\tREASON\tTYPE\tPAYLOAD",
			func(w io.Writer, s pgque.MessageState) {
				typ, payload := "-", "-"
				if s.Message != nil {
					typ, payload = cell(s.Message.Type), cell(s.Message.Payload)
				}
				consumer := s.Consumer
				if consumer == "" {
					consumer = "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(consumer), s.State, strOr(s.Worker, "-"),
					timeOr(s.LeaseUntil, "-"), intOr(s.RetryCount, "-"), timeOr(s.DueAt, "-"), strOr(s.Reason, "-"),
					typ, payload)
			})
	}
	return cmd
}
