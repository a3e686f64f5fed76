package worker

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/providers/sandbox"
)

// A deployment's own copy of a contract (HANDOFF_CONTRACTS_DIR) changes
// what handoff does, with no code edit: a field the contract now requires
// is enforced before any request is sent, and a timeout the contract now
// declares bounds the call.
func TestAChangedContractChangesBehaviourWithoutACodeChange(t *testing.T) {
	srv := sandbox.NewServer(sandbox.Options{})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	t.Setenv("HANDOFF_PAYMENTS_URL", hs.URL+"/payments")
	if err := srv.AddFault(sandbox.Fault{System: "payments", Operation: "get_charge", Mode: sandbox.FaultLatency, LatencyMS: 3000}); err != nil {
		t.Fatal(err)
	}

	payments := func(t *testing.T) providers.Payments {
		t.Helper()
		cfg, err := config.Load()
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(config.ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
		clients, err := Clients(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return clients["payments"].(providers.Payments)
	}
	ctx := context.Background()
	req := providers.ChargeRequest{Amount: 2500, Currency: "eur", Description: "Order C-1"} // no e-mail

	// The built-in contract: e-mail is optional, reads have the provider's 15 s.
	p := payments(t)
	ch, err := p.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/C-1/charge"}, req)
	if err != nil {
		t.Fatalf("charge under the built-in contract: %v", err)
	}
	if _, err := p.GetCharge(ctx, providers.Call{}, ch.ID); err != nil {
		t.Fatalf("a 3 s read under the built-in contract: %v", err)
	}

	// The deployment's contract requires an e-mail and gives reads 100 ms.
	data, err := os.ReadFile("../contracts/payments.sandbox.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "required: [amount, currency]", "required: [amount, currency, email]", 1)
	edited = strings.Replace(edited, "path: /charges/{id}\n", "path: /charges/{id}\n    timeout: 100ms\n", 1)
	if edited == string(data) || strings.Count(edited, "timeout: 100ms") != 1 {
		t.Fatal("the contract no longer reads as this test expects")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "payments.sandbox.yaml"), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HANDOFF_CONTRACTS_DIR", dir)
	p = payments(t)

	before := len(srv.Calls("payments", "create_charge", ""))
	if before != 1 {
		t.Fatalf("the sandbox recorded %d charges, want the first one", before)
	}
	_, err = p.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/C-2/charge"}, req)
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Category != action.CategoryPermanent || pe.Type != action.TypeInvalidInput || !strings.Contains(pe.Error(), "email is required") {
		t.Fatalf("a charge without the e-mail the contract requires: %v, want permanent InvalidInput naming email", err)
	}
	if after := len(srv.Calls("payments", "create_charge", "")); after != before {
		t.Errorf("the refused charge reached the provider (%d calls, want %d)", after, before)
	}

	start := time.Now()
	_, err = p.GetCharge(ctx, providers.Call{}, ch.ID)
	if !errors.As(err, &pe) || pe.Category == action.CategoryPermanent {
		t.Fatalf("a 3 s read under a 100 ms contract timeout: %v, want a temporary or ambiguous failure", err)
	}
	if elapsed := time.Since(start); elapsed >= 2*time.Second {
		t.Errorf("the read took %v: the contract's 100 ms timeout did not bound it", elapsed)
	}
}
