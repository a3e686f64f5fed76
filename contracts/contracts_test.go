package contracts

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
)

func TestEveryBuiltInContractParsesAndMatchesTheRegistry(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatalf("contracts:\n%v", err)
	}
	c, ok := For("payments", "stripe")
	if !ok || c.API.Version != "2024-06-20" || time.Duration(c.Limits.Timeout) != 15*time.Second {
		t.Errorf("stripe contract = %+v", c)
	}
}

func TestAContractThatContradictsTheRegistryIsRefusedNamingEveryProblem(t *testing.T) {
	c, err := Parse("broken.yaml", []byte(`
system: shipping
provider: pigeon
auth: {scheme: telepathy}
limits: {timeout: 0s, connect_timeout: 1s, rate_limit: 1, concurrency: 1}
api: {version: "1", changes: nowhere}
invalid_data: refused
operations:
  - name: send
    method: FLY
    path: /send
    required: [to]
    example: {}
    responses: [{status: 503}]
`))
	if err != nil {
		t.Fatal(err)
	}
	problems := errorsOf(c.check())
	for _, want := range []string{`system "shipping" is not registered`, "auth scheme", "limits", "a method", "example breaks its own rules", "answer 503 must be classified"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems do not mention %q:\n%s", want, problems)
		}
	}
	if _, err := Parse("typo.yaml", []byte("system: payments\nprovidr: stripe\n")); err == nil {
		t.Error("a contract with an unknown key parsed")
	}
}

func errorsOf(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

func TestOperationCheckAndClassify(t *testing.T) {
	c, _ := For("payments", "sandbox")
	op, _ := c.Operation("create_charge")
	tests := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"valid", map[string]any{"amount": float64(100), "currency": "eur"}, ""},
		{"missing amount", map[string]any{"currency": "eur"}, "amount is required"},
		{"bad currency", map[string]any{"amount": float64(100), "currency": "EURO"}, "currency must be currency"},
		{"bad e-mail", map[string]any{"amount": float64(100), "currency": "eur", "email": "ada"}, "email must be email"},
		{"fractional amount", map[string]any{"amount": 1.5, "currency": "eur"}, "amount must be positive_integer"},
	}
	for _, tt := range tests {
		got := strings.Join(op.Check(tt.fields), "; ")
		if got != tt.want {
			t.Errorf("%s: Check = %q, want %q", tt.name, got, tt.want)
		}
	}
	if cat, typ, ok := c.Classify("create_charge", 409, "idempotency_error", ""); !ok || cat != action.CategoryPermanent || typ != action.TypeConflict {
		t.Errorf("Classify(409) = %s %s %v", cat, typ, ok)
	}
	if _, _, ok := c.Classify("create_charge", 418, "", ""); ok {
		t.Error("an undeclared answer was classified by the contract")
	}
}

func TestTheRenderingNamesEveryContractAndOperation(t *testing.T) {
	all := All()
	md := Markdown(all)
	for _, c := range all {
		if !strings.Contains(md, "## "+c.System+": "+c.Provider+"\n") {
			t.Errorf("no section for %s/%s", c.System, c.Provider)
		}
		for _, op := range c.Operations {
			if !strings.Contains(md, "`"+op.Name+"`: "+op.Method) {
				t.Errorf("%s/%s: operation %s not rendered", c.System, c.Provider, op.Name)
			}
		}
	}
}

func TestAnOperationThatNamesItsFieldsRefusesAnyOther(t *testing.T) {
	op := Operation{Name: "send", Required: []string{"to"}, Optional: []string{"text"}, Formats: map[string]string{"to": "email"}}
	if p := op.Check(map[string]any{"to": "ada@example.com", "text": "hi"}); len(p) != 0 {
		t.Errorf("declared fields: %v", p)
	}
	p := op.Check(map[string]any{"to": "ada@example.com", "bcc": "eve@example.com"})
	if len(p) != 1 || !strings.Contains(p[0], "bcc is not a field of the contract") {
		t.Errorf("undeclared field: %v", p)
	}
	// An operation that names no fields (a read) is not checked for them.
	if p := (Operation{Name: "get"}).Check(map[string]any{"limit": "1"}); len(p) != 0 {
		t.Errorf("read: %v", p)
	}
}

func TestAFieldHasOneOwner(t *testing.T) {
	crm, _ := For("crm", "sandbox")
	owners := Owners(All(), "customer")
	if o := owners["email"]; o.Owner != "crm" || o.OnConflict != OnConflictWriteBack {
		t.Errorf("customer email: %+v, want the CRM with write_back", o)
	}
	if o := owners["billing_address"]; o.Owner != "accounting" {
		t.Errorf("customer billing address: %+v, want accounting", o)
	}
	// A contract that gives the e-mail to accounting contradicts the CRM's.
	other, _ := For("accounting", "sandbox")
	other.Source = "override/accounting.sandbox.yaml"
	other.Ownership = append(other.Ownership, Ownership{Record: "customer", Fields: []string{"email"}, Owner: "accounting", OnConflict: OnConflictFlag})
	err := Check(other)
	if err == nil || !strings.Contains(err.Error(), "ownership of customer.email") || !strings.Contains(err.Error(), crm.Source) {
		t.Errorf("Check = %v, want the contradiction over customer.email named with both contracts", err)
	}
	bad := other
	bad.Ownership = []Ownership{{Record: "customer", Fields: []string{"tax_id"}, Owner: "accounting", OnConflict: "overwrite"}}
	if err := Check(bad); err == nil || !strings.Contains(err.Error(), `on_conflict "overwrite"`) {
		t.Errorf("Check = %v, want the unknown policy named", err)
	}
}

// The README's table of who owns which customer field is the contracts'.
func TestTheREADMEShowsTheContractsCustomerOwners(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := RenderRecordOwners(All(), "customer")
	if !strings.Contains(string(readme), want) {
		t.Errorf("README.md does not show the contracts' customer owners; its table should read:\n%s", want)
	}
}
