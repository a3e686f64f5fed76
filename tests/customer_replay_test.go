package tests

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// TestRecordCustomerHistories runs the customer's recorded paths afresh —
// a change propagated, a conflict written back, an ambiguous match an
// operator resolved, a continue-as-new — replays each history against the
// current code, and with -update stores it in testdata.
func TestRecordCustomerHistories(t *testing.T) {
	dir := t.TempDir()
	if *update {
		dir = historiesDir
	}
	replay := func(t *testing.T, path string) {
		t.Helper()
		if err := worker.ReplayFilesWith(slog.New(slog.DiscardHandler), testEncryption(), path); err != nil {
			t.Errorf("replay fresh history: %v", err)
		}
	}
	unique := func(name string) string { return fmt.Sprintf("history-%s-%d", name, time.Now().UnixNano()) }

	t.Run("customer_propagated.json", func(t *testing.T) {
		id := unique("propagated")
		putCustomer(t, id, map[string]any{"version": 1, "email": id + "@example.com", "name": "Ada", "billing_address": "1 Way"})
		v := awaitCustomer(t, id, "synced", synced)
		editRecord(t, "crm", v.Systems["crm"].RecordID, map[string]string{"name": "Ada Lovelace"})
		awaitCustomer(t, id, "the name in accounting", func(v workflows.CustomerView) bool {
			return synced(v) && v.Fields["name"].Systems["accounting"].Value == "Ada Lovelace"
		})
		path := filepath.Join(dir, "customer_propagated.json")
		writeHistory(t, action.CustomerKey(id).String(), path)
		replay(t, path)
	})
	t.Run("customer_conflict.json", func(t *testing.T) {
		id := unique("conflict")
		putCustomer(t, id, map[string]any{"version": 1, "email": id + "@example.com", "name": "Ada"})
		v := awaitCustomer(t, id, "synced", synced)
		editRecord(t, "crm", v.Systems["crm"].RecordID, map[string]string{"email": "new-" + id + "@example.com"})
		editRecord(t, "accounting", v.Systems["accounting"].RecordID, map[string]string{"email": "other-" + id + "@example.com"})
		awaitCustomer(t, id, "the CRM's e-mail in accounting", func(v workflows.CustomerView) bool {
			return synced(v) && v.Fields["email"].Systems["accounting"].Value == "new-"+id+"@example.com" && len(v.Conflicts) > 0
		})
		path := filepath.Join(dir, "customer_conflict.json")
		writeHistory(t, action.CustomerKey(id).String(), path)
		replay(t, path)
	})
	t.Run("customer_ambiguous_match.json", func(t *testing.T) {
		id := unique("ambiguous")
		var contacts []string
		for range 2 {
			_, _, raw := providerCall(t, http.MethodPost, "/_sandbox/records/crm/contacts", map[string]string{"email": id + "@example.com", "name": "Ada"})
			var p map[string]any
			_ = decodeJSON(raw, &p)
			contacts = append(contacts, fmt.Sprint(p["id"]))
		}
		putCustomer(t, id, map[string]any{"version": 1, "email": id + "@example.com", "name": "Ada"})
		awaitCustomer(t, id, "parked", func(v workflows.CustomerView) bool { return v.Status == action.StatusNeedsAttention })
		if status, _, raw := call(t, http.MethodPost, "/v1/actions/customer/"+id+"/retry", map[string]string{"record": contacts[0]}, testOperatorToken); status != http.StatusOK {
			t.Fatalf("pick: %d %s", status, raw)
		}
		awaitCustomer(t, id, "synced", synced)
		path := filepath.Join(dir, "customer_ambiguous_match.json")
		writeHistory(t, action.CustomerKey(id).String(), path)
		replay(t, path)
	})
	t.Run("customer_continued_as_new.json", func(t *testing.T) {
		id := unique("continued")
		rules, systems := workflows.CustomerRulesFrom(testConfig().Contracts())
		wid := action.CustomerKey(id).String()
		change := action.CustomerChange{Source: action.SourceApplication, Version: 1, Fields: map[string]string{"email": id + "@example.com", "name": "Ada"}}
		run, err := env.client.SignalWithStartWorkflow(context.Background(), wid, workflows.SignalCustomerChange, change,
			client.StartWorkflowOptions{ID: wid, TaskQueue: workflows.TaskQueue},
			workflows.CustomerWorkflow, workflows.CustomerInput{CustomerID: id, Rules: rules, Systems: systems, HistoryLimit: 30})
		if err != nil {
			t.Fatal(err)
		}
		v := awaitCustomer(t, id, "synced in its next run", synced)
		// A change after the continue-as-new reaches the next run.
		editRecord(t, "crm", v.Systems["crm"].RecordID, map[string]string{"name": "Ada Lovelace"})
		awaitCustomer(t, id, "the name in accounting", func(v workflows.CustomerView) bool {
			return synced(v) && v.Fields["name"].Systems["accounting"].Value == "Ada Lovelace"
		})
		desc, err := env.client.DescribeWorkflow(context.Background(), wid, "")
		if err != nil || desc.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId() == run.GetRunID() {
			t.Fatalf("the customer did not continue as new: %v", err)
		}
		path := filepath.Join(dir, "customer_continued_as_new.json")
		writeRunHistoryFrom(t, env.client, wid, run.GetRunID(), path)
		replay(t, path)
	})
}
