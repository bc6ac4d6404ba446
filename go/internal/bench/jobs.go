package bench

// The jobs scenario: pgque used as a job queue by
// several worker processes that share one consumer, each running one
// pgque.Consumer with default options (so a cooperative worker with a name
// of its own, see pgque.WithWorker) and a handler that does nothing but
// note which job it got.
//
// The workers are separate OS processes: this binary run again as
// `pgque bench worker` (Env.WorkerCommand).  A worker connects, says it is
// ready, starts its Consumer when the scenario writes "go" on its stdin, and
// stops it (finishing and acknowledging what it holds, then releasing its
// worker) when its stdin is closed, the scenario's end, or on SIGTERM.  It
// reports on stdout, as JSON lines flushed every jobsFlushEvery: the ids of
// the jobs it handled and when (a wall-clock offset from the scenario's
// clock base, which every process on the machine reads alike).
//
// Phase A, burn-down: Jobs jobs are sent first (send_batch of 10,000 per
// transaction, a Ticker running), ticked, then JobWorkers processes are
// started; once all of them are connected and ready they are told to go at
// the same moment, and the time runs from then to the last handler call of
// the last job.  Every job must be handled once: the scenario fails when one
// is missing, and counts the ones handled again.
//
// Phase B, latency: new worker processes on a second queue, jobs offered at
// Rate per second (one per transaction over Conns connections, as in the
// latency scenario), commit → handler latency over Duration after a warm-up.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

const (
	jobsQueue        = "bench_jobs"
	jobsLatencyQueue = "bench_jobs_latency"
	jobsType         = "job"
	jobsChunk        = 10_000
	// jobsFlushEvery is how often a worker process reports what it handled.
	// It delays what the scenario learns, not what it measures: handler
	// times are taken in the worker.
	jobsFlushEvery = 50 * time.Millisecond
	// jobsReadyTimeout bounds a worker process's start (exec, connect).
	jobsReadyTimeout = 30 * time.Second
	// jobsStall fails the burn-down when no new job was handled for this
	// long.
	jobsStall = 30 * time.Second
	// jobsStopTimeout is how long worker processes get to stop on their own
	// (finish and acknowledge their piece, release their worker) before
	// they are sent SIGTERM; jobsKillDelay, how long after SIGTERM they are
	// killed.
	jobsStopTimeout = 15 * time.Second
	jobsKillDelay   = 5 * time.Second

	// riverJobsPerSec is River's burn-down rate (no-op jobs) measured on
	// this machine in an earlier round.  River is not installed here, so it
	// is not re-measured; docs/benchmarks.md cites the same figure.
	riverJobsPerSec = 19_000
	// jobsTargetFactor is the jobs target: ≥ 25× River.
	jobsTargetFactor = 25
)

// --- the worker process ------------------------------------------------------

// JobWorker is one worker process of the jobs scenario, what
// `pgque bench worker` runs.
type JobWorker struct {
	DSN      string
	Queue    string
	Consumer string
	// ClockBase is the scenario's clock base (Unix nanoseconds): handler
	// times are reported as wall-clock offsets from it.
	ClockBase int64
	// Times reports each job's handler time (the latency phase); without
	// it only the time of the last job of each report.
	Times bool
	// FlushEvery is how often the worker reports (jobsFlushEvery if 0).
	FlushEvery time.Duration
}

// jobLine is one line a worker process writes on stdout.
type jobLine struct {
	Ready bool    `json:"ready,omitempty"` // connected, waiting for "go"
	PID   int     `json:"pid,omitempty"`
	IDs   []int64 `json:"ids,omitempty"`  // jobs handled since the last report, in order
	At    []int64 `json:"at,omitempty"`   // their handler times, ns after the clock base (Times)
	Last  int64   `json:"last,omitempty"` // the handler time of the last of IDs
	Done  bool    `json:"done,omitempty"` // the Consumer stopped; the last line
	// With Done: jobs handled in all and pieces they came in, and the
	// Consumer's error, if any.
	Handled int64  `json:"handled,omitempty"`
	Pieces  int64  `json:"pieces,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Run connects, reports that it is ready, and on "go" from stdin runs a
// Consumer with default options and a no-op handler for "*" until stdin is
// closed (or says "stop") or ctx ends.  It returns the Consumer's error.
func (w JobWorker) Run(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	if w.Queue == "" || w.Consumer == "" {
		return errors.New("bench worker: queue and consumer are required")
	}
	flushEvery := w.FlushEvery
	if flushEvery <= 0 {
		flushEvery = jobsFlushEvery
	}
	client, err := pgque.Connect(ctx, w.DSN)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Pool().Ping(ctx); err != nil {
		return err
	}
	// A wall-clock base (no monotonic reading): offsets from it compare
	// across processes.
	clock := loadClock{base: time.Unix(0, w.ClockBase)}

	var (
		mu        sync.Mutex
		ids, at   []int64
		last      int64
		handled   int64
		pieces    int64
		lastPiece int64 = -1
	)
	cons := client.NewConsumer(w.Queue, w.Consumer) // default options: a cooperative worker
	cons.Handle("*", func(_ context.Context, m pgque.Message) error {
		t := int64(clock.now())
		mu.Lock()
		ids = append(ids, m.MsgID)
		if w.Times {
			at = append(at, t)
		}
		last = t
		handled++
		if m.BatchID != lastPiece {
			pieces, lastPiece = pieces+1, m.BatchID
		}
		mu.Unlock()
		return nil
	})

	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	write := func(l jobLine) error {
		if err := enc.Encode(l); err != nil {
			return err
		}
		return out.Flush()
	}
	if err := write(jobLine{Ready: true, PID: os.Getpid()}); err != nil {
		return err
	}

	// Commands from stdin: "go" once, then "stop" or EOF.
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case cmds <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-ctx.Done():
		return write(jobLine{Done: true})
	case cmd, ok := <-cmds:
		if !ok || cmd == "stop" {
			return write(jobLine{Done: true})
		}
		if cmd != "go" {
			return fmt.Errorf("bench worker: unexpected command %q", cmd)
		}
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for cmd := range cmds {
			if cmd == "stop" {
				break
			}
		}
		stop()
	}()

	flush := func() error {
		mu.Lock()
		l := jobLine{IDs: ids, At: at, Last: last}
		ids, at = nil, nil
		mu.Unlock()
		if len(l.IDs) == 0 {
			return nil
		}
		return write(l)
	}
	flushed := make(chan error, 1)
	go func() {
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				flushed <- nil
				return
			case <-t.C:
			}
			if err := flush(); err != nil {
				// The scenario went away: stop.
				stop()
				flushed <- err
				return
			}
		}
	}()
	consErr := cons.Start(cctx)
	stop()
	ferr := <-flushed
	if ferr == nil {
		ferr = flush()
	}
	done := jobLine{Done: true}
	mu.Lock()
	done.Handled, done.Pieces = handled, pieces
	mu.Unlock()
	if consErr != nil {
		done.Error = consErr.Error()
	}
	if ferr == nil {
		ferr = write(done)
	}
	if consErr != nil {
		return consErr
	}
	return ferr
}

// --- worker processes, from the scenario's side ------------------------------

// jobProc is one worker process.
type jobProc struct {
	n      int // 1-based, for reports
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer

	startedAt time.Duration
	readyAt   time.Duration // set before ready is closed
	pid       int
	ready     chan struct{}
	exited    chan struct{}
	err       error   // set before exited is closed
	done      jobLine // its last line, set before exited is closed
	gotDone   bool

	// Under the fleet's mu:
	handled int64 // jobs it reported, duplicates included
}

// jobFleet is the worker processes of one phase.
type jobFleet struct {
	procs   []*jobProc
	kill    context.CancelFunc // SIGTERM to every process still running
	exited  chan *jobProc      // each process, when it exited
	once    sync.Once
	stopErr error

	mu     sync.Mutex
	onJobs func(p *jobProc, l *jobLine) // called under mu for each report
}

// startJobFleet starts n worker processes of queue/benchConsumer.  onJobs
// is called (one call at a time) for each report of handled jobs.  Stop the
// fleet with stop, which also happens, by SIGTERM, when ctx ends.
func startJobFleet(ctx context.Context, env *Env, clock loadClock, queue string, n int, times bool,
	onJobs func(p *jobProc, l *jobLine)) (*jobFleet, error) {
	if len(env.WorkerCommand) == 0 {
		return nil, errors.New("no worker command: the jobs scenario runs from `pgque bench`")
	}
	pctx, kill := context.WithCancel(ctx)
	f := &jobFleet{kill: kill, exited: make(chan *jobProc, n), onJobs: onJobs}
	args := append(env.WorkerCommand[1:len(env.WorkerCommand):len(env.WorkerCommand)],
		"--queue", queue, "--consumer", benchConsumer,
		"--clock-base", strconv.FormatInt(clock.base.UnixNano(), 10),
		"--flush", jobsFlushEvery.String())
	if times {
		args = append(args, "--times")
	}
	for i := range n {
		cmd := exec.CommandContext(pctx, env.WorkerCommand[0], args...)
		// The DSN goes in the environment, not on the command line, where
		// ps would show its password.
		cmd.Env = append(os.Environ(), "PGQUE_DSN="+env.DSN)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = jobsKillDelay
		p := &jobProc{n: i + 1, cmd: cmd, stderr: &tailBuffer{max: 4096},
			ready: make(chan struct{}), exited: make(chan struct{})}
		cmd.Stderr = p.stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			f.stop()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			f.stop()
			return nil, err
		}
		p.stdin = stdin
		p.startedAt = clock.now()
		if err := cmd.Start(); err != nil {
			f.stop()
			return nil, fmt.Errorf("start worker process: %w", err)
		}
		f.procs = append(f.procs, p)
		go f.read(p, stdout, clock)
	}
	return f, nil
}

// read decodes a process's reports until it closes stdout, then waits for
// it to exit.
func (f *jobFleet) read(p *jobProc, stdout io.Reader, clock loadClock) {
	dec := json.NewDecoder(stdout)
	var derr error
	readyClosed := false
	for {
		var l jobLine
		if err := dec.Decode(&l); err != nil {
			if !errors.Is(err, io.EOF) {
				derr = fmt.Errorf("bad report: %w", err)
			}
			break
		}
		switch {
		case l.Ready:
			if !readyClosed {
				p.readyAt, p.pid = clock.now(), l.PID
				close(p.ready)
				readyClosed = true
			}
		case l.Done:
			p.done, p.gotDone = l, true
		default:
			f.mu.Lock()
			p.handled += int64(len(l.IDs))
			f.onJobs(p, &l)
			f.mu.Unlock()
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := p.cmd.Wait()
	switch {
	case werr != nil:
		p.err = fmt.Errorf("worker process %d: %v%s", p.n, werr, p.stderr.suffix())
	case derr != nil:
		p.err = fmt.Errorf("worker process %d: %v", p.n, derr)
	case p.gotDone && p.done.Error != "":
		p.err = fmt.Errorf("worker process %d: %s", p.n, p.done.Error)
	case !p.gotDone:
		p.err = fmt.Errorf("worker process %d exited without its final report%s", p.n, p.stderr.suffix())
	}
	close(p.exited)
	f.exited <- p
}

// waitReady waits until every process is ready.
func (f *jobFleet) waitReady(ctx context.Context) error {
	timer := time.NewTimer(jobsReadyTimeout)
	defer timer.Stop()
	for _, p := range f.procs {
		select {
		case <-p.ready:
		case <-p.exited:
			if p.err != nil {
				return p.err
			}
			return fmt.Errorf("worker process %d exited before it was ready", p.n)
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("worker process %d not ready after %v%s", p.n, jobsReadyTimeout, p.stderr.suffix())
		}
	}
	return nil
}

// start tells every process to start its Consumer.
func (f *jobFleet) start() error {
	for _, p := range f.procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			return fmt.Errorf("worker process %d: %w", p.n, err)
		}
	}
	return nil
}

// exitedEarly reports a process that exited while it should run.
func (f *jobFleet) exitedEarly(p *jobProc) error {
	if p.err != nil {
		return p.err
	}
	return fmt.Errorf("worker process %d exited before it was told to stop", p.n)
}

// stop closes every process's stdin, which stops its Consumer, and waits
// for them to exit; processes still running after jobsStopTimeout are sent
// SIGTERM, and killed jobsKillDelay later.  It returns the first process's
// error.  Calling it again returns the same.
func (f *jobFleet) stop() error {
	f.once.Do(func() {
		for _, p := range f.procs {
			_ = p.stdin.Close()
		}
		timer := time.NewTimer(jobsStopTimeout)
		defer timer.Stop()
		for _, p := range f.procs {
			select {
			case <-p.exited:
			case <-timer.C:
				f.kill()
				<-p.exited
			}
		}
		f.kill()
		for _, p := range f.procs {
			if p.err != nil && f.stopErr == nil {
				f.stopErr = p.err
			}
		}
	})
	return f.stopErr
}

// shares describes how many jobs each process handled.
func (f *jobFleet) shares(total int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for _, p := range f.procs {
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(p.handled) / float64(total)
		}
		parts = append(parts, fmt.Sprintf("process %d: %d (%.1f %%, %d pieces)", p.n, p.handled, pct, p.done.Pieces))
	}
	return strings.Join(parts, ", ")
}

// tailBuffer keeps the last max bytes written to it (a process's stderr).
type tailBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// suffix is ": <stderr>" for error messages, or "" when it is empty.
func (t *tailBuffer) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return ": " + s
}

// has reports whether id is in the set.
func (s *idSet) has(id int64) bool {
	if id < 0 {
		return false
	}
	w, b := int(id/64), uint(id%64)
	return w < len(s.bits) && s.bits[w]&(1<<b) != 0
}

// handledAt is latencyRecorder.handled for a handler that ran at at in
// another process.
func (r *latencyRecorder) handledAt(id int64, at time.Duration) {
	r.handledN.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen.add(id) {
		r.dups++
		return
	}
	if c, ok := r.commits[id]; ok {
		delete(r.commits, id)
		r.pairs = append(r.pairs, latPair{commit: c, handled: at})
		return
	}
	r.early[id] = at
}

// wallClock is a loadClock that reads the wall clock, so that its offsets
// compare with those the worker processes take from the same base.  (An
// NTP step during a run would distort them; slewing is far below a
// millisecond over a run.)
func wallClock() loadClock { return loadClock{base: time.Unix(0, time.Now().UnixNano())} }

// --- the scenario --------------------------------------------------------------

func runJobs(ctx context.Context, env *Env) (Result, error) {
	res := Result{Scenario: "jobs"}
	jobs := env.Jobs
	if jobs <= 0 {
		jobs = DefaultConfig().Jobs
	}
	workers := env.JobWorkers
	if workers <= 0 {
		workers = DefaultConfig().JobWorkers
	}
	clock := wallClock()

	g := newTaskGroup()
	defer g.stopAll()
	tickPool, err := openLoadPool(ctx, env.DSN, 1, nil)
	if err != nil {
		return res, err
	}
	defer tickPool.Close()
	g.start(ctx, "ticker", func(ctx context.Context) error {
		return pgque.New(tickPool).RunTicker(ctx, pgque.WithTickInterval(benchTickInterval))
	})

	a, err := jobsBurnDown(ctx, env, g, clock, jobs, workers)
	if err != nil {
		return res, err
	}
	b, err := jobsLatency(ctx, env, g, clock, workers)
	if err != nil {
		return res, err
	}

	rate := float64(jobs) / a.took.Seconds()
	target := float64(jobsTargetFactor * riverJobsPerSec)
	res.Add("jobs", float64(jobs), "jobs")
	res.Add("worker processes", float64(workers), "processes")
	res.Add("burn-down", rate, "jobs/s")
	res.Add("burn-down time", round2(a.took.Seconds()), "s")
	res.Add("vs River's 19k jobs/s (past run)", round2(rate/riverJobsPerSec), "x")
	res.Add("burn-down incl. process start", float64(jobs)/a.withStart.Seconds(), "jobs/s")
	res.Add("process start to ready, slowest", durMs(a.startup), "ms")
	for i, n := range a.handled {
		res.Add(fmt.Sprintf("process %d handled", i+1), float64(n), "jobs")
	}
	res.Add("lost", float64(a.lost), "jobs")
	res.Add("handled more than once", float64(a.dups), "jobs")
	res.Add("pieces", float64(a.pieces), "pieces")
	res.Add("load (SendBatch 10k)", float64(jobs)/a.load.Seconds(), "jobs/s")
	if a.pending != 0 {
		res.Add("pending after stop", float64(a.pending), "events")
	}

	s := b.lat
	res.Add("latency: offered rate", float64(b.rate), "jobs/s")
	res.Add("latency: achieved rate", round2(b.achieved), "jobs/s")
	res.Add("latency: jobs measured", float64(s.n), "jobs")
	s.addTo(&res, "latency ")
	for i, n := range b.handled {
		res.Add(fmt.Sprintf("latency: process %d handled", i+1), float64(n), "jobs")
	}
	res.Add("latency: undelivered after drain", float64(b.undelivered), "jobs")
	res.Add("latency: handled more than once", float64(b.dups), "jobs")

	res.Check(fmt.Sprintf("burn-down ≥ %d × River's %d jobs/s = %.0f jobs/s, every job once",
		jobsTargetFactor, riverJobsPerSec, target), rate >= target && a.lost == 0 && a.dups == 0)

	res.Notes = append(res.Notes,
		fmt.Sprintf("%d worker processes (this binary as `pgque bench worker`), each one pgque.Consumer of %s/%s "+
			"with default options (a cooperative worker with an automatic name; no WithWorker, no "+
			"WithSingleReader) and a handler for \"*\" that only records the job's id and time; a Ticker "+
			"(tick %v) runs in the bench process throughout.", workers, jobsQueue, benchConsumer, benchTickInterval),
		fmt.Sprintf("Burn-down: %d jobs (%d-byte payloads) sent first with send_batch of %d per transaction and "+
			"ticked; then the processes were started, and once all were connected they were told to go at "+
			"once. Time from go to the last job's handler call (its piece's ack comes after): %v; "+
			"from the first process's start: %v (slowest start to ready %.0f ms).",
			jobs, env.PayloadSize, jobsChunk, a.took.Round(time.Millisecond), a.withStart.Round(time.Millisecond),
			durMs(a.startup)),
		fmt.Sprintf("Shares of the burn-down: %s; %d lost, %d handled more than once.", a.shares, a.lost, a.dups),
		fmt.Sprintf("River's figure (%d jobs/s, its burn-down benchmark with no-op jobs) is a past measurement on "+
			"this machine in an earlier round; River is not run here.", riverJobsPerSec),
		fmt.Sprintf("Latency: %d new worker processes on %s, jobs offered at %d/s (one pgque.send per transaction "+
			"over %d connections, absolute schedule); commit → handler for jobs committed in the %v window after "+
			"a %v warm-up: %s. Handler times are taken in the worker processes, commit times in the bench "+
			"process, both from the wall clock. Shares: %s.", workers, jobsLatencyQueue, b.rate, b.conns,
			env.Duration, latencyWarmup, s, b.shares),
	)
	if a.pending != 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("After the workers stopped, get_consumer_info still counted %d "+
			"pending events for the burn-down's consumer.", a.pending))
	}
	if b.undelivered > 0 || b.dups > 0 || b.noCommit > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("Latency phase: %d jobs undelivered %v after the producer "+
			"stopped, %d deliveries of jobs handled before, %d handled jobs whose commit was not recorded.",
			b.undelivered, drainTimeout, b.dups, b.noCommit))
	}
	return res, nil
}

// burnDown is what phase A measured.
type burnDown struct {
	load, took, withStart, startup time.Duration
	handled                        []int64 // per process, duplicates included
	lost, dups                     int
	pieces                         int64
	pending                        int64
	shares                         string
}

// jobsBurnDown is phase A.
func jobsBurnDown(ctx context.Context, env *Env, g *taskGroup, clock loadClock, jobs, workers int) (burnDown, error) {
	var a burnDown
	if err := setupQueue(ctx, env.Client, jobsQueue); err != nil {
		return a, err
	}
	events := make([]pgque.Event, min(jobsChunk, jobs))
	for i := range events {
		events[i] = pgque.Event{Type: jobsType, Payload: loadPayload(env.PayloadSize)}
	}
	env.Logf("jobs: sending %d jobs (send_batch of %d per transaction)", jobs, jobsChunk)
	var sent idSet
	start := time.Now()
	for n := 0; n < jobs; {
		k := min(jobsChunk, jobs-n)
		ids, err := env.Client.SendBatch(ctx, jobsQueue, events[:k])
		if err != nil {
			return a, fmt.Errorf("load: %w", err)
		}
		for _, id := range ids {
			sent.add(id)
		}
		n += k
	}
	a.load = time.Since(start)
	if _, err := env.Client.ForceTick(ctx, jobsQueue); err != nil {
		return a, err
	}

	var (
		seen     idSet
		distinct int
		lastAt   time.Duration
		endAt    time.Duration
		complete = make(chan struct{})
	)
	fleet, err := startJobFleet(ctx, env, clock, jobsQueue, workers, false, func(_ *jobProc, l *jobLine) {
		for _, id := range l.IDs {
			if seen.add(id) {
				distinct++
			} else {
				a.dups++
			}
		}
		lastAt = max(lastAt, time.Duration(l.Last))
		if distinct == jobs && endAt == 0 {
			endAt = lastAt
			close(complete)
		}
	})
	if err != nil {
		return a, err
	}
	defer fleet.stop()
	if err := fleet.waitReady(ctx); err != nil {
		return a, err
	}
	first := fleet.procs[0].startedAt
	for _, p := range fleet.procs {
		a.startup = max(a.startup, p.readyAt-p.startedAt)
	}
	env.Logf("jobs: %d worker processes ready (slowest in %.0f ms); go", workers, durMs(a.startup))
	goAt := clock.now()
	if err := fleet.start(); err != nil {
		return a, err
	}

	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	lastN, lastChange, nextLog := 0, time.Now(), time.Now().Add(5*time.Second)
wait:
	for {
		select {
		case <-complete:
			break wait
		case <-ctx.Done():
			return a, ctx.Err()
		case p := <-fleet.exited:
			return a, fleet.exitedEarly(p)
		case t := <-g.exited:
			return a, taskEnded(t)
		case <-progress.C:
			fleet.mu.Lock()
			n := distinct
			fleet.mu.Unlock()
			if n != lastN {
				lastN, lastChange = n, time.Now()
			} else if time.Since(lastChange) > jobsStall {
				return a, fmt.Errorf("burn-down stalled: %d of %d jobs handled, none for %v", n, jobs, jobsStall)
			}
			if time.Now().After(nextLog) {
				env.Logf("jobs: %d/%d handled", n, jobs)
				nextLog = time.Now().Add(5 * time.Second)
			}
		}
	}
	fleet.mu.Lock()
	a.took, a.withStart = endAt-goAt, endAt-first
	fleet.mu.Unlock()
	env.Logf("jobs: %d jobs handled in %v: %.0f jobs/s", jobs, a.took.Round(time.Millisecond),
		float64(jobs)/a.took.Seconds())

	// Stop the workers: they acknowledge what they hold and release their
	// workers; anything they handle meanwhile counts (as a duplicate).
	if err := fleet.stop(); err != nil {
		return a, err
	}
	fleet.mu.Lock()
	for _, p := range fleet.procs {
		a.handled = append(a.handled, p.handled)
		a.pieces += p.done.Pieces
	}
	for id := range int64(len(sent.bits) * 64) {
		if sent.has(id) && !seen.has(id) {
			a.lost++
		}
	}
	fleet.mu.Unlock()
	a.shares = fleet.shares(int64(jobs))
	if err := env.Pool.QueryRow(ctx, `SELECT pending_events FROM pgque.get_consumer_info($1, $2)`,
		jobsQueue, benchConsumer).Scan(&a.pending); err != nil {
		return a, err
	}
	env.Logf("jobs: shares %s; %d lost, %d handled more than once", a.shares, a.lost, a.dups)
	if a.lost > 0 {
		return a, fmt.Errorf("%d of %d jobs were never handled", a.lost, jobs)
	}
	return a, nil
}

// jobsLat is what phase B measured.
type jobsLat struct {
	rate, conns                 int
	achieved                    float64
	lat                         latSummary
	handled                     []int64
	undelivered, dups, noCommit int
	shares                      string
}

// jobsLatency is phase B.
func jobsLatency(ctx context.Context, env *Env, g *taskGroup, clock loadClock, workers int) (jobsLat, error) {
	b := jobsLat{rate: env.Rate, conns: max(env.Conns, 1)}
	if b.rate <= 0 {
		b.rate = 1000
	}
	if err := setupQueue(ctx, env.Client, jobsLatencyQueue); err != nil {
		return b, err
	}
	rec := newLatencyRecorder(clock)
	fleet, err := startJobFleet(ctx, env, clock, jobsLatencyQueue, workers, true, func(_ *jobProc, l *jobLine) {
		for i, id := range l.IDs {
			at := l.Last // a worker reports times for all its jobs or none
			if len(l.At) == len(l.IDs) {
				at = l.At[i]
			}
			rec.handledAt(id, time.Duration(at))
		}
	})
	if err != nil {
		return b, err
	}
	defer fleet.stop()
	if err := fleet.waitReady(ctx); err != nil {
		return b, err
	}
	if err := fleet.start(); err != nil {
		return b, err
	}
	prodPool, err := openLoadPool(ctx, env.DSN, b.conns, nil)
	if err != nil {
		return b, err
	}
	defer prodPool.Close()
	prod := &rateProducer{
		client: pgque.New(prodPool), queue: jobsLatencyQueue, rate: float64(b.rate), workers: b.conns,
		event: pgque.Event{Type: jobsType, Payload: loadPayload(env.PayloadSize)},
		clock: clock, onCommit: rec.committed,
	}
	prodTask := g.start(ctx, "producer", prod.run)
	defer prodTask.stop()
	env.Logf("jobs: latency at %d jobs/s over %d connections, %d worker processes, warming up %v",
		b.rate, b.conns, workers, latencyWarmup)

	// wait is g.wait that also fails when a worker process exits.
	wait := func(d time.Duration, progress func()) error {
		deadline := time.NewTimer(d)
		defer deadline.Stop()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case p := <-fleet.exited:
				return fleet.exitedEarly(p)
			case t := <-g.exited:
				if !t.stopped.Load() {
					return taskEnded(t)
				}
			case <-tick.C:
				if progress != nil {
					progress()
				}
			case <-deadline.C:
				return nil
			}
		}
	}
	if err := wait(latencyWarmup, nil); err != nil {
		return b, err
	}
	from := clock.now()
	sent0 := prod.sent.Load()
	seen := rec.completed()
	progress := func() {
		pairs, n := rec.since(seen)
		seen = n
		env.Logf("jobs: latency %4.0fs  last window %s", (clock.now() - from).Seconds(),
			summarize(latenciesIn(pairs, 0, clock.now())))
	}
	if err := wait(env.Duration, progress); err != nil {
		return b, err
	}
	to := clock.now()
	sent := prod.sent.Load() - sent0
	if err := prodTask.stop(); err != nil {
		return b, fmt.Errorf("producer: %w", err)
	}
	rec.drain(ctx, drainTimeout)
	b.undelivered = rec.pendingIn(from, to)
	if err := fleet.stop(); err != nil {
		return b, err
	}
	pairs, _ := rec.since(0)
	b.lat = summarize(latenciesIn(pairs, from, to))
	b.achieved = float64(sent) / (to - from).Seconds()
	b.noCommit, b.dups = rec.unmatched()
	fleet.mu.Lock()
	for _, p := range fleet.procs {
		b.handled = append(b.handled, p.handled)
	}
	fleet.mu.Unlock()
	b.shares = fleet.shares(rec.handledN.Load())
	env.Logf("jobs: latency %s; shares %s", b.lat, b.shares)
	return b, nil
}

// taskEnded is the error of a task that ended on its own.
func taskEnded(t *task) error {
	if t.err != nil {
		return fmt.Errorf("%s: %w", t.name, t.err)
	}
	return fmt.Errorf("%s stopped unexpectedly", t.name)
}
