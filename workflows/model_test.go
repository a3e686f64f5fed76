package workflows

import (
	"fmt"
	"strings"
	"testing"

	"github.com/handoff-hq/handoff/action"
)

func TestOrderValidate(t *testing.T) {
	tests := []struct {
		name       string
		change     func(*action.Order)
		wantFields []string
	}{
		{"valid", func(*action.Order) {}, nil},
		{"missing order id", func(o *action.Order) { o.OrderID = "" }, []string{"order_id"}},
		{"order id with a slash", func(o *action.Order) { o.OrderID = "a/b" }, []string{"order_id"}},
		{"order id too long", func(o *action.Order) { o.OrderID = strings.Repeat("a", 129) }, []string{"order_id"}},
		{"bad e-mail", func(o *action.Order) { o.Customer.Email = "ada" }, []string{"customer.email"}},
		{"e-mail with a display name", func(o *action.Order) { o.Customer.Email = "Ada <ada@example.com>" }, []string{"customer.email"}},
		{"no name", func(o *action.Order) { o.Customer.Name = "" }, []string{"customer.name"}},
		{"bad currency", func(o *action.Order) { o.Currency = "euro" }, []string{"currency"}},
		{"zero amount", func(o *action.Order) { o.Amount = 0 }, []string{"amount"}},
		{"no items", func(o *action.Order) { o.Items = nil }, []string{"items"}},
		{"item without sku and quantity", func(o *action.Order) { o.Items[0].SKU = ""; o.Items[0].Quantity = 0 }, []string{"items[0].sku", "items[0].quantity"}},
		{"negative unit amount", func(o *action.Order) { o.Items[0].UnitAmount = -1 }, []string{"items[0].unit_amount"}},
		{"amount differs from items", func(o *action.Order) { o.Amount = 2999 }, []string{"amount"}},
		{"overflowing quantities", func(o *action.Order) { o.Items[0].Quantity = 1 << 62; o.Items[0].UnitAmount = 1 << 40 }, []string{"items[0].quantity"}},
		{"every problem at once", func(o *action.Order) { o.OrderID = ""; o.Currency = ""; o.Customer.Name = "" }, []string{"order_id", "customer.name", "currency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOrder()
			tt.change(&o)
			var got []string
			for _, e := range o.Normalize().Validate() {
				got = append(got, e.Field)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantFields) {
				t.Errorf("invalid fields = %v, want %v", got, tt.wantFields)
			}
		})
	}
}

func TestOrderNormalize(t *testing.T) {
	o := testOrder()
	o.OrderID, o.Currency, o.Customer.Email = " T-1 ", "EUR", " ada@example.com "
	got := o.Normalize()
	if got.OrderID != "T-1" || got.Currency != "eur" || got.Customer.Email != "ada@example.com" {
		t.Errorf("Normalize = %+v", got)
	}
	if o.OrderID != " T-1 " {
		t.Errorf("Normalize changed its receiver's copy")
	}
}

// TestEveryStepRunsOnAProvidersQueue: a step without a system would send
// its activity to a queue no worker polls, and wait there for ever.
func TestEveryStepRunsOnAProvidersQueue(t *testing.T) {
	for _, s := range OrderSteps {
		if s.System.Name == "" || len(s.Activities) == 0 {
			t.Errorf("step %s has no system or activity", s.Name)
		}
	}
	for activity, step := range activitySteps {
		if OrderSteps.Spec(step).System.Name == "" {
			t.Errorf("activity %s runs for step %s, which has no system", activity, step)
		}
	}
}
