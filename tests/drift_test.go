package tests

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/apiclient"
	"github.com/handoff-hq/handoff/contracts"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/workflows"
)

// driftLines keeps the shared workers' log lines about contract drift.
type driftLines struct {
	mu    sync.Mutex
	lines []map[string]string
}

func (h *driftLines) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *driftLines) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "provider answer differs from its contract" {
		return nil
	}
	line := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { line[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, line)
	return nil
}

func (h *driftLines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *driftLines) WithGroup(string) slog.Handler      { return h }

// count is how many lines were logged of the system's operation and kind.
func (h *driftLines) count(system, operation, kind string) (int, map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, last := 0, map[string]string(nil)
	for _, l := range h.lines {
		if l["system"] == system && l["operation"] == operation && l["kind"] == kind {
			n, last = n+1, l
		}
	}
	return n, last
}

// The sandbox changes the shape of its answers, one kind of drift each, on
// the calls of two orders: both complete with one contact, charge, invoice
// and e-mail — where the data a step needs is intact it goes on, and the
// invoice whose id is missing is looked up and adopted on the next
// attempt; every kind is counted, logged once with an example that shows
// no personal data, kept in Temporal and listed by `handoff contracts
// drift`, whose --clear forgets one system's.
func TestContractDrift(t *testing.T) {
	defer clearFaults(t)
	type change struct {
		order, system, operation, shape, field, value string
	}
	changes := []change{
		{"drift-1", "payments", "create_charge", contracts.DriftAPIVersion, "", "2"},
		{"drift-1", "crm", "upsert_contact", contracts.DriftWrongType, "version", ""},
		{"drift-1", "accounting", "create_invoice", contracts.DriftMissingField, "id", ""},
		{"drift-1", "mail", "send_message", contracts.DriftWrongFormat, "to", ""},
		{"drift-2", "payments", "create_charge", contracts.DriftUnknownField, "risk_score", ""},
		{"drift-2", "accounting", "create_invoice", contracts.DriftUnknownValue, "status", "draft"},
	}
	for _, c := range changes {
		addFault(t, sandbox.Fault{System: c.system, Operation: c.operation, KeyPrefix: action.OrderKey(c.order).String() + "/", Mode: sandbox.FaultShape,
			Shape: c.shape, Field: c.field, Value: c.value, Count: 1})
	}
	placeOrders(t, "drift-1", "drift-2")
	for _, id := range []string{"drift-1", "drift-2"} {
		if state := awaitOrder(t, id, action.StatusCompleted, action.StatusNeedsAttention); state.Status != action.StatusCompleted {
			t.Errorf("order %s = %s, want completed: %+v", id, state.Status, state.Steps)
			continue
		}
		assertExactlyOnce(t, id)
	}
	if state := awaitOrder(t, "drift-1", action.StatusCompleted); state.Steps[3].Attempts != 2 {
		t.Errorf("drift-1's invoice took %d attempts, want 2 (the answer without an id, then the adoption)", state.Steps[3].Attempts)
	}

	for _, c := range changes {
		if got := driftTotal(t, c.system, c.operation, c.shape); got < 1 {
			t.Errorf("handoff_contract_drift_total{system=%q,operation=%q,kind=%q} = %v, want at least 1", c.system, c.operation, c.shape, got)
		}
		n, line := env.drifts.count(c.system, c.operation, c.shape)
		if n != 1 {
			t.Errorf("%s %s %s logged %d times, want once", c.system, c.operation, c.shape, n)
			continue
		}
		if line["example"] == "" || strings.Contains(line["example"], "@") || strings.Contains(line["example"], "Ada") {
			t.Errorf("%s %s %s logged example %q: want one without personal data", c.system, c.operation, c.shape, line["example"])
		}
	}

	cli := newRemoteCLI(t, buildHandoff(t), env.api.URL, testOperatorToken)
	var listed apiclient.ContractDrift
	waitFor(t, "every kind of drift in `handoff contracts drift`", func() bool {
		out, errOut, code := cli.run(t, "contracts", "drift", "-o", "json")
		if code != 0 {
			t.Fatalf("contracts drift: exit %d\n%s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatalf("contracts drift -o json: %v\n%s", err, out)
		}
		for _, c := range changes {
			if findDrift(listed, c.system, c.operation, c.shape) == nil {
				return false
			}
		}
		return true
	})
	for _, c := range changes {
		d := findDrift(listed, c.system, c.operation, c.shape)
		if d.Count < 1 || d.FirstSeen.After(d.LastSeen) || d.Example == "" {
			t.Errorf("listed %+v: want a count, first seen before last seen, an example", *d)
		}
	}
	if d := findDrift(listed, "accounting", "create_invoice", contracts.DriftUnknownValue); d.Field != "status" || d.Example != "draft" {
		t.Errorf("unknown value listed as %s = %q, want status = draft", d.Field, d.Example)
	}
	out, _, code := cli.run(t, "contracts", "drift")
	t.Logf("handoff contracts drift:\n%s", out)
	if code != 0 || !strings.Contains(out, "FIRST SEEN") || !strings.Contains(out, "risk_score") {
		t.Errorf("contracts drift as a table: exit %d\n%s", code, out)
	}

	out, errOut, code := cli.run(t, "contracts", "drift", "--clear", "payments", "--reason", "contract reviewed", "-o", "json")
	if code != 0 {
		t.Fatalf("contracts drift --clear payments: exit %d\n%s", code, errOut)
	}
	var left apiclient.ContractDrift
	if err := json.Unmarshal([]byte(out), &left); err != nil {
		t.Fatal(err)
	}
	for _, d := range left.Drift {
		if d.System == "payments" {
			t.Errorf("payments' drift is still listed after --clear payments: %+v", d)
		}
	}
	if findDrift(left, "accounting", "create_invoice", contracts.DriftUnknownValue) == nil {
		t.Errorf("--clear payments forgot another system's drift: %+v", left.Drift)
	}
	if _, _, code := cli.run(t, "contracts", "drift", "--clear", "fax"); code != 1 {
		t.Errorf("--clear of an unknown system: exit %d, want 1", code)
	}
	recordHistory(t, env.client, workflows.ContractDriftID, "contract_drift.json")
}

func findDrift(list apiclient.ContractDrift, system, operation, kind string) *apiclient.DriftSighting {
	for i, d := range list.Drift {
		if d.System == system && d.Operation == operation && string(d.Kind) == kind {
			return &list.Drift[i]
		}
	}
	return nil
}

// driftTotal reads handoff_contract_drift_total of the shared workers.
func driftTotal(t *testing.T, system, operation, kind string) float64 {
	t.Helper()
	return counterValue(t, env.calls, "handoff_contract_drift_total", map[string]string{"system": system, "operation": operation, "kind": kind})
}
