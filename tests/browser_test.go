package tests

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// artifactsDir is where browser tests leave their screenshots:
// $HANDOFF_TEST_ARTIFACTS, or .artifacts/ in the repository.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HANDOFF_TEST_ARTIFACTS")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium (Debian's chromium); false without it.
func browser(t *testing.T) (context.Context, bool) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, false
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return ctx, true
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactsDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// browseOperationsPage drives the operations page in Chromium: without
// the cookie it sends to sign-in; signed in, it shows the parked order
// OPS-PARK, retries it and shows it gone; it pauses and resumes mail. A
// form posted without the page's CSRF token is refused. Without Chromium it
// says so and returns false, having done nothing.
func browseOperationsPage(t *testing.T, s *opsStack) bool {
	t.Helper()
	ctx, ok := browser(t)
	if !ok {
		t.Log("SKIPPED: the operations page's browser test needs chromium (Debian package chromium; make test installs it as root)")
		return false
	}
	parked := `tr[data-workflow="order/OPS-PARK"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(s.api+"/ops"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(location, "/ops/sign-in") {
		t.Fatalf("without a cookie /ops showed %s, want the sign-in page", location)
	}
	// Visibility is eventually consistent: the parked order may show a
	// moment after it parked.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), planted.operatorToken),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("providers")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitOnPage(t, ctx, `document.querySelector('`+parked+`') !== null`, "the parked order on the page")
	screenshot(t, ctx, "ops-parked.png")
	reason, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(parked+" td:nth-child(3)")))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(parked+` input[name="reason"]`), "invoice rule fixed"),
		chromedp.Click(chromedp.CSS(parked+" button.retry")),
		chromedp.WaitVisible(chromedp.CSS(`#done[data-done="retry"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "422") {
		t.Errorf("the parked order's reason reads %q, want the invoice's 422", reason)
	}
	waitOnPage(t, ctx, `document.querySelector('`+parked+`') === null`, "the retried order gone from the parked list")
	screenshot(t, ctx, "ops-retried.png")

	mail := `tr[data-system="mail"]`
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(mail+` input[name="reason"]`), "mail incident"),
		chromedp.Click(chromedp.CSS(mail+" button.pause")),
		chromedp.WaitVisible(chromedp.CSS(`#done[data-done="pause"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(mail+" .state")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(state, "paused") {
		t.Errorf("after pause, mail shows %q", state)
	}
	// On a phone-sized screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "ops-phone-paused.png")
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(mail+" button.resume")),
		chromedp.WaitVisible(chromedp.CSS(`#done[data-done="resume"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if state, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(mail+" .state"))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(state, "running") {
		t.Errorf("after resume, mail shows %q", state)
	}
	screenshot(t, ctx, "ops-resumed.png")

	// A form from elsewhere, with the operator's cookie but without the
	// page's CSRF token, is refused and changes nothing.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.PostForm(s.api+"/ops/sign-in", url.Values{"token": {planted.operatorToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = hc.PostForm(s.api+"/ops/providers", url.Values{"system": {"mail"}, "op": {"pause"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged pause: %d, want 403", resp.StatusCode)
	}
	if status, body := devRequest(t, http.MethodGet, s.api+"/v1/providers/mail", planted.operatorToken, nil); status != http.StatusOK || strings.Contains(string(body), `"paused":true`) {
		t.Errorf("after the forged pause mail reads %d %s", status, body)
	}
	return true
}

// waitOnPage reloads the page until the JavaScript condition holds.
func waitOnPage(t *testing.T, ctx context.Context, cond, what string) {
	t.Helper()
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		time.Sleep(time.Second)
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("providers"))); err != nil {
			t.Fatal(err)
		}
	}
	screenshot(t, ctx, "ops-timeout.png")
	t.Fatalf("the page never showed %s", what)
}
