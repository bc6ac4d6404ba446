package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
)

// The page and its assets need no token, come with a strict
// Content-Security-Policy, and pass the Host check as the API does.
func TestDashboardAssets(t *testing.T) {
	e := newEnv(t, server.Options{Tokens: testTokens(t)})
	for _, tc := range []struct {
		path, host string
		code       int
		ctype      string
	}{
		{"/", "", 200, "text/html"},
		{"/ui/app.js", "", 200, "text/javascript"},
		{"/ui/app.css", "", 200, "text/css"},
		{"/ui/", "", 404, ""},
		{"/ui/index.html", "", 404, ""},
		{"/ui/nope.js", "", 404, ""},
		{"/", "evil.example", 403, ""}, // DNS rebinding
	} {
		req, err := http.NewRequest("GET", e.http.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("GET %s (Host %q): %d %s, want %d %s", tc.path, tc.host, resp.StatusCode, resp.Header.Get("Content-Type"), tc.code, tc.ctype)
		}
		if tc.code == 200 {
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
			}
		}
	}
	// The API still needs its token.
	if code, _ := getJSON(t, e.http.URL+"/v1/queues"); code != 401 {
		t.Errorf("GET /v1/queues without a token: %d", code)
	}
}

func getJSON(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

// browser starts headless Chromium (Debian's chromium, which make test's
// setup installs) for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the dashboard's test (scripts/setup.sh test installs it): %v", err)
	}
	// Not t.TempDir: chromium's helper processes may still write into its
	// profile after the browser is gone, and t.TempDir fails the test when
	// it cannot remove a directory.
	profile, err := os.MkdirTemp("", "pgque-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
		for try := 0; ; try++ {
			err := os.RemoveAll(profile)
			if err == nil || try == 20 {
				if err != nil {
					t.Logf("browser profile %s left behind: %v", profile, err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond) // the helpers exit on their own
		}
	})
	// Start the browser on ctx itself: the first Run's context owns it, and
	// the steps' shorter contexts must not take it down when they end.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// run runs the actions of one step, within 30 seconds, and fails the test
// with what the page's status line says if they do not succeed.
func run(t *testing.T, b context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v (the page says %q)", what, err, pageStatus(b))
	}
}

// pageStatus is the page's status line, for a failure's message.
func pageStatus(b context.Context) string {
	var s string
	ctx, cancel := context.WithTimeout(b, 5*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Text("#status", &s, chromedp.ByQuery)); err != nil {
		return "(no status: " + err.Error() + ")"
	}
	return s
}

// waitJS waits until the JavaScript expression is true.
func waitJS(expr string) chromedp.PollAction {
	return chromedp.Poll(expr, nil, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))
}

// In a real browser: without a token the page says the API refused it;
// with one it lists the queues and follows new ones; a dead letter is
// replayed from it and leaves the list; a queue is paused from it.  The
// screenshot is written to $PGQUE_TEST_OUTPUT (default the temporary
// directory) as pgque-dashboard-*.png; the test's log names it.
func TestDashboardInBrowser(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, server.Options{Tokens: testTokens(t)})
	// A dead letter of consumer c on queue q.
	if _, err := e.sdk.Send(ctx, "q", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 7}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.sdk.Receive(ctx, "q", "c", 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v, %v", msgs, err)
	}
	if _, err := e.sdk.Reject(ctx, msgs[0].BatchID, msgs[0], "unreadable"); err != nil {
		t.Fatal(err)
	}
	if err := e.sdk.Ack(ctx, msgs[0].BatchID); err != nil {
		t.Fatal(err)
	}

	b := browser(t)
	run(t, b, "the page without a token",
		chromedp.Navigate(e.http.URL+"/"),
		waitJS(`document.querySelector("#status").textContent.includes("401")`),
	)
	run(t, b, "the queue with a token",
		chromedp.SendKeys("#token", adminToken),
		chromedp.Click("#token-form button"),
		chromedp.WaitVisible(`#queues tr[data-queue="q"]`),
	)
	// A queue made meanwhile appears by itself.
	if _, err := e.sdk.CreateQueue(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	run(t, b, "a new queue", chromedp.WaitVisible(`#queues tr[data-queue="fresh"]`))
	// The dead letter: listed, its payload shown, replayed, gone.
	var payload string
	run(t, b, "the dead letter",
		chromedp.Click(`#queues tr[data-queue="q"] a`),
		chromedp.WaitVisible(`#dead-letters tr[data-dead-letter]`),
		chromedp.Click(`#dead-letters tr[data-dead-letter] button[aria-label^="Show the payload"]`),
		chromedp.Text("#payload", &payload),
	)
	if !strings.Contains(payload, `"id": 7`) {
		t.Errorf("payload shown: %q", payload)
	}
	var png []byte
	run(t, b, "the screenshot", chromedp.FullScreenshot(&png, 100))
	dir := os.Getenv("PGQUE_TEST_OUTPUT")
	if dir == "" {
		dir = os.TempDir()
	}
	// A name of its own: another user's file of an earlier run may be there.
	f, err := os.CreateTemp(dir, "pgque-dashboard-*.png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(png); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", f.Name(), len(png))
	run(t, b, "replaying",
		chromedp.Click(`#dead-letters tr[data-dead-letter] button[aria-label^="Replay"]`),
		waitJS(`document.querySelectorAll("#dead-letters tr[data-dead-letter]").length === 0`),
		waitJS(`document.querySelector("#status").textContent.includes("replay dead letter")`),
	)
	if dl, err := e.sdk.DeadLetters(ctx, "q", 10); err != nil || len(dl) != 0 {
		t.Errorf("dead letters after the replay: %v, %v", dl, err)
	}
	// Pause from the page.
	run(t, b, "pausing",
		chromedp.Click(`#queues tr[data-queue="q"] button[aria-label="Pause queue q"]`),
		chromedp.WaitVisible(`#queues tr[data-queue="q"] button[aria-label="Resume queue q"]`),
	)
	if q, err := e.sdk.Queue(ctx, "q"); err != nil || !q.Paused {
		t.Errorf("queue after the pause button: %+v, %v", q, err)
	}
	// A job looked up by id, and cancelled for its consumer.
	id, err := e.sdk.Send(ctx, "fresh", pgque.Event{Type: "job"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.Subscribe(ctx, "fresh", "worker"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sdk.ForceTick(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	run(t, b, "cancelling a job",
		chromedp.Click(`#queues tr[data-queue="fresh"] a`),
		waitJS(`document.querySelector("#queue-name").textContent === "fresh"`),
		chromedp.SetValue("#job-id", itoa(id)),
		chromedp.Click(`#job-form button`),
		// The page's refresh redraws the rows, so a button found a moment ago
		// may be gone by the click: click the current one, again after 2 s
		// while the row does not say cancelled (a second cancel is a no-op).
		waitJS(`(() => {
			if ([...document.querySelectorAll("#jobs td")].some(td => td.textContent === "cancelled")) return true;
			const b = document.querySelector('#jobs button[aria-label="Cancel message `+itoa(id)+` for worker"]');
			if (b && !(window.cancelClickedAt > Date.now() - 2000)) { window.cancelClickedAt = Date.now(); b.click(); }
			return false;
		})()`),
	)
	st, err := e.sdk.MessageStatus(ctx, "fresh", id)
	if err != nil || len(st) != 1 || st[0].State != "cancelled" {
		t.Errorf("the job after the cancel button: %+v, %v", st, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
