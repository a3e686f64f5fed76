package tests

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/action"
)

// handoffCLI runs the handoff binary against the test server.
func handoffCLI(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HANDOFF_TEMPORAL_ADDRESS="+env.server.FrontendHostPort(), "HANDOFF_PAYLOAD_KEYS="+testPayloadKey)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOperatorCommands drives a parked order out of needs_attention with
// the handoff command, as an operator at a terminal would.
func TestOperatorCommands(t *testing.T) {
	defer clearFaults(t)
	bin := buildHandoff(t)
	id := "cli-1"
	parkOnInvoice(t, id)
	wid := action.OrderKey(id).String()

	waitFor(t, "the parked order in `handoff actions list`", func() bool {
		out, err := handoffCLI(t, bin, "actions", "list", "--provider", "accounting", "--all")
		return err == nil && strings.Contains(out, wid) && strings.Contains(out, "invoice")
	})
	if out, err := handoffCLI(t, bin, "actions", "skip", "order/never-placed"); err == nil {
		t.Errorf("skip of an unknown action succeeded: %s", out)
	}
	out, err := handoffCLI(t, bin, "actions", "retry", wid, "--reason", "tax id fixed")
	if err != nil {
		t.Fatalf("actions retry: %v\n%s", err, out)
	}
	awaitOrder(t, id, action.StatusCompleted)

	out, err = handoffCLI(t, bin, "providers", "status", "crm")
	if err != nil || !strings.Contains(out, `"system": "crm"`) || !strings.Contains(out, `"paused": false`) {
		t.Errorf("providers status: %v\n%s", err, out)
	}
	if out, err := handoffCLI(t, bin, "providers", "pause", "fax"); err == nil {
		t.Errorf("pause of an unknown system succeeded: %s", out)
	}
}
