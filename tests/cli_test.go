package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/apiclient"
)

// remoteCLI runs the handoff command as an operator elsewhere would: with
// the API's URL and an operator token, no configuration file, and no way
// to reach Temporal.
type remoteCLI struct {
	bin string
	env []string
}

func newRemoteCLI(t *testing.T, bin, apiURL, token string) *remoteCLI {
	t.Helper()
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANDOFF_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "HOME=") {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, "HOME="+t.TempDir(), "HANDOFF_URL="+checkedProxy(t, apiURL), "HANDOFF_OPERATOR_TOKEN="+token,
		// Nothing is there: the commands must not need Temporal.
		"HANDOFF_TEMPORAL_ADDRESS=127.0.0.1:1")
	return &remoteCLI{bin: bin, env: environ}
}

// run runs the command and returns its standard output and error and its
// exit code.
func (c *remoteCLI) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run handoff %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// checkedProxy is a proxy to the API at target whose exchanges are
// checked against openapi.yaml, as the tests' own are.
func checkedProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	checkOpenAPI(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = apiCheck
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestOperatorCommands drives a parked order out of needs_attention with
// the handoff command through the API, as an operator at a laptop would.
func TestOperatorCommands(t *testing.T) {
	defer clearFaults(t)
	cli := newRemoteCLI(t, buildHandoff(t), env.api.URL, testOperatorToken)
	id := "cli-1"
	parkOnInvoice(t, id)
	wid := action.OrderKey(id).String()

	var listed apiclient.ActionList
	waitFor(t, "the parked order in `handoff actions list --output json`", func() bool {
		out, errOut, code := cli.run(t, "actions", "list", "--provider", "accounting", "--all", "--output", "json")
		if code != 0 {
			t.Fatalf("actions list: exit %d\n%s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatalf("actions list --output json: %v\n%s", err, out)
		}
		for _, a := range listed.Actions {
			if a.WorkflowId == wid && deref(a.Step) == "invoice" && a.Status == "needs_attention" {
				return true
			}
		}
		return false
	})
	if out, _, code := cli.run(t, "actions", "list", "--provider", "accounting", "--all"); code != 0 ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(wid)+`\s+needs_attention\s+invoice\s+`).MatchString(out) {
		t.Errorf("actions list as a table: exit %d\n%s", code, out)
	}
	if _, errOut, code := cli.run(t, "actions", "skip", "order/never-placed"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("skip of an unknown action: exit %d, want 1 with the 404\n%s", code, errOut)
	}
	out, errOut, code := cli.run(t, "actions", "retry", wid, "--reason", "tax id fixed", "-o", "json")
	var answer apiclient.ActionAnswer
	if code != 0 || json.Unmarshal([]byte(out), &answer) != nil || answer.Action != "retry" || deref(answer.Step) != "invoice" {
		t.Fatalf("actions retry: exit %d %+v\n%s%s", code, answer, out, errOut)
	}
	awaitOrder(t, id, action.StatusCompleted)

	out, _, code = cli.run(t, "orders", "show", id, "-o", "json")
	var order apiclient.OrderState
	if code != 0 || json.Unmarshal([]byte(out), &order) != nil || order.Status != "completed" || len(order.Steps) == 0 {
		t.Errorf("orders show: exit %d\n%s", code, out)
	}
	if out, _, code := cli.run(t, "orders", "show", id); code != 0 || !strings.Contains(out, "order "+id+": completed") {
		t.Errorf("orders show as a table: exit %d\n%s", code, out)
	}

	out, _, code = cli.run(t, "providers", "status", "crm", "-o", "json")
	var status apiclient.ProviderStatus
	if code != 0 || json.Unmarshal([]byte(out), &status) != nil || status.System != "crm" || status.Paused {
		t.Errorf("providers status: exit %d\n%s", code, out)
	}
	if _, errOut, code := cli.run(t, "providers", "pause", "fax"); code != 1 || !strings.Contains(errOut, "no such system") {
		t.Errorf("pause of an unknown system: exit %d, want 1\n%s", code, errOut)
	}

	wrong := *cli
	wrong.env = append(slices.Clone(cli.env), "HANDOFF_OPERATOR_TOKEN=not-the-token")
	if _, errOut, code := wrong.run(t, "providers", "status", "crm"); code != 3 {
		t.Errorf("a wrong token: exit %d, want 3\n%s", code, errOut)
	}
	if _, errOut, code := cli.run(t, "providers", "status", "crm", "--url", "http://127.0.0.1:1", "--timeout", "1s"); code != 4 {
		t.Errorf("no API: exit %d, want 4\n%s", code, errOut)
	}
}

// TestCLIConfigurationFile reads the URL and the token from a file, and
// only when others cannot read it.
func TestCLIConfigurationFile(t *testing.T) {
	cli := newRemoteCLI(t, buildHandoff(t), env.api.URL, "")
	var file string
	var environ []string
	for _, kv := range cli.env {
		if v, ok := strings.CutPrefix(kv, "HANDOFF_URL="); ok {
			file = "# development only\nHANDOFF_URL=" + v + "\nHANDOFF_OPERATOR_TOKEN=" + testOperatorToken + "\n"
		} else if !strings.HasPrefix(kv, "HANDOFF_OPERATOR_TOKEN=") {
			environ = append(environ, kv)
		}
	}
	path := filepath.Join(t.TempDir(), "handoff.env")
	if err := os.WriteFile(path, []byte(file), 0o640); err != nil {
		t.Fatal(err)
	}
	cli.env = append(environ, "HANDOFF_CONFIG="+path)
	if _, errOut, code := cli.run(t, "providers", "status", "mail"); code != 2 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("a file others may read: exit %d, want 2 with chmod 600\n%s", code, errOut)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := cli.run(t, "providers", "status", "mail"); code != 0 || !strings.Contains(out, "mail") {
		t.Errorf("with the file: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(strings.Join(cli.env, " "), testOperatorToken) {
		t.Error("the token came from the environment, not the file")
	}
}

// TestReconcileCommand runs a reconciliation from the command line through
// the API: its progress while it runs, then its report; and with --no-wait,
// its id alone.
func TestReconcileCommand(t *testing.T) {
	selfContained(t)
	e := newIsolatedEnv(t, "reconcile-cli")
	e.send(t, http.MethodPost, "/_sandbox/seed", `{"prefix":"cli","orders":45,"amount":1200}`)
	// The first page of invoices answers late, so that the progress after
	// the charges is there to be seen.
	e.send(t, http.MethodPost, "/_sandbox/faults", `{"system":"accounting","operation":"list_invoices","mode":"latency","latency_ms":2000,"count":1}`)
	srv, err := api.New(api.Options{Orders: e.control, Events: e.control, Operators: e.control, Reconciliations: e.control,
		APITokens: []string{testToken}, OperatorTokens: []string{testOperatorToken}, Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(srv)
	t.Cleanup(apiSrv.Close)
	cli := newRemoteCLI(t, buildHandoff(t), apiSrv.URL, testOperatorToken)

	out, errOut, code := cli.run(t, "reconcile", "--interval", "100ms", "-o", "json")
	var report apiclient.ReconcileReport
	if code != 0 || json.Unmarshal([]byte(out), &report) != nil {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errOut)
	}
	if report.Compared.Charges != 45 || report.Compared.Invoices != 45 || report.Repaired != 0 || report.Flagged != 0 {
		t.Errorf("report: compared %+v, repaired %d, flagged %d; want 45 charges and invoices, nothing to do", report.Compared, report.Repaired, report.Flagged)
	}
	progress := regexp.MustCompile(`reconciliation ` + regexp.QuoteMeta(report.Id) + `: running, phase (charges|invoices): (\d+) pages, (\d+) records compared`)
	if !progress.MatchString(errOut) {
		t.Errorf("no progress shown while it ran:\n%s", errOut)
	}

	out, errOut, code = cli.run(t, "reconcile", "--no-wait")
	id := strings.TrimSpace(out)
	if code != 0 || !regexp.MustCompile(`^reconcile-\S+\n$`).MatchString(out) {
		t.Fatalf("reconcile --no-wait: exit %d, want the id alone\n%q%s", code, out, errOut)
	}
	out, errOut, code = cli.run(t, "reconcile", "show", id, "--wait", "--interval", "100ms")
	if code != 0 || !strings.Contains(out, "reconciliation "+id+": finished") || !strings.Contains(out, "45 charges, 45 invoices") {
		t.Errorf("reconcile show --wait: exit %d\n%s%s", code, out, errOut)
	}
	waitFor(t, "reconcile show latest to show "+id, func() bool {
		out, _, code = cli.run(t, "reconcile", "show", "latest", "-o", "json")
		return code == 0 && strings.Contains(out, `"id": "`+id+`"`)
	})
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
