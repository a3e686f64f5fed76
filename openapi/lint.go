package openapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
)

// HeaderCorrelationID comes with every answer of the API.
const HeaderCorrelationID = "X-Correlation-ID"

// Lint checks what the document must say beyond valid OpenAPI, so that
// it can be enforced on the API's traffic and read as its reference:
// every operation named, tagged, summarised and secured explicitly, with a
// 2xx answer; every error a problem (application/problem+json); every
// answer naming the correlation id header; every object closed to fields
// it does not list.
func Lint(doc *openapi3.T) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			at := method + " " + path
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 {
				add("%s: operationId, summary and a tag are required", at)
			}
			if op.Security == nil {
				add("%s: say which security applies (security: [] for none)", at)
			}
			ok := false
			for status, ref := range op.Responses.Map() {
				code, err := strconv.Atoi(status)
				if err != nil {
					add("%s: answer %q: give each status, not a range or default", at, status)
					continue
				}
				ok = ok || code/100 == 2
				r := ref.Value
				if _, named := r.Headers[HeaderCorrelationID]; !named {
					add("%s: answer %d does not name the %s header", at, code, HeaderCorrelationID)
				}
				if code >= 400 && method != http.MethodOptions {
					mt := r.Content.Get("application/problem+json")
					if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
						add("%s: answer %d must be application/problem+json with the Problem schema", at, code)
					}
				}
			}
			if !ok {
				add("%s: no 2xx answer", at)
			}
		}
	}
	for name, ref := range doc.Components.Schemas {
		errs = append(errs, closed("#/components/schemas/"+name, ref.Value)...)
	}
	return errors.Join(errs...)
}

// closed reports the objects in s that accept fields they do not list.
func closed(at string, s *openapi3.Schema) []error {
	if s == nil {
		return nil
	}
	var errs []error
	if s.Type.Is("object") || len(s.Properties) > 0 {
		ap := s.AdditionalProperties
		if len(s.Properties) > 0 && (ap.Has == nil || *ap.Has) && ap.Schema == nil {
			errs = append(errs, fmt.Errorf("%s: an object with properties must say additionalProperties: false", at))
		}
	}
	for name, p := range s.Properties {
		if p.Ref == "" {
			errs = append(errs, closed(at+"/properties/"+name, p.Value)...)
		}
	}
	if s.Items != nil && s.Items.Ref == "" {
		errs = append(errs, closed(at+"/items", s.Items.Value)...)
	}
	return errs
}
