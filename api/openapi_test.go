package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/action"
	"github.com/handoff-hq/handoff/control"
	"github.com/handoff-hq/handoff/openapi"
)

// The unit tests' exchanges (do) are checked against openapi.yaml too;
// a mismatch fails the run.
var (
	validator  *openapi.Validator
	mismatchMu sync.Mutex
	mismatches []error
)

func TestMain(m *testing.M) {
	var err error
	if validator, err = openapi.NewValidator(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := errors.Join(mismatches...); err != nil {
		fmt.Fprintf(os.Stderr, "exchanges that openapi.yaml does not describe:\n%v\n", err)
		code = 1
	}
	os.Exit(code)
}

// checkExchange checks one exchange served by a test.
func checkExchange(req *http.Request, body string, rec *httptest.ResponseRecorder) {
	resp := rec.Result()
	resp.Request = req
	raw, _ := io.ReadAll(resp.Body)
	if err := validator.Check(req, []byte(body), resp, raw); err != nil {
		mismatchMu.Lock()
		mismatches = append(mismatches, err)
		mismatchMu.Unlock()
	}
}

// TestEveryRouteIsInOpenAPI compares the routes the API serves with the
// operations openapi.yaml describes, both ways.
func TestEveryRouteIsInOpenAPI(t *testing.T) {
	s, err := New(Options{Orders: &fakeOrders{}, Customers: fakeCustomers{}, Events: &fakeEvents{}, Operators: &fakeOperators{},
		Reconciliations: &fakeReconciliations{}, APITokens: []string{token}, Ready: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	var documented, served []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	for _, r := range s.echo.Routes() {
		// The operations page is for people, and echo adds routes of
		// its own for unknown paths.
		if r.Path == "/ops" || strings.HasPrefix(r.Path, "/ops/") || r.Method == echo.RouteNotFound {
			continue
		}
		path := r.Path
		if path == "/v1/actions/*" {
			path = "/v1/actions/{kind}/{id}/{answer}"
		}
		var segs []string
		for _, seg := range strings.Split(path, "/") {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				seg = "{" + name + "}"
			}
			segs = append(segs, seg)
		}
		served = append(served, r.Method+" "+strings.Join(segs, "/"))
	}
	for _, op := range served {
		if !slices.Contains(documented, op) {
			t.Errorf("%s is served but not in openapi.yaml", op)
		}
	}
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("%s is in openapi.yaml but not served", op)
		}
	}
}

func TestTheDocumentIsServed(t *testing.T) {
	s := newTestServer(t, &fakeOrders{}, nil)
	rec := do(s, http.MethodGet, "/openapi.yaml", "", "")
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), openapi.Document) {
		t.Errorf("GET /openapi.yaml: %d, %d bytes, want the document", rec.Code, rec.Body.Len())
	}
	rec = do(s, http.MethodGet, "/docs/api", "", "")
	page := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(page, "placeOrder") || !strings.Contains(page, "/v1/orders/{order_id}") ||
		!strings.Contains(page, "OrderState") || strings.Contains(page, "<script") {
		t.Errorf("GET /docs/api: %d, want the reference page, with no script:\n%.500s", rec.Code, page)
	}
}

// fakeCustomers only lets the customer routes exist.
type fakeCustomers struct{}

func (fakeCustomers) PutCustomer(context.Context, control.CustomerPut, string) (control.PutResult, error) {
	return control.PutResult{}, control.ErrNotFound
}

func (fakeCustomers) Customer(context.Context, string) (control.CustomerRead, error) {
	return control.CustomerRead{}, control.ErrNotFound
}

func (fakeCustomers) DeliverCustomerEvent(context.Context, string, action.CustomerChange) error {
	return nil
}
