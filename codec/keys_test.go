package codec

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
)

type inner struct {
	ChargeID string `json:"charge_id"`
	Seen     []string
}

type embedded struct {
	RemoteRef string `json:"remote_ref"`
}

type outer struct {
	embedded
	OrderID   string            `json:"order_id"`
	Wait      time.Duration     `json:"wait"`
	At        time.Time         `json:"at"`
	Resume    *inner            `json:"resume"`
	Steps     []inner           `json:"steps"`
	BySystem  map[string]inner  `json:"by_system"`
	Counts    map[string]int    `json:"counts"`
	Labels    map[string]string `json:"labels,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	Untouched string
}

// TestEarlierFieldNamesAreRead reads a payload written with Go field names
// (as handoff wrote them before snake_case) into the fields named now.
func TestEarlierFieldNamesAreRead(t *testing.T) {
	at := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	earlier := `{"OrderID":"A-1","Wait":30000000000,"At":"2026-01-15T10:00:00Z","RemoteRef":"ch_1",
		"Resume":{"ChargeID":"ch_1","Seen":["e1"]},"Steps":[{"ChargeID":"ch_2"}],
		"BySystem":{"Payments":{"ChargeID":"ch_3"}},"Counts":{"InvoiceMissing":2},"RequestID":"r-1","Untouched":"u","Unknown":1}`
	want := outer{embedded: embedded{RemoteRef: "ch_1"}, OrderID: "A-1", Wait: 30 * time.Second, At: at,
		Resume: &inner{ChargeID: "ch_1", Seen: []string{"e1"}}, Steps: []inner{{ChargeID: "ch_2"}},
		BySystem: map[string]inner{"Payments": {ChargeID: "ch_3"}}, Counts: map[string]int{"InvoiceMissing": 2},
		RequestID: "r-1", Untouched: "u"}
	for _, dc := range []converter.DataConverter{Plain, DataConverter(ring(t, newKey(t, "k1")))} {
		p, err := dc.ToPayload(json.RawMessage(earlier))
		if err != nil {
			t.Fatal(err)
		}
		var got outer
		if err := dc.FromPayload(p, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read\n%+v\nwant\n%+v", got, want)
		}
	}

	// A key written both ways keeps the snake_case one; today's payloads
	// read as they always did.
	var got outer
	p, _ := Plain.ToPayload(json.RawMessage(`{"OrderID":"old","order_id":"new"}`))
	if err := Plain.FromPayload(p, &got); err != nil || got.OrderID != "new" {
		t.Errorf("both names: %q %v, want new", got.OrderID, err)
	}
	p, _ = Plain.ToPayload(want)
	got = outer{}
	if err := Plain.FromPayload(p, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("round trip: %+v %v", got, err)
	}
}
