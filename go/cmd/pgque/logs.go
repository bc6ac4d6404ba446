package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// logFlags is --log-format of the commands that run until stopped (serve,
// ticker): every line they log in one run has the one format.
type logFlags struct{ format string }

func (l *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.format, "log-format", "text",
		"format of the log on stderr: text (key=value) or json (one object a line)")
}

// logger returns the run's logger on w, or a usage error for an unknown
// format.
func (l *logFlags) logger(w io.Writer, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q is not text or json", l.format)}
}
