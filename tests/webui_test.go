package tests

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/codec"
)

var webUIBanner = regexp.MustCompile(`Web UI\s+(http://localhost:\d+)/namespaces`)

// TestTheWebUIDecodesForASignedInOperatorOnly opens an order in the
// Temporal Web UI of `make run`'s stack, in headless Chromium, with the UI
// set to send credentials to handoff's codec endpoint: before the operator
// signs in to the operations page the order's input stays encrypted; after,
// the UI shows it decoded. Screenshots of both are saved. `temporal
// workflow show` of the order prints neither the e-mail nor the name.
func TestTheWebUIDecodesForASignedInOperatorOnly(t *testing.T) {
	selfContained(t)
	ctx, ok := browser(t)
	if !ok {
		t.Skip("SKIPPED: the Web UI's browser test needs chromium (Debian package chromium; make test installs it as root)")
	}
	api := fmt.Sprintf("localhost:%d", freePort(t))
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dev := startDev(t, buildHandoff(t), t.TempDir(), []string{
		"HANDOFF_TEMPORAL_ADDRESS=" + temporalAddr,
		"HANDOFF_API_ADDR=" + api,
		"HANDOFF_SANDBOX_ADDR=" + fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"HANDOFF_PAYMENT_POLL_INTERVAL=200ms",
		"HANDOFF_API_TOKENS=" + planted.apiToken,
		"HANDOFF_OPERATOR_TOKENS=" + planted.operatorToken,
	})
	m := webUIBanner.FindStringSubmatch(dev.Output())
	if m == nil {
		t.Fatalf("no Web UI in the banner:\n%s", dev.Output())
	}
	ui, apiURL := m[1], "http://"+api
	o := order("WEBUI-1")
	o.Customer.Email = planted.email
	if status, body := devRequest(t, http.MethodPost, apiURL+"/v1/orders", planted.apiToken, o); status != http.StatusAccepted {
		t.Fatalf("place order: %d %s", status, body)
	}
	awaitDevOrder(t, apiURL, planted.apiToken, "WEBUI-1", action.StatusCompleted)

	// What anyone who can read Temporal sees: no e-mail, no name, no
	// amount with its currency, no confirmation.
	cli, err := temporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	shown, err := exec.Command(cli, "workflow", "show", "-w", action.OrderKey("WEBUI-1").String(), "-o", "json", "--address", temporalAddr).Output()
	if err != nil || !strings.Contains(string(shown), "WorkflowExecutionCompleted") && !strings.Contains(string(shown), "WORKFLOW_EXECUTION_COMPLETED") {
		t.Fatalf("temporal workflow show: %v\n%.300s", err, shown)
	}
	readable := withPayloadsDecoded(string(shown))
	if !strings.Contains(string(shown), base64.StdEncoding.EncodeToString([]byte(codec.EncodingEncrypted))) {
		t.Error("temporal workflow show shows no encrypted payload")
	}
	for _, v := range []string{planted.email, "Ada Lovelace", "hank you", "45.00 eur", `"currency":"eur"`, `"Currency":"eur"`, `"amount":4500`, `"Amount":4500`} {
		if strings.Contains(readable, v) {
			t.Errorf("temporal workflow show prints %q in plain text", v)
		}
	}
	page := ui + "/namespaces/default/workflows/" + strings.ReplaceAll(action.OrderKey("WEBUI-1").String(), "/", "%2F")

	// The UI's own codec settings, as an operator sets them in its Codec
	// Server dialog: handoff's endpoint, with cross-origin credentials.
	settings := fmt.Sprintf(`localStorage.setItem("endpoint", JSON.stringify(%q));
		localStorage.setItem("includeCredentials", "true");
		localStorage.setItem("overrideRemoteCodecConfiguration", "true"); true`, apiURL+"/codec")
	if err := chromedp.Do(ctx, chromedp.Navigate(ui)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](settings)); err != nil {
		t.Fatal(err)
	}
	local, _, _ := strings.Cut(planted.email, "@")
	shows := func(wait time.Duration) bool {
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(time.Second) {
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, local) {
				return true
			}
		}
		return false
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	if shows(8 * time.Second) {
		t.Error("the Web UI shows the order's e-mail before the operator signed in")
	}
	screenshot(t, ctx, "webui-encrypted.png")

	err = chromedp.Do(ctx,
		chromedp.Navigate(apiURL+"/ops/sign-in"),
		chromedp.SendKeys(chromedp.ID("token"), planted.operatorToken),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("providers")),
		chromedp.Navigate(page),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !shows(30 * time.Second) {
		screenshot(t, ctx, "webui-not-decoded.png")
		t.Fatal("the Web UI does not show the decoded order to a signed-in operator")
	}
	screenshot(t, ctx, "webui-decoded.png")
}
