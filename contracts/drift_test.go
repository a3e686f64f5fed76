package contracts

import (
	"net/http"
	"strings"
	"testing"
)

func driftContract() *Contract {
	return &Contract{API: API{Version: "1", VersionHeader: "Sandbox-Version"},
		Operations: []Operation{{Name: "get_charge", Returns: "charge"}, {Name: "list_charges", Returns: "charge_page"}, {Name: "delete_charge"}},
		Shapes: map[string]Shape{
			"charge": {Fields: map[string]Field{
				"id":       {Type: "string", Required: true},
				"status":   {Type: "string", Required: true, Values: []string{"pending", "succeeded"}},
				"amount":   {Type: "integer", Required: true, Format: "positive_integer"},
				"currency": {Type: "string", Format: "currency"},
				"email":    {Type: "string"},
			}},
			"charge_page": {Fields: map[string]Field{"data": {Type: "array", Items: "charge", Required: true}, "next_page_token": {Type: "string"}}},
		}}
}

func TestDriftNamesEveryKind(t *testing.T) {
	c := driftContract()
	ok := `{"id":"ch_1","status":"pending","amount":2500,"currency":"eur","email":"ada@example.com"}`
	if d := c.Drift("get_charge", http.Header{"Sandbox-Version": {"1"}}, []byte(ok)); len(d) != 0 {
		t.Fatalf("an answer as declared drifted: %v", d)
	}
	for _, tc := range []struct {
		name, body string
		header     http.Header
		want       Drift
	}{
		{"missing field", `{"id":"ch_1","amount":2500}`, nil, Drift{Kind: DriftMissingField, Field: "status", Example: "absent"}},
		{"null is missing", `{"id":"ch_1","status":null,"amount":2500}`, nil, Drift{Kind: DriftMissingField, Field: "status", Example: "absent"}},
		{"wrong type", `{"id":"ch_1","status":"pending","amount":"2500"}`, nil, Drift{Kind: DriftWrongType, Field: "amount", Example: "string of 4 characters, want integer"}},
		{"a fraction is no integer", `{"id":"ch_1","status":"pending","amount":25.5}`, nil, Drift{Kind: DriftWrongType, Field: "amount", Example: "number, want integer"}},
		{"wrong format", `{"id":"ch_1","status":"pending","amount":2500,"currency":"EURO"}`, nil, Drift{Kind: DriftWrongFormat, Field: "currency", Example: "string of 4 characters, want currency"}},
		{"unknown value", `{"id":"ch_1","status":"requires_action","amount":2500}`, nil, Drift{Kind: DriftUnknownValue, Field: "status", Example: "requires_action"}},
		{"unknown field", `{"id":"ch_1","status":"pending","amount":2500,"phone":"+44 20 7946 0000"}`, nil, Drift{Kind: DriftUnknownField, Field: "phone", Example: "string of 16 characters"}},
		{"api version", ok, http.Header{"Sandbox-Version": {"2"}}, Drift{Kind: DriftAPIVersion, Field: "Sandbox-Version", Example: "2"}},
		{"not an object", `["ch_1"]`, nil, Drift{Kind: DriftWrongType, Field: "(answer)", Example: "array of 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.Drift("get_charge", tc.header, []byte(tc.body))
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Drift = %v, want [%v]", got, tc.want)
			}
		})
	}
}

func TestDriftReadsListsOncePerField(t *testing.T) {
	body := `{"data":[{"id":"a","status":"refunded","amount":1},{"id":"b","status":"refunded","amount":1,"extra":{"x":1}}],"next_page_token":"t"}`
	got := driftContract().Drift("list_charges", nil, []byte(body))
	want := []Drift{{Kind: DriftUnknownValue, Field: "data[].status", Example: "refunded"}, {Kind: DriftUnknownField, Field: "data[].extra", Example: "object"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Drift = %v, want %v", got, want)
	}
}

func TestDriftNeverShowsAnUndeclaredValue(t *testing.T) {
	body := `{"id":"ch_1","status":"pending","amount":2500,"email":77,"card_holder":"Ada Lovelace","currency":"ada@example.com"}`
	for _, d := range driftContract().Drift("get_charge", nil, []byte(body)) {
		if strings.Contains(d.Example, "Ada") || strings.Contains(d.Example, "ada@") || strings.Contains(d.Example, "77") {
			t.Errorf("%v shows the value it found", d)
		}
	}
}

func TestOpenShapesTakeNewFields(t *testing.T) {
	c := driftContract()
	open := c.Shapes["charge"]
	open.Open = true
	c.Shapes["charge"] = open
	if d := c.Drift("get_charge", nil, []byte(`{"id":"ch_1","status":"pending","amount":1,"livemode":false}`)); len(d) != 0 {
		t.Errorf("an open shape's new field drifted: %v", d)
	}
}

func TestDriftLeavesUndeclaredOperationsAlone(t *testing.T) {
	if d := driftContract().Drift("delete_charge", nil, []byte(`{"anything":true}`)); len(d) != 0 {
		t.Errorf("an operation without a shape drifted: %v", d)
	}
	var none *Contract
	if d := none.Drift("get_charge", nil, []byte(`{}`)); d != nil {
		t.Errorf("no contract drifted: %v", d)
	}
}

func TestShapesAreChecked(t *testing.T) {
	c := Contract{Operations: []Operation{{Name: "get", Returns: "nothing"}}, Shapes: map[string]Shape{
		"a": {Fields: map[string]Field{"x": {Type: "text"}, "y": {Type: "array", Items: "b"}, "z": {Type: "string", Shape: "a"}, "w": {Type: "string", Format: "("}}},
	}}
	problems := strings.Join(c.checkShapes(), "\n")
	for _, want := range []string{`field x: type "text"`, `field y: items "b"`, `field z: shape "a"`, `field w: format "("`, `get returns "nothing"`} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems do not mention %s:\n%s", want, problems)
		}
	}
}
