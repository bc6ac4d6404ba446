package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// startServe runs `pgque args...` (serve, logging as JSON) until the test
// ends (or stop is called) and returns the URL it serves on, the log records
// it wrote before that, and stop, which cancels the command and returns its
// error.  Every line of the log must be a JSON object: one format per run.
func startServe(t *testing.T, args ...string) (string, []map[string]any, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRoot()
	root.SetArgs(append(args, "--log-format", "json"))
	root.SetOut(io.Discard)
	root.SetErr(pw)
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	type started struct {
		url     string
		records []map[string]any
	}
	up := make(chan started, 1)
	go func() {
		defer close(up)
		var records []map[string]any
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var r map[string]any
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("a log line that is not JSON: %q", sc.Text())
				continue
			}
			if r["msg"] == "pgque serve: listening" {
				up <- started{fmt.Sprint(r["url"]), records}
				break
			}
			records = append(records, r)
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
		return s.url, s.records, stop
	case <-time.After(2 * time.Minute):
		t.Fatal("pgque serve did not start")
	}
	return "", nil, nil
}

// logged returns attribute attr of the first record with message msg.
func logged(records []map[string]any, msg, attr string) string {
	for _, r := range records {
		if r["msg"] == msg {
			if v, ok := r[attr].(string); ok {
				return v
			}
		}
	}
	return ""
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
	url, records, stop := startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	dsn := logged(records, "pgque serve: database", "dsn")
	if !strings.HasPrefix(dsn, "postgres://") {
		t.Fatalf("no connection string logged: %v", records)
	}
	// The DSN is in a file of the data directory too, for other programs.
	file := logged(records, "pgque serve: database", "dsn_file")
	if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != dsn || filepath.Dir(file) != dir {
		t.Errorf("dsn_file %q: %q, %v; want %q in %s", file, b, err, dsn, dir)
	} else if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dsn_file mode: %v, %v; want 0600 (it holds the password)", fi.Mode(), err)
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

	url, records, _ = startServe(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	// The same port and DSN across restarts.
	if again := logged(records, "pgque serve: database", "dsn"); again != dsn {
		t.Errorf("DSN after a restart: %q, want %q", again, dsn)
	}
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

// --log-format is text or json; anything else stops serve and the ticker
// before they connect.
func TestLogFormatFlag(t *testing.T) {
	var ue usageError
	if err := runServeCmd(t, "--log-format", "xml"); !errors.As(err, &ue) || !strings.Contains(err.Error(), `--log-format "xml"`) {
		t.Errorf("serve --log-format xml: %v", err)
	}
	r := runBin(t, "", "ticker", "--dsn", "postgres://u@127.0.0.1:1/x", "--log-format", "XML")
	checkFails(t, r, exitUsage, `--log-format "XML" is not text or json`, []string{"ticker"})
}

func TestServeTokensAndMetricsListener(t *testing.T) {
	dsn := newDSN(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# ops\nadmin-token-0123456789 admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, records, _ := startServe(t, "serve", "--dsn", dsn, "--listen", "0.0.0.0:0", "--no-ticker",
		"--token-file", tokens, "--metrics-addr", "127.0.0.1:0")
	url = strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)
	metrics := logged(records, "pgque serve: metrics", "url")
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
