package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/providers"
)

func newTestSandbox(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(Options{SettleDelay: 10 * time.Millisecond})
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return s, srv
}

func newHTTPServer(t *testing.T, s *Server) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv.URL
}

func post(t *testing.T, url, key, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestCreateHonoursIdempotencyKeys(t *testing.T) {
	s, srv := newTestSandbox(t)
	url := srv.URL + "/payments/charges"
	body := `{"amount":500,"currency":"eur","customer":"ct_1","email":"a@example.com"}`

	status, _, first := post(t, url, "order/1/charge", body)
	if status != http.StatusOK {
		t.Fatalf("first create: %d %s", status, first)
	}
	// Same key, same parameters in another order and spacing: the stored answer.
	status, header, again := post(t, url, "order/1/charge", `{"currency":"eur", "amount":500,"email":"a@example.com","customer":"ct_1"}`)
	if status != http.StatusOK || again != first || header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %q replayed=%q, want 200 with the first answer %q", status, again, header.Get("Idempotent-Replayed"), first)
	}
	// Same key, other parameters: 409.
	status, _, conflict := post(t, url, "order/1/charge", `{"amount":501,"currency":"eur","customer":"ct_1"}`)
	if status != http.StatusConflict || !strings.Contains(conflict, "idempotency_error") {
		t.Errorf("other parameters: %d %s, want 409 idempotency_error", status, conflict)
	}
	st := s.State()["payments"]["charges"]
	if st.Count != 1 || st.ByIdempotencyKey["order/1/charge"] != 1 || st.ByExternalRef["order/1/charge"] != 1 {
		t.Errorf("state = %+v, want one charge under the key", st)
	}
}

func TestConcurrentCreatesWithOneKeyMakeOneRecord(t *testing.T) {
	s, srv := newTestSandbox(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, srv.URL+"/mail/messages", "order/2/confirmation", `{"to":"a@example.com","subject":"hi","text":"x"}`)
		}()
	}
	wg.Wait()
	if got := s.State()["mail"]["messages"].Count; got != 1 {
		t.Errorf("messages = %d, want 1", got)
	}
}

func TestCreateValidates(t *testing.T) {
	_, srv := newTestSandbox(t)
	tests := []struct {
		name, path, body string
		wantCode         string
	}{
		{"charge without amount", "/payments/charges", `{"currency":"eur"}`, "amount_invalid"},
		{"charge with bad currency", "/payments/charges", `{"amount":1,"currency":"euro"}`, "currency_invalid"},
		{"invoice without lines", "/accounting/invoices", `{"amount":1,"currency":"eur"}`, "lines_missing"},
		{"contact without e-mail", "/crm/contacts", `{"name":"x"}`, "email_invalid"},
		{"message without recipient", "/mail/messages", `{"subject":"x"}`, "to_invalid"},
		{"not JSON", "/payments/charges", `{`, "body_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := post(t, srv.URL+tt.path, "k-"+tt.name, tt.body)
			if status != http.StatusBadRequest || !strings.Contains(body, tt.wantCode) {
				t.Errorf("%d %s, want 400 %s", status, body, tt.wantCode)
			}
		})
	}
}

func TestChargesSettleAsynchronously(t *testing.T) {
	_, srv := newTestSandbox(t)
	c := NewClient("payments", srv.URL+"/payments", providers.HTTPOptions{})
	ctx := context.Background()
	ok, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/3/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur", Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	declined, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/4/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur", Email: "decline@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if ok.Status != providers.ChargePending || declined.Status != providers.ChargePending {
		t.Errorf("new charges = %s, %s; want pending", ok.Status, declined.Status)
	}
	time.Sleep(50 * time.Millisecond)
	for _, tt := range []struct {
		id, want, code string
	}{{ok.ID, providers.ChargeSucceeded, ""}, {declined.ID, providers.ChargeFailed, "card_declined"}} {
		got, err := c.GetCharge(ctx, providers.Call{}, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tt.want || got.FailureCode != tt.code {
			t.Errorf("charge %s = %s %q, want %s %q", tt.id, got.Status, got.FailureCode, tt.want, tt.code)
		}
	}
}

func TestFindByExternalReference(t *testing.T) {
	_, srv := newTestSandbox(t)
	c := NewClient("accounting", srv.URL+"/accounting", providers.HTTPOptions{})
	ctx := context.Background()
	call := providers.Call{IdempotencyKey: "order/5/invoice"}
	if _, found, err := c.FindInvoice(ctx, call, call.IdempotencyKey); err != nil || found {
		t.Fatalf("before create: found=%v err=%v, want not found", found, err)
	}
	inv, err := c.CreateInvoice(ctx, call, providers.InvoiceRequest{Amount: 100, Currency: "EUR", Lines: []providers.InvoiceLine{{SKU: "a", Quantity: 1, UnitAmount: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	got, found, err := c.FindInvoice(ctx, call, call.IdempotencyKey)
	if err != nil || !found || got.ID != inv.ID || got.Currency != "eur" {
		t.Errorf("find = %+v found=%v err=%v, want invoice %s in eur", got, found, err, inv.ID)
	}
}

func TestGetUnknownIsNotFoundAndClassifiedPermanent(t *testing.T) {
	_, srv := newTestSandbox(t)
	c := NewClient("payments", srv.URL+"/payments", providers.HTTPOptions{})
	_, err := c.GetCharge(context.Background(), providers.Call{}, "ch_missing")
	if got := providers.CategoryOf(err); got != action.CategoryPermanent {
		t.Errorf("category = %s (%v), want permanent", got, err)
	}
}

func TestListPagesWithPageTokens(t *testing.T) {
	_, srv := newTestSandbox(t)
	for i := range 7 {
		post(t, srv.URL+"/crm/contacts", fmt.Sprintf("k%d", i), fmt.Sprintf(`{"email":"c%d@example.com","name":"C"}`, i))
	}
	var seen []string
	token := ""
	pages := 0
	for {
		resp, err := http.Get(srv.URL + "/crm/contacts?page_size=3&page_token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		var page listPage[providers.Contact]
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		pages++
		for _, c := range page.Data {
			seen = append(seen, c.ID)
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	if pages != 3 || len(seen) != 7 {
		t.Errorf("pages = %d, records = %v; want 3 pages and 7 records", pages, seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Errorf("records out of order or repeated: %v", seen)
		}
	}
	resp, err := http.Get(srv.URL + "/crm/contacts?page_size=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("page_size=0: %d, want 400", resp.StatusCode)
	}
}

func TestUpsertContactUpdatesByEmail(t *testing.T) {
	s, srv := newTestSandbox(t)
	post(t, srv.URL+"/crm/contacts", "order/1/customer", `{"email":"a@example.com","name":"Ada"}`)
	_, _, body := post(t, srv.URL+"/crm/contacts", "order/2/customer", `{"email":"A@example.com","name":"Ada L."}`)
	var c providers.Contact
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "Ada L." {
		t.Errorf("name = %q, want the update", c.Name)
	}
	if got := s.State()["crm"]["contacts"].Count; got != 1 {
		t.Errorf("contacts = %d, want 1", got)
	}
}

func TestCancelChargeStopsAPendingChargeAndAnswersASettledOneAsItIs(t *testing.T) {
	_, srv := newTestSandbox(t)
	c := NewClient("payments", srv.URL+"/payments", providers.HTTPOptions{})
	ctx := context.Background()
	held, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/H-1/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur", Email: HoldEmailPrefix + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // past the settle delay: a held charge stays pending
	got, err := c.CancelCharge(ctx, providers.Call{IdempotencyKey: "order/H-1/cancel_charge"}, held.ID)
	if err != nil || got.Status != providers.ChargeCanceled {
		t.Fatalf("cancel a held charge = %+v, %v; want canceled", got, err)
	}
	if again, err := c.CancelCharge(ctx, providers.Call{}, held.ID); err != nil || again.Status != providers.ChargeCanceled {
		t.Errorf("cancel again = %+v, %v; want the canceled charge", again, err)
	}

	paid, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/H-2/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur", Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got, err := c.CancelCharge(ctx, providers.Call{}, paid.ID); err != nil || got.Status != providers.ChargeSucceeded {
		t.Errorf("cancel a settled charge = %+v, %v; want it answered succeeded", got, err)
	}
}

func TestFindRefundFindsARefundWhoeverMadeIt(t *testing.T) {
	_, srv := newTestSandbox(t)
	c := NewClient("payments", srv.URL+"/payments", providers.HTTPOptions{})
	ctx := context.Background()
	ch, err := c.CreateCharge(ctx, providers.Call{IdempotencyKey: "order/R-1/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur", Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, found, err := c.FindRefund(ctx, providers.Call{}, ch.ID); err != nil || found {
		t.Fatalf("before any refund: found=%v %v", found, err)
	}
	// A person refunds it at the provider, under a key of their own.
	byHand, err := c.RefundCharge(ctx, providers.Call{IdempotencyKey: "dashboard-123"}, providers.RefundRequest{Charge: ch.ID})
	if err != nil {
		t.Fatal(err)
	}
	re, found, err := c.FindRefund(ctx, providers.Call{}, ch.ID)
	if err != nil || !found || re.ID != byHand.ID {
		t.Errorf("find refund = %+v found=%v %v, want %s", re, found, err, byHand.ID)
	}
}

// TestWebhookDelayHoldsEveryEvent proves the configured delay: a charge's
// first event is sent no sooner than the delay after the charge.
func TestWebhookDelayHoldsEveryEvent(t *testing.T) {
	received := make(chan time.Time, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case received <- time.Now():
		default:
		}
	}))
	defer hook.Close()
	const settle, delay = 10 * time.Millisecond, 300 * time.Millisecond
	s := NewServer(Options{SettleDelay: settle, WebhookDelay: delay, WebhookURL: hook.URL, WebhookSecret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="})
	url := newHTTPServer(t, s)
	c := NewClient("payments", url+"/payments", providers.HTTPOptions{})
	created := time.Now()
	if _, err := c.CreateCharge(context.Background(), providers.Call{IdempotencyKey: "order/5/charge"}, providers.ChargeRequest{Amount: 100, Currency: "eur", Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-received:
		if waited := at.Sub(created); waited < delay {
			t.Errorf("the event came %s after the charge, before the delay (%s)", waited, delay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
}
