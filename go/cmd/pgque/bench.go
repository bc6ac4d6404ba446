package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/pgque/pgque/extension"
	"github.com/pgque/pgque/go/internal/bench"
	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
)

func newBenchCmd(g *globals) *cobra.Command {
	cfg := bench.DefaultConfig()
	var scenarios, jsonFile, pgBin string
	var sqlInstall bool
	var names []string
	for _, s := range bench.Scenarios() {
		names = append(names, s.Name)
	}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure pgque against plain-SQL baselines",
		Long: `bench runs pgque's benchmark scenarios (docs/benchmarks.md).  Each scenario that
has a baseline measures pgque and plain SQL doing the same work in the same
run, and reports the ratio against its target: on a shared machine absolute
numbers are noise, ratios much less so.

Without --dsn (or $PGQUE_DSN) it starts a throwaway PostgreSQL server from the
installed server programs and stops it at the end; with one, it uses that
server, which needs a role that may create databases (and, the first time,
roles).  Every scenario runs in a database of its own, created with pgque
installed and dropped afterwards.  The jobs scenario runs its worker
processes as this same binary (the hidden command "bench worker"), and stops
them when it ends, fails or is interrupted.

The results table goes to stdout (to stderr with --json -), progress to
stderr.  The exit status is 0 when every scenario ran, whether or not it met
its target, and 1 when one failed.

Scenarios: ` + strings.Join(names, ", ") + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pgBinWithDSN(g.dsn, pgBin); err != nil {
				return err
			}
			return runBench(cmd.Context(), cmd, g.dsn, cfg, scenarios, jsonFile, sqlInstall, pgBin)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long a scenario measures (each side, for those with a baseline)")
	f.IntVar(&cfg.Rate, "rate", cfg.Rate, "offered load in events/s, for the fixed-rate scenarios (latency, xmin, memory)")
	f.IntVar(&cfg.Conns, "conns", cfg.Conns, "producer connections")
	f.IntVar(&cfg.PayloadSize, "payload-size", cfg.PayloadSize, "bytes of JSON payload per event (at least 10)")
	f.IntVar(&cfg.Backlog, "backlog", cfg.Backlog, "events in the consume scenario's backlog")
	f.IntVar(&cfg.Jobs, "jobs", cfg.Jobs, "jobs in the jobs scenario's burn-down")
	f.IntVar(&cfg.JobWorkers, "job-workers", cfg.JobWorkers, "worker processes in the jobs scenario")
	f.IntVar(&cfg.Queues, "queues", cfg.Queues, "idle queues the many-queues scenario creates (at least 20)")
	f.StringVar(&scenarios, "scenarios", "all", "comma-separated scenarios to run, or all: "+strings.Join(names, ","))
	f.StringVar(&jsonFile, "json", "", "also write the results as JSON to `FILE` (- for stdout)")
	f.BoolVar(&sqlInstall, "sql-install", false, "install the engine embedded in this binary as plain SQL, "+
		"even where the server has pgque's extension files (which may be of another version)")
	addPGBinFlag(f, &pgBin, "the throwaway server, when no --dsn is given")
	cmd.AddCommand(newBenchWorkerCmd(g))
	return cmd
}

// newBenchWorkerCmd is `pgque bench worker`, hidden: one worker process of
// the jobs scenario, which runs this binary again for each.  It connects to
// --dsn or $PGQUE_DSN, says on stdout that it is ready, runs a Consumer
// with default options and a no-op handler once stdin says "go", and stops
// it when stdin is closed or on SIGTERM; it reports the jobs it handled on
// stdout as JSON lines (see bench.JobWorker).
func newBenchWorkerCmd(g *globals) *cobra.Command {
	var w bench.JobWorker
	cmd := &cobra.Command{
		Use:    "worker",
		Short:  "Run one worker process of the jobs scenario (used by bench itself)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.dsn == "" {
				return usageError{errors.New("bench worker needs --dsn or $PGQUE_DSN")}
			}
			w.DSN = g.dsn
			return w.Run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&w.Queue, "queue", "", "queue to consume")
	f.StringVar(&w.Consumer, "consumer", "", "consumer name")
	f.Int64Var(&w.ClockBase, "clock-base", 0, "the scenario's clock base, Unix nanoseconds")
	f.BoolVar(&w.Times, "times", false, "report each job's handler time")
	f.DurationVar(&w.FlushEvery, "flush", 0, "how often to report handled jobs")
	return cmd
}

// benchReport is the JSON output.
type benchReport struct {
	Machine   benchMachine   `json:"machine"`
	Config    benchConfig    `json:"config"`
	StartedAt time.Time      `json:"started_at"`
	Results   []bench.Result `json:"results"`
}

type benchMachine struct {
	CPUs     int    `json:"cpus"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
	OS       string `json:"os"`
}

type benchConfig struct {
	Duration    string   `json:"duration"`
	Rate        int      `json:"rate"`
	Conns       int      `json:"conns"`
	PayloadSize int      `json:"payload_size"`
	Backlog     int      `json:"backlog"`
	Jobs        int      `json:"jobs"`
	JobWorkers  int      `json:"job_workers"`
	Queues      int      `json:"queues"`
	Scenarios   []string `json:"scenarios"`
	Server      string   `json:"server"` // "throwaway" or "dsn"
	Engine      string   `json:"engine"` // pgque's engine version
	SQLInstall  bool     `json:"sql_install"`
}

func runBench(ctx context.Context, cmd *cobra.Command, dsn string, cfg bench.Config, list, jsonFile string, sqlInstall bool, pgBin string) error {
	selected, err := selectScenarios(list)
	if err != nil {
		return err
	}
	switch {
	case cfg.Duration <= 0:
		return errors.New("--duration must be positive")
	case cfg.Rate < 1, cfg.Conns < 1, cfg.Backlog < 1, cfg.Jobs < 1, cfg.JobWorkers < 1:
		return errors.New("--rate, --conns, --backlog, --jobs and --job-workers must be at least 1")
	case cfg.PayloadSize < 10:
		return errors.New("--payload-size must be at least 10")
	case cfg.Queues < 20:
		return errors.New("--queues must be at least 20")
	}
	out, progress := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if jsonFile == "-" {
		out = progress // stdout is for the JSON
	}
	report := benchReport{
		StartedAt: time.Now().UTC().Truncate(time.Second),
		Config: benchConfig{Duration: cfg.Duration.String(), Rate: cfg.Rate, Conns: cfg.Conns,
			PayloadSize: cfg.PayloadSize, Backlog: cfg.Backlog, Jobs: cfg.Jobs, JobWorkers: cfg.JobWorkers, Queues: cfg.Queues, Server: "dsn", Engine: extension.Version, SQLInstall: sqlInstall},
		Machine: benchMachine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: osName()},
	}
	for _, s := range selected {
		report.Config.Scenarios = append(report.Config.Scenarios, s.Name)
	}

	if dsn == "" {
		report.Config.Server = "throwaway"
		fmt.Fprintln(progress, "starting a throwaway PostgreSQL server (no --dsn given)")
		srv, err := localpg.Start(ctx, localpg.Options{BinDir: pgBin})
		if err != nil {
			return err
		}
		defer func() {
			fmt.Fprintln(progress, "stopping the throwaway server")
			if err := srv.Stop(); err != nil {
				fmt.Fprintln(progress, "pgque:", err)
			}
		}()
		dsn = srv.DSN
		fmt.Fprintf(progress, "PostgreSQL at %s (data and log in %s)\n", dsn, srv.Dir)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if err := admin.QueryRow(ctx, `SHOW server_version`).Scan(&report.Machine.Postgres); err != nil {
		return err
	}
	fmt.Fprintf(progress, "PostgreSQL %s, %d CPUs; %s\n", report.Machine.Postgres, report.Machine.CPUs, describeConfig(cfg))

	failed := 0
	for _, sc := range selected {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(progress, "==> %s: %s\n", sc.Name, sc.Description)
		start := time.Now()
		res, err := runScenario(ctx, admin, dsn, cfg, sc, progress, sqlInstall)
		res.Scenario = sc.Name
		res.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
		if err != nil {
			failed++
			if ctx.Err() != nil {
				err = errors.New("interrupted")
			}
			res.Error = err.Error()
			fmt.Fprintf(progress, "  FAILED: %v\n", err)
		}
		report.Results = append(report.Results, res)
	}

	printTable(out, report)
	if jsonFile != "" {
		if err := writeJSON(jsonFile, cmd.OutOrStdout(), report); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed", failed, len(selected))
	}
	return nil
}

// runScenario runs sc in a fresh database with pgque installed, and drops
// the database after.
func runScenario(ctx context.Context, admin *pgx.Conn, dsn string, cfg bench.Config, sc bench.Scenario,
	progress io.Writer, sqlInstall bool) (bench.Result, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	db := "bench_" + strings.ReplaceAll(sc.Name, "-", "_") + "_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{db}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return bench.Result{}, fmt.Errorf("create database: %w", err)
	}
	defer func() {
		// Also after Ctrl-C; FORCE ends sessions a scenario left behind.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(progress, "  could not drop database %s: %v\n", db, err)
		}
	}()
	dbDSN, err := withDatabase(dsn, db)
	if err != nil {
		return bench.Result{}, err
	}
	pcfg, err := pgxpool.ParseConfig(dbDSN)
	if err != nil {
		return bench.Result{}, err
	}
	pcfg.MaxConns = int32(max(cfg.Conns+4, 8))
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return bench.Result{}, err
	}
	defer pool.Close()
	var opts []pgque.InstallOption
	if sqlInstall {
		opts = append(opts, pgque.WithoutExtension())
	}
	method, err := pgque.Install(ctx, pool, opts...)
	if err != nil {
		return bench.Result{}, err
	}
	fmt.Fprintf(progress, "  database %s, pgque installed as %s\n", db, method)
	env := &bench.Env{Config: cfg, DSN: dbDSN, Pool: pool, Client: pgque.New(pool), Progress: progress}
	if exe, err := os.Executable(); err == nil {
		env.WorkerCommand = []string{exe, "bench", "worker"}
	}
	return sc.Run(ctx, env)
}

// selectScenarios parses --scenarios.
func selectScenarios(list string) ([]bench.Scenario, error) {
	all := bench.Scenarios()
	if strings.TrimSpace(list) == "all" || strings.TrimSpace(list) == "" {
		return all, nil
	}
	var out []bench.Scenario
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		found := false
		for _, s := range all {
			if s.Name == name {
				out, found, seen[name] = append(out, s), true, true
			}
		}
		if !found {
			var names []string
			for _, s := range all {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("unknown scenario %q (scenarios: %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// withDatabase returns dsn pointed at database db.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("--dsn: %w", err)
		}
		u.Path, u.RawPath = "/"+db, ""
		q := u.Query()
		if q.Has("dbname") || q.Has("database") {
			q.Del("dbname")
			q.Del("database")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// key=value: a later keyword wins.
	return strings.TrimSpace(dsn + " dbname=" + db), nil
}

func describeConfig(cfg bench.Config) string {
	return fmt.Sprintf("duration %v, rate %d/s, %d connections, %d-byte payloads, backlog %d, %d jobs for %d worker processes, %d queues",
		cfg.Duration, cfg.Rate, cfg.Conns, cfg.PayloadSize, cfg.Backlog, cfg.Jobs, cfg.JobWorkers, cfg.Queues)
}

// printTable writes the human-readable results and a summary.
func printTable(w io.Writer, r benchReport) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE\tUNIT\tTARGET\tPASS")
	met, missed, failed := []string{}, []string{}, []string{}
	for _, res := range r.Results {
		target, pass := res.Target, "-"
		switch {
		case res.Error != "":
			pass, failed = "ERROR", append(failed, res.Scenario)
		case res.Pass != nil && *res.Pass:
			pass, met = "yes", append(met, res.Scenario)
		case res.Pass != nil:
			pass, missed = "NO", append(missed, res.Scenario)
		}
		if len(res.Metrics) == 0 {
			fmt.Fprintf(tw, "%s\t\t\t\t%s\t%s\n", res.Scenario, target, pass)
		}
		for i, m := range res.Metrics {
			name := res.Scenario
			if i > 0 {
				name, target, pass = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Name, formatValue(m.Value, m.Unit), m.Unit, target, pass)
		}
	}
	tw.Flush()

	var notes []string
	for _, res := range r.Results {
		for _, n := range res.Notes {
			notes = append(notes, res.Scenario+": "+n)
		}
		if res.Error != "" {
			notes = append(notes, res.Scenario+": ERROR: "+res.Error)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return ""
		}
		return " (" + strings.Join(s, ", ") + ")"
	}
	fmt.Fprintf(w, "\nsummary: %d scenario(s) on PostgreSQL %s, %d CPUs, %s %s: %d met the target%s, %d missed it%s, %d failed%s",
		len(r.Results), r.Machine.Postgres, r.Machine.CPUs, r.Machine.Go, r.Machine.OS,
		len(met), list(met), len(missed), list(missed), len(failed), list(failed))
	if other := len(r.Results) - len(met) - len(missed) - len(failed); other > 0 {
		fmt.Fprintf(w, ", %d without a target", other)
	}
	fmt.Fprintln(w)
}

// formatValue prints large numbers whole and small ones with a few digits.
func formatValue(v float64, unit string) string {
	switch a := math.Abs(v); {
	case unit == "x":
		return fmt.Sprintf("%.2f", v)
	case a >= 1000 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func writeJSON(file string, stdout io.Writer, r benchReport) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep ">=" readable in targets
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if file == "-" {
		_, err := stdout.Write(b.Bytes())
		return err
	}
	return os.WriteFile(file, b.Bytes(), 0o644)
}

// osName names the operating system: its pretty name where /etc/os-release
// has one, its kernel release, and GOOS/GOARCH.
func osName() string {
	name := runtime.GOOS + "/" + runtime.GOARCH
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		name = strings.TrimSpace(string(b)) + " " + name
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"`) + ", " + name
			}
		}
	}
	return name
}
