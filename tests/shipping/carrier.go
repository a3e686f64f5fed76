// Package shipping is a system and a business action declared entirely
// outside handoff's core, as a deployment adds its own: a parcel carrier
// (its fake server, its client, its contract), the system "shipping" that
// uses it, and the action "ship a parcel" (a label, then a pickup), with
// its table of steps and a reconciliation phase. It registers itself in
// init; the tests prove it runs end to end — parked, retried, reconciled —
// on the core's machinery without a change to it.
package shipping

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/handoff-hq/handoff/providers"
)

// Label is a shipping label at the carrier.
type Label struct {
	ID          string `json:"id"`
	ExternalRef string `json:"external_ref"`
	Address     string `json:"address"`
	Created     int64  `json:"created"`
}

// Pickup is a parcel pickup at the carrier.
type Pickup struct {
	ID          string `json:"id"`
	ExternalRef string `json:"external_ref"`
	Label       string `json:"label"`
}

// Carrier is the fake carrier's HTTP API: POST and GET /labels, POST and
// GET /pickups, each create honouring Idempotency-Key, each list filtered
// by ?external_ref= or paged by ?cursor=.
type Carrier struct {
	mu      sync.Mutex
	seq     int
	labels  []Label
	pickups []Pickup
	reject  int
}

// NewCarrier returns a carrier with no records.
func NewCarrier() *Carrier { return &Carrier{} }

// RejectLabels makes the next n label creates answer 422, as a carrier
// refusing an address does.
func (c *Carrier) RejectLabels(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reject = n
}

// DeletePickups removes the pickups with the external reference, as
// records lost behind handoff's back.
func (c *Carrier) DeletePickups(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pickups = slices.DeleteFunc(c.pickups, func(p Pickup) bool { return p.ExternalRef == ref })
}

// Counts reports how many labels and pickups carry the reference.
func (c *Carrier) Counts(labelRef, pickupRef string) (labels, pickups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.labels {
		labels += boolInt(l.ExternalRef == labelRef)
	}
	for _, p := range c.pickups {
		pickups += boolInt(p.ExternalRef == pickupRef)
	}
	return labels, pickups
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *Carrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := r.Header.Get(providers.HeaderIdempotencyKey)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/labels":
		var req struct{ Address string }
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Address == "" {
			writeError(w, http.StatusBadRequest, "address_missing", "an address is required")
			return
		}
		if i := slices.IndexFunc(c.labels, func(l Label) bool { return l.ExternalRef == key }); i >= 0 {
			writeJSON(w, c.labels[i])
			return
		}
		if c.reject > 0 {
			c.reject--
			writeError(w, http.StatusUnprocessableEntity, "address_undeliverable", "the carrier does not deliver to this address")
			return
		}
		c.seq++
		l := Label{ID: fmt.Sprintf("lbl_%04d", c.seq), ExternalRef: key, Address: req.Address, Created: time.Now().Unix()}
		c.labels = append(c.labels, l)
		writeJSON(w, l)
	case r.Method == http.MethodPost && r.URL.Path == "/pickups":
		var req struct{ Label string }
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Label == "" {
			writeError(w, http.StatusBadRequest, "label_missing", "a label is required")
			return
		}
		if i := slices.IndexFunc(c.pickups, func(p Pickup) bool { return p.ExternalRef == key }); i >= 0 {
			writeJSON(w, c.pickups[i])
			return
		}
		c.seq++
		p := Pickup{ID: fmt.Sprintf("pu_%04d", c.seq), ExternalRef: key, Label: req.Label}
		c.pickups = append(c.pickups, p)
		writeJSON(w, p)
	case r.Method == http.MethodGet && r.URL.Path == "/labels":
		writeJSON(w, page(c.labels, r.URL.Query(), func(l Label) string { return l.ExternalRef }, func(l Label) string { return l.ID }))
	case r.Method == http.MethodGet && r.URL.Path == "/pickups":
		writeJSON(w, page(c.pickups, r.URL.Query(), func(p Pickup) string { return p.ExternalRef }, func(p Pickup) string { return p.ID }))
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// listPage is every list's answer.
type listPage[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func page[T any](all []T, q url.Values, ref, id func(T) string) listPage[T] {
	out := listPage[T]{Data: []T{}}
	if refs := q["external_ref"]; len(refs) > 0 {
		for _, r := range all {
			if slices.Contains(refs, ref(r)) {
				out.Data = append(out.Data, r)
			}
		}
		return out
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	cursor := q.Get("cursor")
	for _, r := range all {
		if cursor != "" && id(r) <= cursor {
			continue
		}
		if len(out.Data) == limit {
			out.NextCursor = id(out.Data[len(out.Data)-1])
			break
		}
		out.Data = append(out.Data, r)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"type": "invalid_request_error", "code": code, "message": msg}})
}

// Client is the carrier's client: every call goes through handoff's one
// HTTP client, so keys, timeouts, pauses and classification apply.
type Client struct {
	http *providers.HTTPClient
}

// NewClient returns a client for the carrier at baseURL.
func NewClient(baseURL string, opts providers.HTTPOptions) *Client {
	return &Client{http: providers.NewHTTPClient(System.Name, baseURL, opts)}
}

// CreateLabel asks for a label.
func (c *Client) CreateLabel(ctx context.Context, call providers.Call, address string) (Label, error) {
	var out Label
	err := c.http.Do(ctx, providers.Request{Operation: "create_label", Method: http.MethodPost, Path: "/labels", Call: call, Body: map[string]string{"address": address}}, &out)
	return out, err
}

// FindLabel looks a label up by its external reference.
func (c *Client) FindLabel(ctx context.Context, call providers.Call, ref string) (Label, bool, error) {
	return find[Label](ctx, c, call, "find_label", "/labels", ref)
}

// SchedulePickup asks for a pickup of a labelled parcel.
func (c *Client) SchedulePickup(ctx context.Context, call providers.Call, label string) (Pickup, error) {
	var out Pickup
	err := c.http.Do(ctx, providers.Request{Operation: "schedule_pickup", Method: http.MethodPost, Path: "/pickups", Call: call, Body: map[string]string{"label": label}}, &out)
	return out, err
}

// FindPickup looks a pickup up by its external reference.
func (c *Client) FindPickup(ctx context.Context, call providers.Call, ref string) (Pickup, bool, error) {
	return find[Pickup](ctx, c, call, "find_pickup", "/pickups", ref)
}

// ListLabels returns one page of labels after the cursor.
func (c *Client) ListLabels(ctx context.Context, call providers.Call, cursor string, limit int) ([]Label, string, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out listPage[Label]
	err := c.http.Do(ctx, providers.Request{Operation: "list_labels", Method: http.MethodGet, Path: "/labels?" + q.Encode(), Call: call}, &out)
	return out.Data, out.NextCursor, err
}

// FindPickups returns the pickups with one of the references.
func (c *Client) FindPickups(ctx context.Context, call providers.Call, refs []string) ([]Pickup, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	var out listPage[Pickup]
	err := c.http.Do(ctx, providers.Request{Operation: "find_pickups", Method: http.MethodGet, Path: "/pickups?" + url.Values{"external_ref": refs}.Encode(), Call: call}, &out)
	return out.Data, err
}

func find[T any](ctx context.Context, c *Client, call providers.Call, op, path, ref string) (T, bool, error) {
	var out listPage[T]
	var zero T
	if err := c.http.Do(ctx, providers.Request{Operation: op, Method: http.MethodGet, Path: path + "?" + url.Values{"external_ref": {ref}}.Encode(), Call: call}, &out); err != nil {
		return zero, false, err
	}
	if len(out.Data) == 0 {
		return zero, false, nil
	}
	return out.Data[0], true, nil
}
