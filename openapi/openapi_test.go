package openapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestTheDocumentPassesItsLint(t *testing.T) {
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := Lint(doc); err != nil {
		t.Fatal(err)
	}
}

// TestWhatTheDocumentDoesNotSayFails checks the checker: an answer with a
// field, status or header openapi.yaml does not name, or a taken request
// it does not describe, is a mismatch.
func TestWhatTheDocumentDoesNotSayFails(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	answer := func(req *http.Request, status int, body string, headers ...string) *http.Response {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "application/json")
		rec.Header().Set(HeaderCorrelationID, "req-1")
		for i := 0; i+1 < len(headers); i += 2 {
			rec.Header().Set(headers[i], headers[i+1])
		}
		rec.WriteHeader(status)
		rec.WriteString(body)
		resp := rec.Result()
		resp.Request = req
		return resp
	}
	check := func(req *http.Request, reqBody string, resp *http.Response, respBody string) error {
		return v.Check(req, []byte(reqBody), resp, []byte(respBody))
	}
	health := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	order := `{"order_id":"A-1","customer":{"email":"a@example.com","name":"A"},"currency":"eur","amount":100,"items":[{"sku":"x","quantity":1,"unit_amount":100}]}`
	placed := `{"order_id":"A-1","workflow_id":"order/A-1","status":"processing","links":{"self":"/v1/orders/A-1"}}`
	place := func(body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/v1/orders", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer t")
		return r
	}
	tests := []struct {
		name     string
		req      *http.Request
		reqBody  string
		resp     *http.Response
		respBody string
		want     string // "" for no mismatch
	}{
		{"documented", health, "", answer(health, 200, `{"status":"ok"}`), `{"status":"ok"}`, ""},
		{"undocumented field", health, "", answer(health, 200, `{"status":"ok","uptime":3}`), `{"status":"ok","uptime":3}`, "uptime"},
		{"undocumented status", health, "", answer(health, 418, `{}`), `{}`, "418"},
		{"undocumented header", health, "", answer(health, 200, `{"status":"ok"}`, "X-Debug", "1"), `{"status":"ok"}`, "X-Debug"},
		{"undocumented path", httptest.NewRequest(http.MethodGet, "/v2/orders", nil), "",
			answer(nil, 200, `{}`), `{}`, "no operation"},
		{"taken request with an undocumented field", place(order[:len(order)-1] + `,"note":"x"}`), order[:len(order)-1] + `,"note":"x"}`,
			answer(nil, 202, placed, "Location", "/v1/orders/A-1"), placed, "note"},
		{"refused request, documented problem", place(`{"nope":1}`), `{"nope":1}`,
			answer(nil, 400, `{"type":"https://github.com/handoff-hq/handoff#problem-invalid-request","title":"The request is invalid","status":400}`, "Content-Type", "application/problem+json"),
			`{"type":"https://github.com/handoff-hq/handoff#problem-invalid-request","title":"The request is invalid","status":400}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.resp.Request == nil {
				tt.resp.Request = tt.req
			}
			err := check(tt.req, tt.reqBody, tt.resp, tt.respBody)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("mismatch: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want a mismatch naming %q", err, tt.want)
			}
		})
	}
}

// TestEveryProblemTypeIsExplained checks that every problem type the
// document names links to an entry of the README's "Problems", and that
// every entry there is a type.
func TestEveryProblemTypeIsExplained(t *testing.T) {
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "https://github.com/handoff-hq/handoff#"
	types := doc.Components.Schemas["Problem"].Value.Properties["type"].Value.Enum
	if len(types) < 10 {
		t.Fatalf("%d problem types in openapi.yaml, want every one", len(types))
	}
	named := map[string]bool{}
	for _, v := range types {
		anchor, ok := strings.CutPrefix(v.(string), prefix)
		if !ok {
			t.Errorf("problem type %v does not link to the README (%s…)", v, prefix)
			continue
		}
		named[anchor] = true
		if !strings.Contains(string(readme), `<a id="`+anchor+`"></a>`) {
			t.Errorf("problem type %v: the README has no entry %q", v, anchor)
		}
	}
	for _, m := range regexp.MustCompile(`<a id="(problem-[a-z-]+)"></a>`).FindAllStringSubmatch(string(readme), -1) {
		if !named[m[1]] {
			t.Errorf("the README explains %s, which openapi.yaml does not name", m[1])
		}
	}
}
