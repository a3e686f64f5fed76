// Package stripe implements providers.Payments on Stripe's PaymentIntents
// API.
//
// It speaks Stripe's REST API through handoff's shared providers.HTTPClient
// rather than through stripe-go: every provider call must go through the one
// client that sets the Idempotency-Key, applies the configured timeouts and
// classifies failures in one table, and stripe-go brings its own HTTP layer
// with its own network retries, which would retry underneath Temporal's.
// The calls handoff needs are a few lines each.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/handoff-hq/handoff/providers"
	"github.com/handoff-hq/handoff/redact"
	"github.com/handoff-hq/handoff/webhooks"
)

// DefaultURL is Stripe's API.
const DefaultURL = "https://api.stripe.com"

// APIVersion pins the shape of Stripe's answers.
const APIVersion = "2024-06-20"

// MetadataExternalRef is the metadata key holding handoff's external
// reference ("<workflow id>/<step>") on every PaymentIntent it creates; the
// webhook decoder reads the same key.
const MetadataExternalRef = webhooks.StripeExternalRefKey

// Client is a Payments provider on Stripe.
type Client struct {
	http *providers.HTTPClient
}

var _ providers.Payments = (*Client)(nil)

// NewClient returns a client for Stripe's API at baseURL (DefaultURL in
// production, stripe-mock in tests) using the secret key.
func NewClient(baseURL, secretKey string, opts providers.HTTPOptions) *Client {
	opts.Auth = providers.APIKey{System: "payments", Key: secretKey}
	return &Client{http: providers.NewHTTPClient("payments", baseURL, opts)}
}

// paymentIntent is the part of Stripe's PaymentIntent handoff reads.
type paymentIntent struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Customer         string            `json:"customer"`
	Created          int64             `json:"created"`
	Metadata         map[string]string `json:"metadata"`
	LastPaymentError *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"last_payment_error"`
}

// CreateCharge creates a PaymentIntent for the order. The customer pays it
// in the application (with its client secret), and the order waits until it
// succeeds or fails. The call's idempotency key is sent as Stripe's
// Idempotency-Key and kept in the metadata, so that FindCharge can adopt
// the PaymentIntent later.
func (c *Client) CreateCharge(ctx context.Context, call providers.Call, req providers.ChargeRequest) (providers.Charge, error) {
	form := url.Values{
		"amount":                                {strconv.FormatInt(req.Amount, 10)},
		"currency":                              {strings.ToLower(req.Currency)},
		"automatic_payment_methods[enabled]":    {"true"},
		"description":                           {req.Description},
		"metadata[" + MetadataExternalRef + "]": {call.IdempotencyKey},
	}
	if req.Email != "" {
		form.Set("receipt_email", req.Email)
	}
	var pi paymentIntent
	err := c.http.Do(ctx, providers.Request{Operation: "create_charge", Method: http.MethodPost, Path: "/v1/payment_intents", Call: call, Form: form, Header: versionHeader}, &pi)
	if err != nil {
		return providers.Charge{}, err
	}
	return pi.charge(), nil
}

// GetCharge retrieves a PaymentIntent.
func (c *Client) GetCharge(ctx context.Context, call providers.Call, id string) (providers.Charge, error) {
	var pi paymentIntent
	err := c.http.Do(ctx, providers.Request{Operation: "get_charge", Method: http.MethodGet, Path: "/v1/payment_intents/" + url.PathEscape(id), Call: call, Header: versionHeader}, &pi)
	if err != nil {
		return providers.Charge{}, err
	}
	return pi.charge(), nil
}

// FindCharge searches PaymentIntents by handoff's external reference.
// Stripe's search index lags writes by up to a minute; the Idempotency-Key
// covers that window, since a retried create returns the stored answer.
func (c *Client) FindCharge(ctx context.Context, call providers.Call, externalRef string) (providers.Charge, bool, error) {
	q := url.Values{"query": {fmt.Sprintf("metadata[%q]:%q", MetadataExternalRef, externalRef)}, "limit": {"1"}}
	var page struct {
		Data []paymentIntent `json:"data"`
	}
	err := c.http.Do(ctx, providers.Request{Operation: "find_charge", Method: http.MethodGet, Path: "/v1/payment_intents/search?" + q.Encode(), Call: call, Header: versionHeader}, &page)
	if err != nil {
		return providers.Charge{}, false, err
	}
	for _, pi := range page.Data {
		if pi.Metadata[MetadataExternalRef] == externalRef {
			return pi.charge(), true, nil
		}
	}
	return providers.Charge{}, false, nil
}

// CancelCharge cancels a PaymentIntent that has not succeeded, so that the
// customer can no longer pay an order that is gone. Stripe refuses to
// cancel one that succeeded or is processing (payment_intent_unexpected_state);
// then the PaymentIntent is read and returned as it stands.
func (c *Client) CancelCharge(ctx context.Context, call providers.Call, id string) (providers.Charge, error) {
	form := url.Values{"cancellation_reason": {"abandoned"}}
	var pi paymentIntent
	err := c.http.Do(ctx, providers.Request{Operation: "cancel_charge", Method: http.MethodPost, Path: "/v1/payment_intents/" + url.PathEscape(id) + "/cancel", Call: call, Form: form, Header: versionHeader}, &pi)
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Code == "payment_intent_unexpected_state" {
		return c.GetCharge(ctx, call, id)
	}
	if err != nil {
		return providers.Charge{}, err
	}
	return pi.charge(), nil
}

// FindRefund lists the PaymentIntent's refunds and returns one that took or
// is taking the money back, whoever made it.
func (c *Client) FindRefund(ctx context.Context, call providers.Call, chargeID string) (providers.Refund, bool, error) {
	q := url.Values{"payment_intent": {chargeID}, "limit": {"10"}}
	var page struct {
		Data []refund `json:"data"`
	}
	err := c.http.Do(ctx, providers.Request{Operation: "find_refund", Method: http.MethodGet, Path: "/v1/refunds?" + q.Encode(), Call: call, Header: versionHeader}, &page)
	if err != nil {
		return providers.Refund{}, false, err
	}
	for _, re := range page.Data {
		switch re.Status {
		case "succeeded", "pending", "requires_action":
			return re.refund(chargeID), true, nil
		}
	}
	return providers.Refund{}, false, nil
}

// refund is the part of Stripe's Refund handoff reads.
type refund struct {
	ID            string            `json:"id"`
	Amount        int64             `json:"amount"`
	Status        string            `json:"status"`
	PaymentIntent string            `json:"payment_intent"`
	Metadata      map[string]string `json:"metadata"`
}

func (re refund) refund(chargeID string) providers.Refund {
	return providers.Refund{ID: re.ID, ExternalRef: re.Metadata[MetadataExternalRef], Charge: chargeID, Amount: re.Amount, Status: re.Status}
}

// RefundCharge refunds a PaymentIntent in full.
func (c *Client) RefundCharge(ctx context.Context, call providers.Call, req providers.RefundRequest) (providers.Refund, error) {
	form := url.Values{"payment_intent": {req.Charge}, "metadata[" + MetadataExternalRef + "]": {call.IdempotencyKey}}
	var re refund
	err := c.http.Do(ctx, providers.Request{Operation: "create_refund", Method: http.MethodPost, Path: "/v1/refunds", Call: call, Form: form, Header: versionHeader}, &re)
	if err != nil {
		return providers.Refund{}, err
	}
	out := re.refund(req.Charge)
	out.ExternalRef = call.IdempotencyKey
	return out, nil
}

var _ providers.ChargeLister = (*Client)(nil)

// ListCharges lists one page of PaymentIntents, newest first as Stripe
// lists them, created within the page's window; the cursor is the last
// PaymentIntent of the page before (Stripe's starting_after).
// PaymentIntents handoff did not create are listed too: they carry no
// external reference, and reconciliation passes them by.
func (c *Client) ListCharges(ctx context.Context, call providers.Call, page providers.Page) ([]providers.Charge, string, error) {
	limit := min(max(page.Limit, 1), 100) // Stripe's bounds
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if page.Cursor != "" {
		q.Set("starting_after", page.Cursor)
	}
	if !page.After.IsZero() {
		q.Set("created[gte]", strconv.FormatInt(page.After.Unix(), 10))
	}
	if !page.Before.IsZero() {
		q.Set("created[lte]", strconv.FormatInt(page.Before.Unix(), 10))
	}
	var list struct {
		Data    []paymentIntent `json:"data"`
		HasMore bool            `json:"has_more"`
	}
	err := c.http.Do(ctx, providers.Request{Operation: "list_charges", Method: http.MethodGet, Path: "/v1/payment_intents?" + q.Encode(), Call: call, Header: versionHeader}, &list)
	if err != nil {
		return nil, "", err
	}
	out := make([]providers.Charge, 0, len(list.Data))
	for _, pi := range list.Data {
		out = append(out, pi.charge())
	}
	next := ""
	if list.HasMore && len(list.Data) > 0 {
		next = list.Data[len(list.Data)-1].ID
	}
	return out, next, nil
}

// searchClauses is how many clauses Stripe's search accepts in one query.
const searchClauses = 10

// FindChargesByRefs finds the PaymentIntents with one of the external
// references, with Stripe's search (ten references per query). The search
// index lags writes by up to a minute; reconciliation leaves records that
// young alone (HANDOFF_RECONCILE_GRACE).
func (c *Client) FindChargesByRefs(ctx context.Context, call providers.Call, refs []string) ([]providers.Charge, error) {
	var out []providers.Charge
	for batch := range slices.Chunk(refs, searchClauses) {
		clauses := make([]string, len(batch))
		for i, ref := range batch {
			clauses[i] = fmt.Sprintf("metadata[%q]:%q", MetadataExternalRef, ref)
		}
		q := url.Values{"query": {strings.Join(clauses, " OR ")}, "limit": {"100"}}
		for {
			var page struct {
				Data     []paymentIntent `json:"data"`
				HasMore  bool            `json:"has_more"`
				NextPage string          `json:"next_page"`
			}
			err := c.http.Do(ctx, providers.Request{Operation: "find_charges", Method: http.MethodGet, Path: "/v1/payment_intents/search?" + q.Encode(), Call: call, Header: versionHeader}, &page)
			if err != nil {
				return nil, err
			}
			for _, pi := range page.Data {
				if slices.Contains(batch, pi.Metadata[MetadataExternalRef]) {
					out = append(out, pi.charge())
				}
			}
			if !page.HasMore || page.NextPage == "" {
				break
			}
			q.Set("page", page.NextPage)
		}
	}
	return out, nil
}

var versionHeader = http.Header{"Stripe-Version": {APIVersion}}

// charge maps a PaymentIntent to handoff's charge.
func (pi paymentIntent) charge() providers.Charge {
	ch := providers.Charge{
		ID: pi.ID, ExternalRef: pi.Metadata[MetadataExternalRef], Status: ChargeStatus(pi.Status),
		Amount: pi.Amount, Currency: pi.Currency, Customer: pi.Customer, Created: pi.Created,
	}
	if pi.LastPaymentError != nil {
		ch.FailureCode, ch.FailureMessage = pi.LastPaymentError.Code, redact.Text(pi.LastPaymentError.Message)
	}
	return ch
}

// ChargeStatus maps a PaymentIntent status to a charge status by Stripe's
// lifecycle: succeeded is paid and canceled is final; everything else is
// still pending. In particular a PaymentIntent back in
// requires_payment_method after a declined attempt is not final: the
// customer may pay it with another method, so the order keeps waiting (its
// failure code stays on the charge), and only cancelling it ends it.
func ChargeStatus(status string) string {
	switch status {
	case "succeeded":
		return providers.ChargeSucceeded
	case "canceled":
		return providers.ChargeCanceled
	default:
		return providers.ChargePending
	}
}
