package providers

import (
	"fmt"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/contracts"
)

func TestDriftLogTakesReturnsAndBounds(t *testing.T) {
	l := NewDriftLog()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	d := contracts.Drift{Kind: contracts.DriftUnknownField, Field: "risk", Example: "integer"}
	if !l.record("payments", "create_charge", d, t0) || l.record("payments", "create_charge", d, t0.Add(time.Second)) {
		t.Fatal("the first sighting is new, the second is not")
	}
	taken := l.Take()
	if len(taken) != 1 || taken[0].Count != 2 || !taken[0].First.Equal(t0) || !taken[0].Last.Equal(t0.Add(time.Second)) {
		t.Fatalf("taken = %+v, want one sighting counted twice", taken)
	}
	if again := l.Take(); len(again) != 0 {
		t.Fatalf("taken twice: %+v", again)
	}
	// Not sent: kept for the next report, with what was seen meanwhile.
	l.record("payments", "create_charge", d, t0.Add(time.Minute))
	l.Return(taken)
	if back := l.Take(); len(back) != 1 || back[0].Count != 3 || !back[0].First.Equal(t0) {
		t.Fatalf("after Return = %+v, want 3 sightings since t0", back)
	}
	for i := range maxDriftKeys + 50 {
		l.record("crm", "get_contact", contracts.Drift{Kind: contracts.DriftUnknownField, Field: fmt.Sprintf("f%d", i)}, t0)
	}
	if got := len(l.Take()); got > maxDriftKeys {
		t.Errorf("kept %d sightings, want at most %d", got, maxDriftKeys)
	}
}
