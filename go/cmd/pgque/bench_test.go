package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestWithDatabase(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:p@127.0.0.1:5433/postgres?sslmode=disable",
		"postgresql://u@h/other?dbname=x&sslmode=disable",
		"host=127.0.0.1 port=5433 user=u dbname=postgres",
		"host=/tmp user=u",
		"",
	} {
		got, err := withDatabase(dsn, "bench_x_1")
		if err != nil {
			t.Fatalf("%q: %v", dsn, err)
		}
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Fatalf("%q -> %q: %v", dsn, got, err)
		}
		if cfg.Database != "bench_x_1" {
			t.Errorf("%q -> %q: database %q", dsn, got, cfg.Database)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	all, err := selectScenarios("all")
	if err != nil || len(all) < 3 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	got, err := selectScenarios(" consume,produce ,consume")
	if err != nil || len(got) != 2 || got[0].Name != "consume" || got[1].Name != "produce" {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := selectScenarios("produce,nope"); err == nil {
		t.Error("unknown scenario: no error")
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{12345.678, "tx/s", "12346"},
		{0.91234, "x", "0.91"},
		{42.25, "ms", "42.2"},
		{1.2345, "ms", "1.23"},
		{200000, "events", "200000"},
	} {
		if got := formatValue(c.v, c.unit); got != c.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}

// benchJobsArgs runs the jobs scenario small: 2,000 jobs for 2 worker
// processes, a short latency phase at a low rate.
var benchJobsArgs = []string{"bench", "--scenarios", "jobs", "--jobs", "2000", "--job-workers", "2",
	"--rate", "200", "--conns", "2", "--duration", "2s"}

// TestBenchJobs runs the jobs scenario of `pgque bench` through the binary,
// worker processes and all, and checks that every job was handled exactly
// once in both phases.  It asserts no timings.
func TestBenchJobs(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := command(ctx, append(benchJobsArgs, "--dsn", c.dsn, "--json", "-")...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("pgque bench: %v\nstderr:\n%s", err, errOut.String())
	}
	var report benchReport
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("--json: %v\n%s", err, out.String())
	}
	if len(report.Results) != 1 || report.Results[0].Scenario != "jobs" {
		t.Fatalf("results: %+v", report.Results)
	}
	res := report.Results[0]
	if res.Error != "" {
		t.Fatalf("jobs: %s\nstderr:\n%s", res.Error, errOut.String())
	}
	got := map[string]float64{}
	var shares, latShares float64
	for _, m := range res.Metrics {
		got[m.Name] = m.Value
		t.Logf("%-36s %10.2f %s", m.Name, m.Value, m.Unit)
		if strings.HasPrefix(m.Name, "process ") && strings.HasSuffix(m.Name, " handled") {
			shares += m.Value
		}
		if strings.HasPrefix(m.Name, "latency: process ") {
			latShares += m.Value
		}
	}
	for name, want := range map[string]float64{
		"jobs": 2000, "worker processes": 2, "lost": 0, "handled more than once": 0,
		"latency: undelivered after drain": 0, "latency: handled more than once": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present: %v), want %v", name, v, ok, want)
		}
	}
	if shares != 2000 {
		t.Errorf("the processes handled %v jobs in all, want 2000", shares)
	}
	if got["burn-down"] <= 0 || got["latency: jobs measured"] <= 0 || got["latency p99"] <= 0 {
		t.Errorf("burn-down %v jobs/s, latency phase %v jobs, p99 %v ms", got["burn-down"],
			got["latency: jobs measured"], got["latency p99"])
	}
	if latShares < got["latency: jobs measured"] {
		t.Errorf("the processes handled %v jobs in the latency phase, fewer than the %v measured",
			latShares, got["latency: jobs measured"])
	}
	if res.Pass == nil {
		t.Error("no target checked")
	}
}

// TestBenchJobsInterrupt interrupts `pgque bench` while the jobs scenario's
// worker processes run: it must stop them before it exits.
func TestBenchJobsInterrupt(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string(nil), benchJobsArgs...)
	args[len(args)-1] = "60s" // --duration: it is interrupted long before
	cmd := command(ctx, append(args, "--dsn", c.dsn)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), "jobs: latency at") {
			break
		}
	}
	workers := benchWorkers(t, cmd.Process.Pid)
	if len(workers) != 2 {
		t.Errorf("worker processes of pid %d: %v, want 2\nstderr so far:\n%s", cmd.Process.Pid, workers,
			strings.Join(seen, "\n"))
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
		t.Errorf("pgque bench after Ctrl-C: %v, want exit status %d", err, exitInterrupted)
	}
	for _, pid := range workers {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("worker process %d is still there after bench exited", pid)
		}
	}
}

// benchWorkers returns the pids of the `bench worker` processes whose
// parent is pid (Linux: from /proc).
func benchWorkers(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var pids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), "\x00bench\x00worker\x00") {
			pids = append(pids, n)
		}
	}
	return pids
}
