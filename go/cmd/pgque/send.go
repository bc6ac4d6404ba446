package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// maxLine bounds one stdin line (one event).
const maxLine = 64 << 20

func newSendCmd(g *globals) *cobra.Command {
	var typ string
	var extras [4]string
	var batchSize int
	var delay time.Duration
	var at string
	cmd := &cobra.Command{
		Use:   "send QUEUE [PAYLOAD]",
		Short: "Send events: one from the arguments, or many from stdin",
		Long: `send sends one event of type --type with the JSON PAYLOAD, or, without
PAYLOAD, the events read from stdin: one JSON object per line,

  {"type": "order.created", "payload": {"id": 1}, "extra1": "eu"}

with optional payload (absent or null: NULL) and extra1..extra4 (strings);
type may be left out when --type gives it.  Blank lines are skipped.  A line
that is not valid UTF-8, or holds a NUL byte or a \u0000 in a string, is a
usage error (exit status 2): PostgreSQL's text cannot hold it.  A PAYLOAD
argument of null, too, sends a NULL payload.  With --delay or --at, the
event given as PAYLOAD is delivered later (a delayed job: pgque jobs
--state delayed lists it, pgque cancel takes it back).  Events from stdin are
sent in transactions of --batch-size; each batch is all or nothing.

It prints the ids of the sent events, one per line, or {"ids": [...]} with
--json.  When a line is malformed or a batch fails, the batches before it
stay sent: their ids are printed, then the error, which names the line.`,
		Args: rangeArgs(1, 2),
	}
	out := newOutput(cmd)
	f := cmd.Flags()
	f.StringVarP(&typ, "type", "t", "", "event type (required with PAYLOAD; the default for stdin lines)")
	for i := range extras {
		f.StringVar(&extras[i], fmt.Sprintf("extra%d", i+1), "", fmt.Sprintf("extra%d field of the event given as PAYLOAD", i+1))
	}
	f.IntVar(&batchSize, "batch-size", 100, "events per transaction when reading stdin")
	f.DurationVar(&delay, "delay", 0, "deliver the PAYLOAD event this long from now (e.g. 90s, 2h)")
	f.StringVar(&at, "at", "", "deliver the PAYLOAD event at this RFC 3339 time")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		queue := args[0]
		out.bind(cmd)
		var ids []int64
		printIDs := func() error {
			return out.print(pgquehttp.SendBatchResponse{IDs: append([]int64{}, ids...)}, func(w io.Writer) {
				for _, id := range ids {
					fmt.Fprintln(w, id)
				}
			})
		}
		if len(args) == 2 {
			if typ == "" {
				return usageError{errors.New("--type is required with a PAYLOAD argument")}
			}
			if !json.Valid([]byte(args[1])) {
				return usageError{fmt.Errorf("PAYLOAD is not valid JSON: %s", args[1])}
			}
			ev := pgque.Event{Type: typ, Payload: wire.InPayload(json.RawMessage(args[1]))}
			for i, p := range []**string{&ev.Extra1, &ev.Extra2, &ev.Extra3, &ev.Extra4} {
				if f.Changed(fmt.Sprintf("extra%d", i+1)) {
					*p = &extras[i]
				}
			}
			var opts []pgque.SendOption
			switch {
			case f.Changed("delay") && f.Changed("at"):
				return usageError{errors.New("--delay and --at cannot go together")}
			case f.Changed("delay"):
				opts = append(opts, pgque.WithDelay(delay))
			case f.Changed("at"):
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return usageError{fmt.Errorf("--at %q is not an RFC 3339 time (e.g. 2026-12-24T18:00:00Z)", at)}
				}
				opts = append(opts, pgque.WithRunAt(t))
			}
			client, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer client.Close()
			id, err := client.Send(cmd.Context(), queue, ev, opts...)
			if err != nil {
				return err
			}
			ids = append(ids, id)
			return printIDs()
		}

		if batchSize < 1 {
			return usageError{fmt.Errorf("--batch-size must be at least 1, not %d", batchSize)}
		}
		for i := range extras {
			if f.Changed(fmt.Sprintf("extra%d", i+1)) {
				return usageError{errors.New("--extra1..4 go with a PAYLOAD argument; on stdin, put them in each line")}
			}
		}
		if f.Changed("delay") || f.Changed("at") {
			return usageError{errors.New("--delay and --at go with a PAYLOAD argument")}
		}
		in := cmd.InOrStdin()
		if fi, ok := in.(*os.File); ok {
			if st, err := fi.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				return usageError{errors.New("give a PAYLOAD argument, or pipe events into stdin (one JSON object per line)")}
			}
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		// In table mode ids are printed per batch, so a long stream shows progress.
		flush := func(batch []pgque.Event, lastLine int) error {
			got, err := client.SendBatch(cmd.Context(), queue, batch)
			if err != nil {
				return fmt.Errorf("lines %d-%d: %w", lastLine-len(batch)+1, lastLine, err)
			}
			if !out.json {
				for _, id := range got {
					fmt.Fprintln(out.w, id)
				}
			}
			ids = append(ids, got...)
			return nil
		}
		err = readEvents(in, typ, batchSize, flush)
		if out.json {
			if perr := printIDs(); err == nil {
				err = perr
			}
		}
		return err
	}
	return cmd
}

// readEvents parses events from in, one JSON object per line, and hands them
// to flush in slices of up to size, with the number of the batch's last line.
func readEvents(in io.Reader, defaultType string, size int, flush func([]pgque.Event, int) error) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var batch []pgque.Event
	line, last := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		// Checked here, not left to the server: the JSON decoder would
		// replace invalid UTF-8 with U+FFFD, sending what was not given.
		if i := bytes.IndexByte(b, 0); i >= 0 {
			return usageError{fmt.Errorf("line %d: NUL byte at column %d", line, i+1)}
		}
		if !utf8.Valid(b) {
			return usageError{fmt.Errorf("line %d: not valid UTF-8", line)}
		}
		var l pgquehttp.Event
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return usageError{fmt.Errorf("line %d: %v", line, err)}
		}
		if dec.More() {
			return usageError{fmt.Errorf("line %d: more than one JSON value", line)}
		}
		if l.Type == "" {
			l.Type = defaultType
		}
		if l.Type == "" {
			return usageError{fmt.Errorf("line %d: no type (give \"type\" or --type)", line)}
		}
		for i, v := range []*string{&l.Type, l.Extra1, l.Extra2, l.Extra3, l.Extra4} {
			if v != nil && strings.ContainsRune(*v, 0) {
				field := "type"
				if i > 0 {
					field = fmt.Sprintf("extra%d", i)
				}
				return usageError{fmt.Errorf("line %d: %s holds a NUL character (\\u0000)", line, field)}
			}
		}
		batch, last = append(batch, wire.Event(l)), line
		if len(batch) == size {
			if err := flush(batch, last); err != nil {
				return err
			}
			batch = nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin after line %d: %w", line, err)
	}
	if len(batch) > 0 {
		return flush(batch, last)
	}
	return nil
}
