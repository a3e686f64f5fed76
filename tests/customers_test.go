package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/codec"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/providers/sandbox"
	"github.com/handoff-hq/handoff/workflows"
)

// putCustomer sends the application's change of a customer.
func putCustomer(t *testing.T, id string, body map[string]any) (int, http.Header, []byte) {
	t.Helper()
	return call(t, http.MethodPut, "/v1/customers/"+id, body, testToken)
}

// readCustomer reads a customer through the API.
func readCustomer(t *testing.T, id string) workflows.CustomerView {
	t.Helper()
	status, _, body := call(t, http.MethodGet, "/v1/customers/"+id, nil, testToken)
	if status != http.StatusOK {
		t.Fatalf("GET customer %s: %d %s", id, status, body)
	}
	var v workflows.CustomerView
	if err := decodeJSON(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// awaitCustomer waits until the customer's view satisfies ok.
func awaitCustomer(t *testing.T, id string, what string, ok func(workflows.CustomerView) bool) workflows.CustomerView {
	t.Helper()
	var v workflows.CustomerView
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if v = readCustomer(t, id); ok(v) {
			return v
		}
	}
	var deliveries []sandbox.Delivery
	for _, d := range env.sandbox.Deliveries() {
		if d.Ref == "customer/"+id {
			deliveries = append(deliveries, d)
		}
	}
	t.Fatalf("customer %s: %s did not happen; last seen %+v; its events: %+v", id, what, v, deliveries)
	return v
}

func synced(v workflows.CustomerView) bool {
	return v.Status == action.StatusSynced && v.Systems["crm"].RecordID != "" && v.Systems["accounting"].RecordID != ""
}

// editRecord changes a customer record as a person would, in the
// provider's own screens (which sends its event).
func editRecord(t *testing.T, system, id string, fields map[string]string) {
	t.Helper()
	kind := map[string]string{"crm": "contacts", "accounting": "customers"}[system]
	status, _, body := providerCall(t, http.MethodPatch, "/_sandbox/records/"+system+"/"+kind+"/"+id, fields)
	if status != http.StatusOK {
		t.Fatalf("edit %s %s: %d %s", system, id, status, body)
	}
}

func providerCall(t *testing.T, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	status, h, b, err := sendTo(env.provider.URL, method, path, body, "")
	if err != nil {
		t.Fatal(err)
	}
	return status, h, b
}

func record(t *testing.T, system, id string) map[string]any {
	t.Helper()
	p, ok := env.sandbox.Party(system, id)
	if !ok {
		t.Fatalf("no %s record %s", system, id)
	}
	return p
}

func TestPutCustomerMakesItEverywhereAndAnswersReplaysAndOlderVersions(t *testing.T) {
	id := fmt.Sprintf("put-%d", time.Now().UnixNano())
	body := map[string]any{"version": 1, "email": "Ada@Example.com", "name": "Ada", "billing_address": "1 Analytical Way"}
	status, _, raw := putCustomer(t, id, body)
	if status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	v := awaitCustomer(t, id, "synced", synced)
	crm, acc := record(t, "crm", v.Systems["crm"].RecordID), record(t, "accounting", v.Systems["accounting"].RecordID)
	if crm["email"] != "Ada@Example.com" || crm["external_ref"] != "customer/"+id || acc["billing_address"] != "1 Analytical Way" {
		t.Errorf("records: crm %v, accounting %v", crm, acc)
	}
	if f := v.Fields["email"]; f.Owner != "crm" || f.Systems["accounting"].Value != "Ada@Example.com" {
		t.Errorf("email field: %+v", f)
	}
	status, h, _ := putCustomer(t, id, body)
	if status != http.StatusOK || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same PUT again: %d, replayed %q", status, h.Get("Idempotent-Replayed"))
	}
	body["name"] = "Ada B."
	if status, _, raw := putCustomer(t, id, body); status != http.StatusConflict {
		t.Errorf("version 1 again with other values: %d %s, want 409", status, raw)
	}
	body["version"] = 2
	if status, _, raw := putCustomer(t, id, body); status != http.StatusOK {
		t.Fatalf("version 2: %d %s", status, raw)
	}
	body["version"] = 1
	if status, _, raw := putCustomer(t, id, body); status != http.StatusConflict {
		t.Errorf("a lower version: %d %s, want 409", status, raw)
	}
	// The application does not own the name: its change is recorded, not
	// propagated.
	v = awaitCustomer(t, id, "the application's name change recorded", func(v workflows.CustomerView) bool {
		return v.Version == 2 && len(v.Conflicts) > 0
	})
	if c := v.Conflicts[len(v.Conflicts)-1]; c.Field != "name" || c.Source != "application" || c.Resolution != workflows.ResolutionNotPropagated {
		t.Errorf("conflict: %+v", c)
	}
	if crm := record(t, "crm", v.Systems["crm"].RecordID); crm["name"] != "Ada" {
		t.Errorf("the CRM's name was changed by the application: %v", crm["name"])
	}
	for _, bad := range []map[string]any{
		{"email": "x@example.com"},
		{"version": 3, "email": "not an address"},
		{"version": 3, "favourite_colour": "green"},
		{"version": "3", "name": "x"},
	} {
		if status, _, raw := putCustomer(t, id, bad); status != http.StatusBadRequest {
			t.Errorf("PUT %v: %d %s, want 400", bad, status, raw)
		}
	}
}

// The article's case, through the sandbox's webhooks (each delivered
// twice): the e-mail changed in the CRM and, within the same second, to
// another address in accounting.
func TestTheCRMsEmailWinsOverAccountingsWithinTheSameSecond(t *testing.T) {
	id := fmt.Sprintf("article-%d", time.Now().UnixNano())
	if status, _, raw := putCustomer(t, id, map[string]any{"version": 1, "email": "ada@example.com", "name": "Ada"}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	v := awaitCustomer(t, id, "synced", synced)
	t.Cleanup(func() { clearFaults(t) })
	for _, sys := range []string{"crm", "accounting"} {
		addFault(t, sandbox.Fault{System: sys, Operation: "deliver_webhook", KeyPrefix: "customer/" + id, Mode: sandbox.FaultDuplicateWebhooks})
	}
	crmWrites, accWrites := env.sandbox.APIWrites("crm"), env.sandbox.APIWrites("accounting")
	editRecord(t, "crm", v.Systems["crm"].RecordID, map[string]string{"email": "ada@lovelace.example"})
	editRecord(t, "accounting", v.Systems["accounting"].RecordID, map[string]string{"email": "someone@else.example"})
	v = awaitCustomer(t, id, "the CRM's e-mail everywhere", func(v workflows.CustomerView) bool {
		return v.Status == action.StatusSynced && v.Fields["email"].Value == "ada@lovelace.example" &&
			v.Fields["email"].Systems["accounting"].Value == "ada@lovelace.example"
	})
	if acc := record(t, "accounting", v.Systems["accounting"].RecordID); acc["email"] != "ada@lovelace.example" {
		t.Errorf("accounting's e-mail: %v", acc["email"])
	}
	time.Sleep(time.Second) // the duplicates and the writes' own events come back
	// One write when the CRM's event comes first (its address, over
	// accounting's); two when accounting's comes first, as the two events
	// race on a loaded machine: accounting's change is written back with
	// the address handoff knows then, and the CRM's new one follows.
	if n := env.sandbox.APIWrites("accounting") - accWrites; n < 1 || n > 2 {
		t.Errorf("writes to accounting: %d, want 1, or 2 when accounting's event came first", n)
	}
	if n := env.sandbox.APIWrites("crm") - crmWrites; n != 0 {
		t.Errorf("writes to the CRM: %d, want 0", n)
	}
	v = readCustomer(t, id)
	var reverted int
	for _, c := range v.Conflicts {
		if c.Field == "email" && c.Source == "accounting" && c.Value == "someone@else.example" && c.Resolution == workflows.ResolutionWrittenBack {
			reverted++
		}
	}
	if reverted != 1 || v.Ignored == 0 {
		t.Errorf("conflicts %+v, ignored changes %d; want accounting's change recorded once and the duplicates ignored", v.Conflicts, v.Ignored)
	}
}

// Two CRM contacts with the customer's e-mail address: the customer parks
// as ambiguous_match, is listed for operators, and an operator's choice
// completes it.
func TestAnAmbiguousMatchWaitsForAnOperatorsChoice(t *testing.T) {
	id := fmt.Sprintf("twins-%d", time.Now().UnixNano())
	email := id + "@example.com"
	var contacts []string
	for _, name := range []string{"Ada (sales)", "Ada (support)"} {
		status, _, raw := providerCall(t, http.MethodPost, "/_sandbox/records/crm/contacts", map[string]string{"email": email, "name": name})
		var p map[string]any
		if status != http.StatusCreated || decodeJSON(raw, &p) != nil {
			t.Fatalf("make contact: %d %s", status, raw)
		}
		contacts = append(contacts, p["id"].(string))
	}
	if status, _, raw := putCustomer(t, id, map[string]any{"version": 1, "email": email, "name": "Ada"}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	awaitCustomer(t, id, "parked", func(v workflows.CustomerView) bool { return v.Status == action.StatusNeedsAttention })
	wid := "customer/" + id
	var listed bool
	for deadline := time.Now().Add(30 * time.Second); !listed && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, _, raw := call(t, http.MethodGet, "/v1/actions?status=needs_attention&step=match_crm", nil, testOperatorToken)
		var list struct {
			Actions []struct {
				WorkflowID    string `json:"workflow_id"`
				ErrorCategory string `json:"error_category"`
				Provider      string `json:"provider"`
				Reason        string `json:"reason"`
			} `json:"actions"`
		}
		_ = decodeJSON(raw, &list)
		for _, a := range list.Actions {
			if a.WorkflowID == wid {
				listed = true
				if a.ErrorCategory != string(action.CategoryAmbiguousMatch) || a.Provider != "crm" {
					t.Errorf("listed as %+v", a)
				}
			}
		}
	}
	if !listed {
		t.Fatalf("%s is not listed as needing attention", wid)
	}
	if status, _, raw := call(t, http.MethodPost, "/v1/actions/"+wid+"/retry", map[string]string{"record": "ct_nobody"}, testOperatorToken); status != http.StatusConflict {
		t.Errorf("a record that is no candidate: %d %s, want 409", status, raw)
	}
	if status, _, raw := call(t, http.MethodPost, "/v1/actions/"+wid+"/retry", map[string]string{"record": contacts[1], "reason": "support's contact"}, testOperatorToken); status != http.StatusOK {
		t.Fatalf("pick: %d %s", status, raw)
	}
	v := awaitCustomer(t, id, "synced after the pick", synced)
	if v.Systems["crm"].RecordID != contacts[1] || v.Systems["crm"].MatchedBy != "operator" {
		t.Errorf("crm record: %+v", v.Systems["crm"])
	}
	if c := record(t, "crm", contacts[1]); c["external_ref"] != wid || c["name"] != "Ada (support)" {
		t.Errorf("picked contact: %v", c)
	}
	if c := record(t, "crm", contacts[0]); c["external_ref"] != "" {
		t.Errorf("the other contact was linked: %v", c)
	}
}

// Over many customers with edits on both sides, every webhook delivered
// twice and some held back so that later ones overtake them: every field
// ends at its owner's latest value in every system, and handoff writes
// once per effective change, never in a loop.
func TestManyCustomersEndAtTheirOwnersValuesWithoutEchoes(t *testing.T) {
	besideSelfContained(t)
	run := fmt.Sprintf("many-%d", time.Now().UnixNano())
	const customers = 100
	t.Cleanup(func() { clearFaults(t) })
	for _, sys := range []string{"crm", "accounting"} {
		addFault(t, sandbox.Fault{System: sys, Operation: "deliver_webhook", KeyPrefix: "customer/" + run, Mode: sandbox.FaultDuplicateWebhooks})
	}
	ids := make([]string, customers)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", run, i)
		if status, _, raw := putCustomer(t, ids[i], map[string]any{"version": 1, "email": ids[i] + "@example.com", "name": "Customer " + ids[i]}); status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", ids[i], status, raw)
		}
	}
	views := make([]workflows.CustomerView, customers)
	for i, id := range ids {
		views[i] = awaitCustomer(t, id, "synced", synced)
	}
	before := env.sandbox.APIWrites("crm") + env.sandbox.APIWrites("accounting")
	want := make([]map[string]string, customers)
	var wg sync.WaitGroup
	// Customers are edited a few at a time, as people do, not all at once.
	busy := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			busy <- struct{}{}
			defer func() { <-busy }()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			crmID, accID := views[i].Systems["crm"].RecordID, views[i].Systems["accounting"].RecordID
			settle := func(what string, ok func(workflows.CustomerView) bool) {
				awaitCustomer(t, id, what, func(v workflows.CustomerView) bool { return v.Status == action.StatusSynced && ok(v) })
			}
			// 1. The CRM (owner) changes the name and phone: accounting
			// keeps the name, so one write.
			name := fmt.Sprintf("Name %d", rng.IntN(1000))
			editRecord(t, "crm", crmID, map[string]string{"name": name, "phone": fmt.Sprint(rng.IntN(1e6))})
			settle("name", func(v workflows.CustomerView) bool { return v.Fields["name"].Systems["accounting"].Value == name })
			// 2. Accounting changes its billing address (its own) and the
			// e-mail (the CRM's): the address goes to the CRM and the
			// e-mail is written back, one write each.
			addr := fmt.Sprintf("%d Ledger Lane", rng.IntN(1000))
			editRecord(t, "accounting", accID, map[string]string{"billing_address": addr, "email": "stray-" + id + "@example.com"})
			settle("address", func(v workflows.CustomerView) bool {
				return v.Fields["billing_address"].Systems["crm"].Value == addr && v.Fields["email"].Systems["accounting"].Value == id+"@example.com"
			})
			// 3. The CRM changes the e-mail twice in a row, its first event
			// held back so that the second overtakes it: one write.
			addFault(t, sandbox.Fault{System: "crm", Operation: "deliver_webhook", KeyPrefix: "customer/" + id, Mode: sandbox.FaultReorderWebhooks, Count: 1, LatencyMS: 700})
			editRecord(t, "crm", crmID, map[string]string{"email": "first-" + id + "@example.com"})
			email := "final-" + id + "@example.com"
			editRecord(t, "crm", crmID, map[string]string{"email": email})
			settle("e-mail", func(v workflows.CustomerView) bool { return v.Fields["email"].Systems["accounting"].Value == email })
			want[i] = map[string]string{"name": name, "billing_address": addr, "email": email}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	time.Sleep(2 * time.Second) // late duplicates and held-back events arrive
	for i, id := range ids {
		v := readCustomer(t, id)
		crm, acc := record(t, "crm", v.Systems["crm"].RecordID), record(t, "accounting", v.Systems["accounting"].RecordID)
		for f, val := range want[i] {
			if crm[f] != val {
				t.Errorf("%s: crm %s = %v, want %q", id, f, crm[f], val)
			}
			if acc[f] != val {
				t.Errorf("%s: accounting %s = %v, want %q", id, f, acc[f], val)
			}
		}
	}
	writes := env.sandbox.APIWrites("crm") + env.sandbox.APIWrites("accounting") - before
	t.Logf("%d customers, 400 edits by people, each event delivered twice: %d writes by handoff", customers, writes)
	if writes != 4*customers {
		t.Errorf("writes: %d, want %d (one per effective change)", writes, 4*customers)
	}
}

// Reconciliation compares CRM contacts with accounting customers field by
// field: an owner's value that never reached the other system (its event
// lost) is written there; a customer one system holds alone is flagged.
func TestReconciliationRepairsCustomerFieldsAndFlagsUnmatchedOnes(t *testing.T) {
	id := fmt.Sprintf("drift-%d", time.Now().UnixNano())
	if status, _, raw := putCustomer(t, id, map[string]any{"version": 1, "email": id + "@example.com", "name": "Ada"}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	v := awaitCustomer(t, id, "synced", synced)
	t.Cleanup(func() { clearFaults(t) })
	// A person changes the name in the CRM, and its event is lost.
	hold := func(system, ref string) {
		addFault(t, sandbox.Fault{System: system, Operation: "deliver_webhook", KeyPrefix: ref, Mode: sandbox.FaultDelayWebhooks, LatencyMS: 600_000, Count: 1})
	}
	hold("crm", "customer/"+id)
	editRecord(t, "crm", v.Systems["crm"].RecordID, map[string]string{"name": "Ada Lovelace"})
	// Accounting holds a customer the CRM does not, its event lost too.
	alone := "customer/" + id + "-alone"
	hold("accounting", alone)
	if status, _, raw := providerCall(t, http.MethodPost, "/_sandbox/records/accounting/customers",
		map[string]string{"email": id + "-alone@example.com", "external_ref": alone}); status != http.StatusCreated {
		t.Fatalf("make accounting customer: %d %s", status, raw)
	}

	rules, systems := workflows.CustomerRulesFrom(testConfig().Contracts())
	st, err := control.New(env.client, control.Options{DataConverter: codec.DataConverter(testEncryption()), PaymentPollInterval: time.Second, PaymentTimeout: time.Minute,
		CustomerRules: rules, CustomerSystems: systems,
		Reconcile: workflows.ReconcileInput{PageSize: 100, MaxRepairs: 1000, Phases: []string{activities.PhaseCustomers, activities.PhaseAccountingCustomers}}})
	if err != nil {
		t.Fatal(err)
	}
	report := reconcileWith(t, st)
	var repaired, flagged bool
	for _, it := range report.RepairedItems {
		repaired = repaired || (it.Kind == activities.DiffCustomerField && slices.Contains(it.Refs, "customer/"+id))
	}
	for _, it := range report.FlaggedItems {
		flagged = flagged || (it.Kind == activities.DiffCustomerUnmatched && slices.Contains(it.Refs, alone))
	}
	if !repaired || !flagged || report.Compared.Records["crm customers"] == 0 {
		t.Errorf("report: repaired %v, flagged %v: %+v", repaired, flagged, report)
	}
	// The repair hands the CRM's record to the customer, which learns the
	// name from its owner and writes it into accounting.
	v = awaitCustomer(t, id, "the CRM's name everywhere", func(v workflows.CustomerView) bool {
		return synced(v) && v.Fields["name"].Value == "Ada Lovelace" && v.Fields["name"].Systems["accounting"].Value == "Ada Lovelace"
	})
	if acc := record(t, "accounting", v.Systems["accounting"].RecordID); acc["name"] != "Ada Lovelace" {
		t.Errorf("accounting's name after reconciliation: %v", acc["name"])
	}
}

// A customer is read without a worker from what its workflow kept in its
// memo at its last quiet moment.
func TestACustomerIsReadWithoutAWorker(t *testing.T) {
	besideSelfContained(t)
	id := fmt.Sprintf("no-worker-%d", time.Now().UnixNano())
	view := workflows.CustomerView{CustomerID: id, Status: action.StatusSynced, Version: 3,
		Fields: map[string]workflows.FieldView{"email": {Value: id + "@example.com", Owner: "crm", Version: 2}}}
	// Its workflow waits on a queue no worker polls, as when every worker
	// is down.
	_, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: action.CustomerKey(id).String(), TaskQueue: "no-worker-" + id,
		Memo:                  map[string]any{workflows.MemoCustomer: view},
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchStatus.ValueSet(string(action.StatusSynced))),
	}, workflows.CustomerWorkflow, workflows.CustomerInput{CustomerID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.client.TerminateWorkflow(context.Background(), action.CustomerKey(id).String(), "", "test finished")
	})
	start := time.Now()
	status, h, raw := call(t, http.MethodGet, "/v1/customers/"+id, nil, testToken)
	took := time.Since(start)
	var got workflows.CustomerView
	if status != http.StatusOK || decodeJSON(raw, &got) != nil || h.Get("Handoff-State-Source") != "snapshot" {
		t.Fatalf("GET: %d %s %q", status, raw, h.Get("Handoff-State-Source"))
	}
	if got.Version != 3 || got.Fields["email"].Value != id+"@example.com" || got.Status != action.StatusSynced {
		t.Errorf("read %+v", got)
	}
	t.Logf("read without a worker in %s", took.Round(time.Millisecond))
	if status, _, _ := call(t, http.MethodGet, "/v1/customers/nobody-"+id, nil, testToken); status != http.StatusNotFound {
		t.Errorf("an unknown customer: %d, want 404", status)
	}
	// A change needs the workflow to take it: without a worker the
	// application is told to send it again, within a bounded time.
	start = time.Now()
	status, h, raw = putCustomer(t, id, map[string]any{"version": 4, "name": "Ada"})
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("PUT without a worker: %d %s, Retry-After %q", status, raw, h.Get("Retry-After"))
	}
	t.Logf("PUT without a worker answered %d in %s", status, time.Since(start).Round(time.Millisecond))
}

// An order finds its customer's contact by e-mail address and never changes
// what the CRM owns: a different name is noted on the order's customer step.
func TestAnOrderNeverOverwritesWhatTheCRMOwns(t *testing.T) {
	id := fmt.Sprintf("owned-%d", time.Now().UnixNano())
	o := order(id)
	status, _, raw := providerCall(t, http.MethodPost, "/_sandbox/records/crm/contacts", map[string]string{"email": o.Customer.Email, "name": "Augusta Ada King"})
	var contact map[string]any
	if status != http.StatusCreated || decodeJSON(raw, &contact) != nil {
		t.Fatalf("make contact: %d %s", status, raw)
	}
	if status, _, body := call(t, http.MethodPost, "/v1/orders", o, testToken); status != http.StatusAccepted {
		t.Fatalf("place: %d %s", status, body)
	}
	state := awaitOrder(t, id, action.StatusCompleted)
	c := record(t, "crm", contact["id"].(string))
	if c["name"] != "Augusta Ada King" || fmt.Sprint(c["version"]) != fmt.Sprint(contact["version"]) {
		t.Errorf("the order changed the CRM's contact: %v", c)
	}
	customer := state.Steps[0]
	// The note says that the names differ, not what they are: the
	// order's state is kept in Temporal, which holds no more personal data
	// than the steps need.
	if customer.RemoteRef != contact["id"] || len(customer.Notes) != 1 || !strings.HasPrefix(customer.Notes[0], "name: ") ||
		strings.Contains(customer.Notes[0], "Augusta") || strings.Contains(customer.Notes[0], o.Customer.Name) {
		t.Errorf("customer step: %+v", customer)
	}
}
