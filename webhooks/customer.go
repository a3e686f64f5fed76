package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/handoff-hq/handoff/action"
)

// ErrUnlinked means a well-formed event about a customer record that holds
// no customer's reference yet: it belongs to no customer until one is
// matched to it.
var ErrUnlinked = errors.New("webhook event about a record no customer holds yet")

// customerEventTypes are the record events each system sends about its
// customer records.
var customerEventTypes = map[string][]string{
	"crm":        {"contact.created", "contact.updated"},
	"accounting": {"customer.created", "customer.updated"},
}

// CustomerEvents reports whether the system sends customer record events.
func CustomerEvents(system string) bool { _, ok := customerEventTypes[system]; return ok }

// DecodeCustomer decodes a verified Standard Webhooks event about a
// customer record of the system: the record as it now stands, and the
// customer it belongs to (from its reference, customer/<id>).
func DecodeCustomer(system, id string, body []byte) (customerID string, ch action.CustomerChange, err error) {
	var e struct {
		Type      string                     `json:"type"`
		Timestamp string                     `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return "", ch, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !eventIDPattern.MatchString(id) {
		return "", ch, fmt.Errorf("%w: event id %q", ErrMalformed, id)
	}
	if !slices.Contains(customerEventTypes[system], e.Type) {
		return "", ch, fmt.Errorf("%w: %s", ErrUnhandled, e.Type)
	}
	occurred, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return "", ch, fmt.Errorf("%w: timestamp: %w", ErrMalformed, err)
	}
	ch = action.CustomerChange{Source: system, EventID: id, Type: e.Type, OccurredAt: occurred, Fields: map[string]string{}}
	for k, raw := range e.Data {
		var err error
		switch {
		case k == "version":
			err = json.Unmarshal(raw, &ch.Version)
		case k == "id":
			err = json.Unmarshal(raw, &ch.RecordID)
		case k == "external_ref":
			err = json.Unmarshal(raw, &ch.ExternalRef)
		case slices.Contains(action.CustomerFields, k):
			var v string
			err = json.Unmarshal(raw, &v)
			ch.Fields[k] = v
		}
		if err != nil {
			return "", ch, fmt.Errorf("%w: data.%s: %w", ErrMalformed, k, err)
		}
	}
	if ch.RecordID == "" || ch.Version < 1 {
		return "", ch, fmt.Errorf("%w: data.id and a positive data.version are required", ErrMalformed)
	}
	if ch.ExternalRef == "" {
		return "", ch, ErrUnlinked
	}
	k, err := action.ParseKey(ch.ExternalRef)
	if err != nil || k.Kind != action.KindCustomer {
		// Another action's record (an order's contact): no customer's.
		return "", ch, ErrUnlinked
	}
	return k.ID, ch, nil
}
