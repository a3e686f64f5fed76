package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/api"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/tests/shipping"
	"github.com/handoff-hq/handoff/worker"
	"github.com/handoff-hq/handoff/workflows"
)

// TestASystemAndAnActionDeclaredOutsideTheCoreRunEndToEnd runs the
// shipping system and its "ship a parcel" action, both declared in
// tests/shipping (a provider package, its contract and its registration),
// on the dev server: a shipment parks when the carrier refuses its label,
// an operator finds it through the API and retries it, and a lost pickup
// is repaired by reconciliation — with the core's workflows, activities,
// API and workers as they are.
func TestASystemAndAnActionDeclaredOutsideTheCoreRunEndToEnd(t *testing.T) {
	const namespace = "extension"
	ctx := context.Background()
	c := namespaceClient(t, namespace)
	carrier := shipping.NewCarrier()
	carrierSrv := httptest.NewServer(carrier)
	defer carrierSrv.Close()
	sandboxSrv := httptest.NewServer(sandbox.NewServer(sandbox.Options{SettleDelay: 10 * time.Millisecond}))
	defer sandboxSrv.Close()

	cfg := providerConfig(sandboxSrv.URL)
	cfg.SetProvider(shipping.System.Name, config.Provider{Provider: "carrier", URL: carrierSrv.URL,
		ConnectTimeout: 2 * time.Second, Timeout: 5 * time.Second, RateLimit: 1000, Concurrency: 10})
	acts, err := worker.NewActivities(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := worker.Clients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ship := &shipping.Activities{Carrier: clients[shipping.System.Name].(*shipping.Client)}
	acts.Phases = append(acts.Phases, activities.Phase{Name: "parcels", Compare: ship.ComparePage})
	ws, err := worker.New(c, acts, cfg, worker.Registration{
		Workflows:  []any{shipping.ShipmentWorkflow},
		Activities: map[string][]any{shipping.System.Name: {ship}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ws.Stop()
	st, err := control.New(c, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Hour, Namespace: namespace,
		Reconcile: workflows.ReconcileInput{PageSize: 20, Phases: activities.PhaseNames(acts)}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Orders: st, Events: st, Operators: st, Reconciliations: st,
		APITokens: []string{testToken}, OperatorTokens: []string{testOperatorToken}, Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(srv)
	defer apiSrv.Close()
	checkOpenAPI(apiSrv.URL)
	operator := func(method, path string, body any) (int, []byte) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, apiSrv.URL+path, strings.NewReader(string(raw)))
		req.Header.Set("Authorization", "Bearer "+testOperatorToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	ship1 := func(id string) workflows.OrderResult {
		t.Helper()
		key := action.Key{Kind: shipping.KindShipment, ID: id}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: key.String(), TaskQueue: workflows.TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.SearchStatus.ValueSet(string(action.StatusProcessing)), workflows.SearchBusinessKey.ValueSet(id)),
		}, shipping.ShipmentWorkflow, shipping.ShipmentInput{ShipmentID: id, Address: "1 Main St", CorrelationID: "shipping-test"})
		if err != nil {
			t.Fatal(err)
		}
		if id == "S-1" {
			// The carrier refused the label: the shipment waits for an
			// operator, who finds it among the parked actions and retries.
			var listed bool
			waitFor(t, "the parked shipment in GET /v1/actions", func() bool {
				status, body := operator(http.MethodGet, "/v1/actions?status=needs_attention&provider=shipping", nil)
				listed = status == http.StatusOK && strings.Contains(string(body), key.String()) && strings.Contains(string(body), "422")
				return listed
			})
			if status, body := operator(http.MethodPost, "/v1/actions/"+key.String()+"/retry", map[string]string{"reason": "address corrected at the carrier"}); status != http.StatusOK {
				t.Fatalf("retry: %d %s", status, body)
			}
		}
		var result workflows.OrderResult
		if err := run.Get(ctx, &result); err != nil {
			t.Fatalf("shipment %s: %v", id, err)
		}
		return result
	}

	carrier.RejectLabels(1)
	parked := ship1("S-1")
	label := parked.State.Steps[0]
	if parked.State.Status != action.StatusCompleted || label.Attempts != 2 || label.Resolution == nil || label.Resolution.Action != workflows.UpdateRetry {
		t.Errorf("shipment S-1 = %+v, want completed after an operator's retry of its label", parked.State)
	}
	s1 := action.Key{Kind: shipping.KindShipment, ID: "S-1"}
	if labels, pickups := carrier.Counts(s1.Step(shipping.StepLabel).String(), s1.Step(shipping.StepPickup).String()); labels != 1 || pickups != 1 {
		t.Errorf("S-1 at the carrier: %d labels, %d pickups; want one of each", labels, pickups)
	}

	// A pickup lost behind handoff's back is repaired, once.
	ship1("S-2")
	s2 := action.Key{Kind: shipping.KindShipment, ID: "S-2"}
	carrier.DeletePickups(s2.Step(shipping.StepPickup).String())
	report := reconcileWith(t, st)
	if report.Differences[shipping.DiffPickupMissing] != 1 || report.Repaired != 1 || report.Compared.Records["labels"] != 2 {
		raw, _ := json.Marshal(report)
		t.Errorf("reconciliation = %s, want the one missing pickup found among 2 labels and repaired", raw)
	}
	if _, pickups := carrier.Counts(s2.Step(shipping.StepLabel).String(), s2.Step(shipping.StepPickup).String()); pickups != 1 {
		t.Errorf("S-2 has %d pickups after the repair, want 1", pickups)
	}
	if again := reconcileWith(t, st); again.Repaired != 0 || again.Flagged != 0 {
		t.Errorf("second reconciliation repaired %d and flagged %d, want nothing", again.Repaired, again.Flagged)
	}
	desc, err := c.DescribeWorkflow(ctx, s2.String(), "")
	if err != nil || desc.RawResponse.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("shipment S-2: %v, want completed", err)
	}
}

// reconcileWith runs one reconciliation through the control and returns
// its report.
func reconcileWith(t *testing.T, st *control.Client) workflows.ReconcileReport {
	t.Helper()
	ctx := context.Background()
	id, err := st.StartReconciliation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var report workflows.ReconcileReport
	waitFor(t, "reconciliation "+id, func() bool {
		report, err = st.Reconciliation(ctx, id)
		return err == nil
	})
	return report
}
