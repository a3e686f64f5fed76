package sandbox

import (
	"context"

	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/handoff-hq/handoff/providers"
)

// customerAPI is where a system of the sandbox keeps its customer records
// and what it calls their operations.
type customerAPI struct {
	path   string
	fields []string
	// create, update, get, find and list name the operations.
	create, update, get, find, list string
}

var customerAPIs = map[string]customerAPI{
	"crm": {path: "/contacts", fields: crmFields,
		create: "upsert_contact", update: "update_contact", get: "get_contact", find: "find_contacts", list: "list_contacts"},
	"accounting": {path: "/customers", fields: accountingFields,
		create: "create_customer", update: "update_customer", get: "get_customer", find: "find_customers", list: "list_customers"},
}

var _ providers.Customers = (*Client)(nil)

func (c *Client) customerAPI() (customerAPI, error) {
	api, ok := customerAPIs[c.system]
	if !ok {
		return customerAPI{}, fmt.Errorf("the sandbox's %s keeps no customer records", c.system)
	}
	return api, nil
}

// wireCustomer is a customer record as the sandbox sends it: its fields
// beside id, external_ref and version.
type wireCustomer map[string]any

func (w wireCustomer) record(fields []string) providers.CustomerRecord {
	str := func(k string) string { s, _ := w[k].(string); return s }
	r := providers.CustomerRecord{ID: str("id"), ExternalRef: str("external_ref"), Fields: map[string]string{}}
	if v, ok := w["version"].(float64); ok {
		r.Version = int64(v)
	}
	for _, f := range fields {
		r.Fields[f] = str(f)
	}
	return r
}

// CustomerFields are the customer fields the system keeps.
func (c *Client) CustomerFields() []string {
	api, _ := c.customerAPI()
	return api.fields
}

// FindCustomers finds records by external reference or e-mail address.
func (c *Client) FindCustomers(ctx context.Context, call providers.Call, q providers.CustomerQuery) ([]providers.CustomerRecord, error) {
	api, err := c.customerAPI()
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	if q.ExternalRef != "" {
		v.Set("external_ref", q.ExternalRef)
	}
	if q.Email != "" {
		v.Set("email", q.Email)
	}
	var page listPage[wireCustomer]
	if err := c.http.Do(ctx, providers.Request{Operation: api.find, Method: http.MethodGet, Path: api.path + "?" + v.Encode(), Call: call}, &page); err != nil {
		return nil, err
	}
	out := make([]providers.CustomerRecord, 0, len(page.Data))
	for _, w := range page.Data {
		out = append(out, w.record(api.fields))
	}
	return out, nil
}

// GetCustomer reads one record.
func (c *Client) GetCustomer(ctx context.Context, call providers.Call, id string) (providers.CustomerRecord, error) {
	api, err := c.customerAPI()
	if err != nil {
		return providers.CustomerRecord{}, err
	}
	var w wireCustomer
	err = c.http.Do(ctx, providers.Request{Operation: api.get, Method: http.MethodGet, Path: api.path + "/" + url.PathEscape(id), Call: call}, &w)
	return w.record(api.fields), err
}

func writeBody(fields []string, w providers.CustomerWrite) map[string]string {
	body := map[string]string{}
	for _, f := range fields {
		if v, ok := w.Fields[f]; ok {
			body[f] = v
		}
	}
	if w.ExternalRef != "" {
		body["external_ref"] = w.ExternalRef
	}
	return body
}

// CreateCustomer makes a record (the CRM: creates or updates the contact
// with the e-mail address).
func (c *Client) CreateCustomer(ctx context.Context, call providers.Call, w providers.CustomerWrite) (providers.CustomerRecord, error) {
	api, err := c.customerAPI()
	if err != nil {
		return providers.CustomerRecord{}, err
	}
	var out wireCustomer
	err = c.http.Do(ctx, providers.Request{Operation: api.create, Method: http.MethodPost, Path: api.path, Call: call, Body: writeBody(api.fields, w)}, &out)
	return out.record(api.fields), err
}

// UpdateCustomer changes a record; with IfVersion, only that version of it.
func (c *Client) UpdateCustomer(ctx context.Context, call providers.Call, id string, w providers.CustomerWrite) (providers.CustomerRecord, error) {
	api, err := c.customerAPI()
	if err != nil {
		return providers.CustomerRecord{}, err
	}
	req := providers.Request{Operation: api.update, Method: http.MethodPatch, Path: api.path + "/" + url.PathEscape(id), Call: call, Body: writeBody(api.fields, w)}
	if w.IfVersion > 0 {
		req.Header = http.Header{"If-Match": {strconv.FormatInt(w.IfVersion, 10)}}
	}
	var out wireCustomer
	err = c.http.Do(ctx, req, &out)
	return out.record(api.fields), err
}

// ListCustomers pages through every record.
func (c *Client) ListCustomers(ctx context.Context, call providers.Call, page providers.Page) ([]providers.CustomerRecord, string, error) {
	api, err := c.customerAPI()
	if err != nil {
		return nil, "", err
	}
	ws, next, err := listPageOf[wireCustomer](ctx, c, call, api.list, api.path, page.Cursor, page.Limit)
	out := make([]providers.CustomerRecord, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.record(api.fields))
	}
	return out, next, err
}
