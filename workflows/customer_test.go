package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
)

// customerRules are the built-in contracts' ownership of customer fields.
var customerRules = map[string]FieldRule{
	"email": {Owner: "crm", OnConflict: "write_back"}, "name": {Owner: "crm", OnConflict: "write_back"},
	"phone":           {Owner: "crm", OnConflict: "write_back"},
	"billing_address": {Owner: "accounting", OnConflict: "write_back"}, "tax_id": {Owner: "accounting", OnConflict: "write_back"},
	"payment_terms": {Owner: "accounting", OnConflict: "write_back"},
}

var customerSystems = []CustomerSystem{
	{Name: "crm", Fields: []string{"email", "name", "phone", "billing_address"}, Create: true, MatchEmail: true},
	{Name: "accounting", Fields: []string{"email", "name", "billing_address", "tax_id", "payment_terms"}, Create: true, MatchEmail: true},
}

// customerEnv runs a customer's workflow against a sandbox.
type customerEnv struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	sb  *sandbox.Server
	url string
}

func newCustomerEnv(t *testing.T) *customerEnv {
	t.Helper()
	sb := sandbox.NewServer(sandbox.Options{})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	acts := &activities.Activities{Customers: map[string]providers.Customers{}}
	for _, sys := range []string{"crm", "accounting"} {
		acts.Customers[sys] = sandbox.NewClient(sys, srv.URL+"/"+sys, providers.HTTPOptions{Timeout: 5 * time.Second})
	}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(CustomerWorkflow)
	env.RegisterActivity(acts.MatchCustomer)
	env.RegisterActivity(acts.WriteCustomer)
	return &customerEnv{t: t, env: env, sb: sb, url: srv.URL}
}

// at runs f once the workflow has waited d.
func (e *customerEnv) at(d time.Duration, f func()) { e.env.RegisterDelayedCallback(f, d) }

func (e *customerEnv) put(version int64, fields map[string]string) {
	e.env.UpdateWorkflow(UpdatePutCustomer, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { e.t.Errorf("put version %d rejected: %v", version, err) },
		OnAccept: func() {}, OnComplete: func(any, error) {},
	}, PutCustomerRequest{Change: action.CustomerChange{Source: action.SourceApplication, Version: version, Fields: fields, RequestHash: "h" + string(rune('0'+version))}})
}

// edit changes a record as a person would, in the provider's screens, and
// delivers its event (as its webhook would) n times.
func (e *customerEnv) edit(system, id string, fields map[string]string, deliveries int) {
	kind := map[string]string{"crm": "contacts", "accounting": "customers"}[system]
	body, _ := json.Marshal(fields)
	req, _ := http.NewRequest(http.MethodPatch, e.url+"/_sandbox/records/"+system+"/"+kind+"/"+id, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("edit %s %s: %v %v", system, id, resp, err)
	}
	resp.Body.Close()
	for range deliveries {
		e.deliver(system, id)
	}
}

// deliver signals the record as it now stands, as its webhook would.
func (e *customerEnv) deliver(system, id string) {
	p, ok := e.sb.Party(system, id)
	if !ok {
		e.t.Fatalf("no %s record %s", system, id)
	}
	e.env.SignalWorkflow(SignalCustomerChange, partyChange(system, p))
}

func partyChange(system string, p map[string]any) action.CustomerChange {
	ch := action.CustomerChange{Source: system, Fields: map[string]string{}}
	for k, v := range p {
		switch k {
		case "id":
			ch.RecordID = v.(string)
		case "external_ref":
			ch.ExternalRef = v.(string)
		case "version":
			ch.Version = v.(int64)
		default:
			ch.Fields[k] = v.(string)
		}
	}
	return ch
}

func (e *customerEnv) view() CustomerView {
	e.t.Helper()
	res, err := e.env.QueryWorkflow(QueryCustomer)
	if err != nil {
		e.t.Fatalf("query: %v", err)
	}
	var v CustomerView
	if err := res.Get(&v); err != nil {
		e.t.Fatalf("query result: %v", err)
	}
	return v
}

// run starts the customer's workflow with the built-in rules and cancels
// it once after has passed.
func (e *customerEnv) run(id string, after time.Duration) CustomerView {
	e.t.Helper()
	return e.runInput(CustomerInput{CustomerID: id, Rules: customerRules, Systems: customerSystems}, after)
}

// runInput starts the customer's workflow with in and answers its view
// once after has passed, when it is cancelled.
func (e *customerEnv) runInput(in CustomerInput, after time.Duration) CustomerView {
	e.t.Helper()
	var v CustomerView
	e.at(after, func() {
		v = e.view()
		e.env.CancelWorkflow()
	})
	e.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "customer/" + in.CustomerID})
	e.env.ExecuteWorkflow(CustomerWorkflow, in)
	if err := e.env.GetWorkflowError(); err != nil {
		e.t.Fatalf("customer workflow: %v", err)
	}
	return v
}

// rulesWith are the built-in rules with one field's changed.
func rulesWith(field string, rule FieldRule) map[string]FieldRule {
	rules := maps.Clone(customerRules)
	rules[field] = rule
	return rules
}

func (e *customerEnv) record(v CustomerView, system string) map[string]any {
	e.t.Helper()
	p, ok := e.sb.Party(system, v.Systems[system].RecordID)
	if !ok {
		e.t.Fatalf("no %s record for the customer: %+v", system, v.Systems)
	}
	return p
}

func TestCustomerIsMadeInEverySystemFromTheApplicationsValues(t *testing.T) {
	e := newCustomerEnv(t)
	e.at(time.Second, func() {
		e.put(1, map[string]string{"email": "ada@example.com", "name": "Ada", "billing_address": "1 Analytical Way"})
	})
	v := e.run("c-1", time.Minute)
	crm, acc := e.record(v, "crm"), e.record(v, "accounting")
	if crm["email"] != "ada@example.com" || crm["name"] != "Ada" || crm["external_ref"] != "customer/c-1" {
		t.Errorf("crm contact: %v", crm)
	}
	if acc["email"] != "ada@example.com" || acc["billing_address"] != "1 Analytical Way" || acc["external_ref"] != "customer/c-1" {
		t.Errorf("accounting customer: %v", acc)
	}
	if v.Status != action.StatusSynced || v.Version != 1 || v.Fields["email"].Owner != "crm" {
		t.Errorf("view: %+v", v)
	}
	if n := e.sb.APIWrites("crm") + e.sb.APIWrites("accounting"); n != 2 {
		t.Errorf("writes: %d, want one create per system", n)
	}
}

// The article's case: the e-mail changed in the CRM and, at once, to
// another address in accounting. The CRM owns it: both end with its value,
// accounting's change is a conflict written back, with one write.
func TestTheOwnersChangeWinsAndTheOtherIsWrittenBack(t *testing.T) {
	e := newCustomerEnv(t)
	e.at(time.Second, func() {
		e.put(1, map[string]string{"email": "ada@example.com", "name": "Ada"})
	})
	var before CustomerView
	e.at(30*time.Second, func() {
		before = e.view()
		crm, acc := before.Systems["crm"].RecordID, before.Systems["accounting"].RecordID
		e.edit("crm", crm, map[string]string{"email": "ada@lovelace.example"}, 2)
		e.edit("accounting", acc, map[string]string{"email": "someone@else.example"}, 2)
	})
	v := e.run("c-2", 2*time.Minute)
	writesBefore := 2 // the two creates
	crm, acc := e.record(v, "crm"), e.record(v, "accounting")
	if crm["email"] != "ada@lovelace.example" || acc["email"] != "ada@lovelace.example" {
		t.Fatalf("e-mail: crm %v, accounting %v; want the CRM's in both", crm["email"], acc["email"])
	}
	if got := e.sb.APIWrites("accounting") + e.sb.APIWrites("crm") - writesBefore; got != 1 {
		t.Errorf("writes after the edits: %d, want 1 (accounting's e-mail written back)", got)
	}
	if len(v.Conflicts) != 1 || v.Conflicts[0].Source != "accounting" || v.Conflicts[0].Resolution != ResolutionWrittenBack ||
		v.Conflicts[0].Value != "someone@else.example" || v.Conflicts[0].OwnerValue != "ada@lovelace.example" {
		t.Errorf("conflicts: %+v", v.Conflicts)
	}
}

// The billing address belongs to accounting: changed there, the CRM gets
// it once; changed in the CRM, it is set back to accounting's value. The
// name belongs to the CRM: changed in accounting, it is written back.
func TestANonOwnersChangeIsWrittenBackAndAnOwnersPropagates(t *testing.T) {
	e := newCustomerEnv(t)
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "grace@example.com", "name": "Grace"}) })
	var writes int
	e.at(30*time.Second, func() {
		v := e.view()
		writes = e.sb.APIWrites("crm")
		e.edit("accounting", v.Systems["accounting"].RecordID, map[string]string{"billing_address": "2 Navy Yard", "name": "G. Hopper"}, 1)
	})
	e.at(60*time.Second, func() {
		if n := e.sb.APIWrites("crm") - writes; n != 1 {
			t.Errorf("writes to the CRM for accounting's billing address: %d, want 1", n)
		}
		v := e.view()
		e.edit("crm", v.Systems["crm"].RecordID, map[string]string{"name": "Grace Hopper", "billing_address": "Somewhere else"}, 1)
	})
	v := e.run("c-3", 2*time.Minute)
	crm, acc := e.record(v, "crm"), e.record(v, "accounting")
	if acc["billing_address"] != "2 Navy Yard" || crm["billing_address"] != "2 Navy Yard" || v.Fields["billing_address"].Value != "2 Navy Yard" {
		t.Errorf("billing address: crm %v, accounting %v, field %+v", crm["billing_address"], acc["billing_address"], v.Fields["billing_address"])
	}
	if crm["name"] != "Grace Hopper" || acc["name"] != "Grace Hopper" {
		t.Errorf("name: crm %v, accounting %v; want the CRM's", crm["name"], acc["name"])
	}
	want := map[string]bool{"name/accounting/G. Hopper": false, "billing_address/crm/Somewhere else": false}
	for _, c := range v.Conflicts {
		k := c.Field + "/" + c.Source + "/" + c.Value
		if _, ok := want[k]; ok && c.Resolution == ResolutionWrittenBack {
			want[k] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no written-back conflict %s: %+v", k, v.Conflicts)
		}
	}
}

// Where the contract says flag, a non-owner's change stays where it was
// made, recorded for review, until the owner changes the field.
func TestAFlaggedConflictStaysForReview(t *testing.T) {
	e := newCustomerEnv(t)
	rules := rulesWith("billing_address", FieldRule{Owner: "accounting", OnConflict: "flag"})
	e.at(time.Second, func() {
		e.put(1, map[string]string{"email": "barbara@example.com", "name": "Barbara", "billing_address": "1 Main St"})
	})
	e.at(30*time.Second, func() {
		v := e.view()
		e.edit("crm", v.Systems["crm"].RecordID, map[string]string{"billing_address": "Typo Street"}, 1)
	})
	var flagged CustomerView
	e.at(60*time.Second, func() {
		flagged = e.view()
		e.edit("accounting", flagged.Systems["accounting"].RecordID, map[string]string{"billing_address": "2 Main St"}, 1)
	})
	v := e.runInput(CustomerInput{CustomerID: "c-7", Rules: rules, Systems: customerSystems}, 90*time.Second)
	if c := flagged.Fields["billing_address"].Systems["crm"]; c.Value != "Typo Street" || !c.Flagged {
		t.Errorf("the CRM's billing address while flagged: %+v", c)
	}
	if n := len(flagged.Conflicts); n != 1 || flagged.Conflicts[0].Resolution != ResolutionFlagged {
		t.Errorf("conflicts: %+v", flagged.Conflicts)
	}
	if c := v.Fields["billing_address"].Systems["crm"]; c.Value != "2 Main St" || c.Flagged {
		t.Errorf("the CRM's billing address after the owner's change: %+v", c)
	}
}

// Two contacts with the customer's e-mail address: the customer parks as
// ambiguous_match until an operator names one.
func TestTwoCandidatesParkTheCustomerUntilAnOperatorPicksOne(t *testing.T) {
	e := newCustomerEnv(t)
	var ids []string
	for _, name := range []string{"Ada (sales)", "Ada (support)"} {
		body, _ := json.Marshal(map[string]string{"email": "Ada@Example.com", "name": name})
		resp, err := http.Post(e.url+"/_sandbox/records/crm/contacts", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var p map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		ids = append(ids, p["id"].(string))
	}
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "ada@example.com", "name": "Ada"}) })
	e.at(30*time.Second, func() {
		v := e.view()
		if v.Status != action.StatusNeedsAttention {
			t.Errorf("status with two candidates: %s", v.Status)
		}
		e.env.UpdateWorkflow(UpdateRetry, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) {
				if !strings.Contains(err.Error(), "not one of the candidates") {
					t.Errorf("wrong pick rejected with: %v", err)
				}
			},
			OnAccept: func() { t.Errorf("a record that is no candidate was accepted") }, OnComplete: func(any, error) {},
		}, OperatorRequest{Record: "ct_nope"})
		e.env.UpdateWorkflow(UpdateRetry, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("pick rejected: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, OperatorRequest{Record: ids[1], Reason: "support's contact is the customer"})
	})
	v := e.run("c-4", 2*time.Minute)
	if v.Systems["crm"].RecordID != ids[1] || v.Systems["crm"].MatchedBy != activities.MatchedByOperator || v.Status != action.StatusSynced {
		t.Fatalf("after the pick: %+v %s", v.Systems, v.Status)
	}
	crm := e.record(v, "crm")
	if crm["external_ref"] != "customer/c-4" || crm["name"] != "Ada (support)" {
		t.Errorf("picked contact: %v", crm)
	}
}

// A long history continues as new at a quiet moment, carrying what the
// customer knows: the next run finds nothing to make again, and keeps
// applying changes.
func TestACustomerContinuesAsNewWithWhatItKnows(t *testing.T) {
	e := newCustomerEnv(t)
	defer func(n int) { continueAsNewAfterActivities = n }(continueAsNewAfterActivities)
	continueAsNewAfterActivities = 2
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "kay@example.com", "name": "Kay"}) })
	e.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "customer/c-5"})
	e.env.ExecuteWorkflow(CustomerWorkflow, CustomerInput{CustomerID: "c-5", Rules: customerRules, Systems: customerSystems})
	var can *workflow.ContinueAsNewError
	if err := e.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want a continue-as-new, got %v", err)
	}
	var next CustomerInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Resume == nil || next.Resume.Book.Systems["crm"] == nil || next.Resume.Book.Application.Version != 1 {
		t.Fatalf("checkpoint: %+v", next.Resume)
	}
	writes := e.sb.APIWrites("crm") + e.sb.APIWrites("accounting")

	// The next run, against the same sandbox.
	var suite testsuite.WorkflowTestSuite
	e.env = suite.NewTestWorkflowEnvironment()
	e.env.RegisterWorkflow(CustomerWorkflow)
	acts := &activities.Activities{Customers: map[string]providers.Customers{}}
	for _, sys := range []string{"crm", "accounting"} {
		acts.Customers[sys] = sandbox.NewClient(sys, e.url+"/"+sys, providers.HTTPOptions{Timeout: 5 * time.Second})
	}
	e.env.RegisterActivity(acts.MatchCustomer)
	e.env.RegisterActivity(acts.WriteCustomer)
	crmID := next.Resume.Book.Systems["crm"].RecordID
	e.at(time.Second, func() { e.edit("crm", crmID, map[string]string{"name": "Kay Sparck Jones"}, 1) })
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "kay@example.com", "name": "Kay"}) }) // a replay
	continueAsNewAfterActivities = 500
	v := e.runInput(next, time.Minute)
	if got := e.sb.APIWrites("crm") + e.sb.APIWrites("accounting") - writes; got != 1 {
		t.Errorf("writes in the continued run: %d, want 1 (the name into accounting)", got)
	}
	if acc := e.record(v, "accounting"); acc["name"] != "Kay Sparck Jones" {
		t.Errorf("accounting's name: %v", acc["name"])
	}
}

// A value a field cannot have, from any system, is never propagated: it
// is recorded as rejected with the field and the reason.
func TestInvalidDataFromAProviderIsNotPropagated(t *testing.T) {
	e := newCustomerEnv(t)
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "edsger@example.com", "name": "Edsger"}) })
	e.at(30*time.Second, func() {
		v := e.view()
		e.edit("crm", v.Systems["crm"].RecordID, map[string]string{"email": "edsger@localhost"}, 1)
	})
	v := e.run("c-6", time.Minute)
	if acc := e.record(v, "accounting"); acc["email"] != "edsger@example.com" || v.Fields["email"].Value != "edsger@example.com" {
		t.Errorf("the malformed e-mail went somewhere: accounting %v, field %+v", acc["email"], v.Fields["email"])
	}
	if len(v.Conflicts) != 1 || v.Conflicts[0].Resolution != ResolutionRejected || v.Conflicts[0].Field != "email" ||
		!strings.Contains(v.Conflicts[0].Reason, "e-mail address") {
		t.Errorf("conflicts: %+v", v.Conflicts)
	}
}

// A field the contract gives to the application: its PUT propagates, and a
// system's change of it is written back.
func TestAFieldTheApplicationOwnsFollowsItsPut(t *testing.T) {
	e := newCustomerEnv(t)
	rules := rulesWith("name", FieldRule{Owner: action.SourceApplication, OnConflict: "write_back"})
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "alan@example.com", "name": "Alan"}) })
	e.at(30*time.Second, func() { e.put(2, map[string]string{"name": "Alan Turing"}) })
	e.at(60*time.Second, func() {
		v := e.view()
		e.edit("crm", v.Systems["crm"].RecordID, map[string]string{"name": "A. M. Turing"}, 1)
	})
	v := e.runInput(CustomerInput{CustomerID: "c-8", Rules: rules, Systems: customerSystems}, 90*time.Second)
	crm, acc := e.record(v, "crm"), e.record(v, "accounting")
	if crm["name"] != "Alan Turing" || acc["name"] != "Alan Turing" || v.Fields["name"].Owner != action.SourceApplication {
		t.Errorf("name: crm %v, accounting %v, field %+v", crm["name"], acc["name"], v.Fields["name"])
	}
	if len(v.Conflicts) != 1 || v.Conflicts[0].Source != "crm" || v.Conflicts[0].Resolution != ResolutionWrittenBack {
		t.Errorf("conflicts: %+v", v.Conflicts)
	}
}

// An owner changed in the contracts reaches a running customer with the
// application's next PUT.
func TestAChangedOwnerReachesARunningCustomerWithItsNextPut(t *testing.T) {
	e := newCustomerEnv(t)
	rules := rulesWith("phone", FieldRule{Owner: action.SourceApplication, OnConflict: "write_back"})
	e.at(time.Second, func() { e.put(1, map[string]string{"email": "grace@example.com", "name": "Grace", "phone": "1"}) })
	e.at(30*time.Second, func() {
		e.env.UpdateWorkflow(UpdatePutCustomer, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("put rejected: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, PutCustomerRequest{Change: action.CustomerChange{Source: action.SourceApplication, Version: 2, Fields: map[string]string{"phone": "2"}, RequestHash: "h2"}, Rules: rules})
	})
	v := e.run("c-9", time.Minute)
	if crm := e.record(v, "crm"); crm["phone"] != "2" || v.Fields["phone"].Owner != action.SourceApplication {
		t.Errorf("phone: crm %v, field %+v", crm["phone"], v.Fields["phone"])
	}
}
