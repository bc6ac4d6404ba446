package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque/pgquetest"
	"github.com/pgque/pgque/go/pgquehttp"
)

// startServe runs `pgque args...` until the test ends (or stop is called)
// and returns the URL it serves on, the lines it printed before that, and
// stop, which cancels the command and returns its error.
func startServe(t *testing.T, args ...string) (string, []string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(pw)
	root.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	type started struct {
		url   string
		lines []string
	}
	up := make(chan started, 1)
	go func() {
		defer close(up)
		var lines []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "pgque serve: listening on "); ok {
				up <- started{u, lines}
				break
			}
			lines = append(lines, sc.Text())
		}
		// Keep the command's writes from blocking.
		_, _ = io.Copy(io.Discard, pr)
	}()
	var stopErr error
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	t.Cleanup(func() { stop() })
	select {
	case s, ok := <-up:
		if !ok {
			t.Fatalf("pgque %s: ended before serving: %v", strings.Join(args, " "), stop())
		}
		return s.url, s.lines, stop
	case <-time.After(2 * time.Minute):
		t.Fatal("pgque serve did not start")
	}
	return "", nil, nil
}

func getHealth(t *testing.T, url string) (int, pgquehttp.Health) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h pgquehttp.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, h
}

// newDSN starts a PostgreSQL server for the test and returns a fresh
// database of it.
func newDSN(t *testing.T) string {
	t.Helper()
	pg, err := pgquetest.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Cleanup)
	dsn, err := pg.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func TestServeWithDSN(t *testing.T) {
	dsn := newDSN(t)
	url, _, stop := startServe(t, "serve", "--dsn", dsn, "--listen", "127.0.0.1:0")
	if code, h := getHealth(t, url+"/healthz"); code != 200 || h.Status != "ok" {
		t.Errorf("healthz: %d %+v", code, h)
	}
	// The ticker runs by default; it may take an election to lead.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, h := getHealth(t, url+"/readyz")
		if code == 200 && h.Checks["ticker"] == "leader" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %d %+v", code, h)
		}
		time.Sleep(20 * time.Millisecond) // leadership has no event to wait for
	}
	c, err := pgquehttp.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateQueue(context.Background(), "q", nil); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after cancellation", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still serving after cancellation")
	}

	// Without a ticker, the same database: pgque is installed already.
	// Beyond loopback, without tokens when told so.
	url, _, _ = startServe(t, "serve", "--dsn", dsn, "--listen", "0.0.0.0:0", "--no-ticker", "--insecure-no-auth")
	url = strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)
	if code, _ := getHealth(t, url+"/v1/queues"); code != 200 {
		t.Errorf("--insecure-no-auth: %d", code)
	}
	if code, h := getHealth(t, url+"/readyz"); code != 200 || h.Checks["ticker"] != "not run by this process" {
		t.Errorf("readyz without ticker: %d %+v", code, h)
	}
}

func TestServeFlags(t *testing.T) {
	root := newRoot()
	root.SetArgs([]string{"serve", "--dsn", "postgres://x@127.0.0.1:1/x", "--data-dir", t.TempDir()})
	root.SetOut(io.Discard)
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("--data-dir with --dsn: %v", err)
	}
	t.Setenv("XDG_DATA_HOME", "/xdg")
	want := "/xdg/pgque"
	if os.Geteuid() == 0 {
		want = "/var/lib/pgque"
	}
	if d, err := defaultDataDir(); err != nil || d != want {
		t.Errorf("default data dir %q, %v; want %q", d, err, want)
	}
}

func TestPrepareDataDir(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o700); err != nil { // private to its owner, like /root
		t.Fatal(err)
	}
	dir := filepath.Join(base, "a", "b", "data")
	if err := prepareDataDir(dir, false); err != nil {
		t.Errorf("not root: %v", err)
	}
	err := prepareDataDir(dir, true)
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+base) {
		t.Fatalf("under a private directory: %v", err)
	}
	// Missing parents were created searchable; with base searchable too, it will do.
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	for p := base; p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatalf("cannot make %s searchable: %v", p, err)
			}
		}
	}
	if err := prepareDataDir(dir, true); err != nil {
		t.Errorf("under searchable directories: %v", err)
	}
}

// Without a DSN, serve runs a PostgreSQL server of its own in --data-dir,
// and finds it there again on the next start.
func TestServeLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	url, lines, stop := startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	dsn := ""
	for _, l := range lines {
		if d, ok := strings.CutPrefix(l, "pgque serve: database "); ok {
			dsn = d
		}
	}
	if !strings.HasPrefix(dsn, "postgres://") {
		t.Fatalf("no connection string printed: %q", lines)
	}
	c, err := pgquehttp.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateQueue(context.Background(), "kept", nil); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	url, _, _ = startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	c, err = pgquehttp.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := c.Queue(context.Background(), "kept"); err != nil || q.Name != "kept" {
		t.Errorf("queue after restart: %+v, %v", q, err)
	}
}

// runServeCmd runs `pgque serve args...` to its end, for the flags that
// stop it before it serves.
func runServeCmd(t *testing.T, args ...string) error {
	t.Helper()
	root := newRoot()
	root.SetArgs(append([]string{"serve", "--dsn", "postgres://x@127.0.0.1:1/x"}, args...))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root.ExecuteContext(context.Background())
}

// Beyond loopback serve needs tokens, unless told to serve without.
func TestServeNeedsTokensBeyondLoopback(t *testing.T) {
	err := runServeCmd(t, "--listen", "0.0.0.0:0")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("--listen 0.0.0.0:0 without tokens: %v", err)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("admin-token-0123456789 admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runServeCmd(t, "--listen", "0.0.0.0:0", "--token-file", tokens, "--insecure-no-auth"); !errors.As(err, &ue) {
		t.Errorf("--token-file with --insecure-no-auth: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("secret-but-short admin\nsecret-but-long-enough root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runServeCmd(t, "--token-file", bad)
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "secret-but") {
		t.Errorf("bad token file: %v", err)
	}
	t.Setenv("PGQUE_TOKEN_FILE", bad)
	if err := runServeCmd(t); !errors.As(err, &ue) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad $PGQUE_TOKEN_FILE: %v", err)
	}
}

func TestServeTokensAndMetricsListener(t *testing.T) {
	dsn := newDSN(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# ops\nadmin-token-0123456789 admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, lines, _ := startServe(t, "serve", "--dsn", dsn, "--listen", "0.0.0.0:0", "--no-ticker",
		"--token-file", tokens, "--metrics-addr", "127.0.0.1:0")
	url = strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)
	metrics := ""
	for _, l := range lines {
		if m, ok := strings.CutPrefix(l, "pgque serve: metrics on "); ok {
			metrics = m
		}
	}
	ctx := context.Background()
	if code, _ := getHealth(t, url+"/v1/queues"); code != 401 {
		t.Errorf("without a token: %d", code)
	}
	c, err := pgquehttp.NewClient(url, pgquehttp.WithToken("admin-token-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateQueue(ctx, "q", nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `pgque_queue_events_total{queue="q"}`) {
		t.Errorf("metrics listener: %d %.300s", resp.StatusCode, body)
	}
}
