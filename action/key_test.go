package action

import (
	"errors"
	"testing"
)

func TestKeysFormatAndParse(t *testing.T) {
	k := OrderKey("A-1001")
	if got := k.String(); got != "order/A-1001" {
		t.Errorf("OrderKey = %q", got)
	}
	if got := k.Step("charge").String(); got != "order/A-1001/charge" {
		t.Errorf("step key = %q", got)
	}
	tests := []struct {
		in      string
		want    StepKey
		wantErr bool
	}{
		{"order/A-1001/charge", OrderKey("A-1001").Step("charge"), false},
		{"order/a.b:c_d-e/void_invoice", OrderKey("a.b:c_d-e").Step("void_invoice"), false},
		{"customer/C-7/crm", Key{Kind: "customer", ID: "C-7"}.Step("crm"), false},
		{"order/A-1001", StepKey{}, true},
		{"order//charge", StepKey{}, true},
		{"Order/A/charge", StepKey{}, true},
		{"order/A/B/charge", StepKey{}, true},
		{"order/A-1001/Charge", StepKey{}, true},
		{"", StepKey{}, true},
	}
	for _, tt := range tests {
		got, err := ParseStepKey(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseStepKey(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, errKeyMismatch) {
			t.Errorf("ParseStepKey(%q) error %v does not wrap the mismatch", tt.in, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("round trip of %q gave %q", tt.in, got.String())
		}
	}
}
