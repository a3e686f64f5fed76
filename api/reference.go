package api

import (
	"bytes"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/handoff-hq/handoff/openapi"
)

// The API's description, as YAML for tools and as a page for people.
func (s *Server) openAPIDocument(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openapi.Document)
}

func (s *Server) reference(c echo.Context) error {
	return c.HTMLBlob(http.StatusOK, s.referencePage)
}

// referencePage renders the document once for every server of the
// process.
var referencePage = sync.OnceValues(func() ([]byte, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	page, err := renderReference(doc)
	if err != nil {
		return nil, fmt.Errorf("render the API reference: %w", err)
	}
	return page, nil
})

// referenceOperation is one operation as the reference page shows it.
type referenceOperation struct {
	Method, Path, ID, Summary, Description string
	Security                               string
	Parameters                             []referenceField
	Body                                   string
	Responses                              []referenceResponse
}

type referenceResponse struct {
	Status, Description, Schema string
	Headers                     []string
}

type referenceField struct {
	Name, In, Type, Description string
	Required                    bool
}

type referenceSchema struct {
	Name, Description string
	Fields            []referenceField
}

// renderReference renders the document as one static page: every
// operation by tag, then every schema with its fields.
func renderReference(doc *openapi3.T) ([]byte, error) {
	type group struct {
		Tag        string
		Operations []referenceOperation
	}
	var groups []group
	index := map[string]int{}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodOptions} {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			if _, ok := index[tag]; !ok {
				index[tag] = len(groups)
				groups = append(groups, group{Tag: tag})
			}
			g := &groups[index[tag]]
			g.Operations = append(g.Operations, referenceOf(doc, method, path, item, op))
		}
	}
	slices.SortStableFunc(groups, func(a, b group) int { return tagOrder(doc, a.Tag) - tagOrder(doc, b.Tag) })
	for _, g := range groups {
		slices.SortStableFunc(g.Operations, func(a, b referenceOperation) int { return strings.Compare(a.Path, b.Path) })
	}
	var schemas []referenceSchema
	for _, name := range slices.Sorted(maps.Keys(doc.Components.Schemas)) {
		sc := doc.Components.Schemas[name].Value
		rs := referenceSchema{Name: name, Description: sc.Description}
		for _, field := range slices.Sorted(maps.Keys(sc.Properties)) {
			p := sc.Properties[field]
			rs.Fields = append(rs.Fields, referenceField{Name: field, Type: typeOf(p), Description: p.Value.Description,
				Required: slices.Contains(sc.Required, field)})
		}
		schemas = append(schemas, rs)
	}
	var b bytes.Buffer
	err := referenceTemplate.Execute(&b, map[string]any{
		"Title": doc.Info.Title, "Version": doc.Info.Version, "Description": doc.Info.Description,
		"Groups": groups, "Schemas": schemas,
	})
	return b.Bytes(), err
}

func referenceOf(doc *openapi3.T, method, path string, item *openapi3.PathItem, op *openapi3.Operation) referenceOperation {
	ro := referenceOperation{Method: method, Path: path, ID: op.OperationID, Summary: op.Summary, Description: op.Description}
	security := doc.Security
	if op.Security != nil {
		security = *op.Security
	}
	var schemes []string
	for _, req := range security {
		schemes = append(schemes, strings.Join(slices.Sorted(maps.Keys(req)), " + "))
	}
	ro.Security = strings.Join(schemes, " or ")
	for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
		if p.Value == nil {
			continue
		}
		ro.Parameters = append(ro.Parameters, referenceField{Name: p.Value.Name, In: p.Value.In, Type: typeOf(p.Value.Schema),
			Description: p.Value.Description, Required: p.Value.Required})
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		ro.Body = contentOf(op.RequestBody.Value.Content)
	}
	for _, status := range slices.Sorted(maps.Keys(op.Responses.Map())) {
		r := op.Responses.Value(status).Value
		if r == nil {
			continue
		}
		rr := referenceResponse{Status: status, Schema: contentOf(r.Content)}
		if r.Description != nil {
			rr.Description = *r.Description
		}
		rr.Headers = slices.Sorted(maps.Keys(r.Headers))
		ro.Responses = append(ro.Responses, rr)
	}
	return ro
}

// contentOf names a body's media type and schema.
func contentOf(content openapi3.Content) string {
	var parts []string
	for _, mt := range slices.Sorted(maps.Keys(content)) {
		parts = append(parts, mt+" "+typeOf(content[mt].Schema))
	}
	return strings.Join(parts, ", ")
}

// typeOf names a schema: its component's name, or its type.
func typeOf(ref *openapi3.SchemaRef) string {
	if ref == nil || ref.Value == nil {
		return ""
	}
	if ref.Ref != "" {
		return ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]
	}
	s := ref.Value
	if s.Type == nil {
		return "any"
	}
	types := s.Type.Slice()
	for i, t := range types {
		if t == "array" && s.Items != nil {
			types[i] = "array of " + typeOf(s.Items)
		}
	}
	name := strings.Join(types, " or ")
	if len(s.Enum) > 0 {
		var values []string
		for _, v := range s.Enum {
			values = append(values, fmt.Sprint(v))
		}
		name += " (" + strings.Join(values, ", ") + ")"
	}
	return name
}

func tagOrder(doc *openapi3.T, tag string) int {
	for i, t := range doc.Tags {
		if t.Name == tag {
			return i
		}
	}
	return len(doc.Tags)
}

var referenceTemplate = template.Must(template.New("reference").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} API {{.Version}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
.op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.m{font:bold 13px monospace;padding:.1rem .4rem;border-radius:4px;background:#eef}
code,.p{font-family:monospace}
table{border-collapse:collapse;width:100%;margin:.4rem 0}
td,th{border-top:1px solid #eee;padding:.2rem .4rem;text-align:left;vertical-align:top;font-size:14px}
.req{color:#a00}
</style></head><body>
<h1>{{.Title}} API <small>{{.Version}}</small></h1>
<p>{{.Description}}</p>
<p>The machine-readable description: <a href="/openapi.yaml">/openapi.yaml</a> (OpenAPI 3.1).</p>
{{range .Groups}}<h2 id="tag-{{.Tag}}">{{.Tag}}</h2>
{{range .Operations}}<div class="op" id="{{.ID}}"><p><span class="m">{{.Method}}</span> <span class="p">{{.Path}}</span> — {{.Summary}}</p>
{{if .Description}}<p>{{.Description}}</p>{{end}}
<p>Authentication: {{if .Security}}{{.Security}}{{else}}none{{end}}</p>
{{if .Parameters}}<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>
{{range .Parameters}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
{{if .Body}}<p>Body: <code>{{.Body}}</code></p>{{end}}
<table><tr><th>answer</th><th></th><th>body</th><th>headers</th></tr>
{{range .Responses}}<tr><td>{{.Status}}</td><td>{{.Description}}</td><td><code>{{.Schema}}</code></td><td>{{range .Headers}}<code>{{.}}</code> {{end}}</td></tr>
{{end}}</table></div>
{{end}}{{end}}
<h2 id="schemas">Schemas</h2>
{{range .Schemas}}<div class="op" id="schema-{{.Name}}"><p><b>{{.Name}}</b></p>{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Fields}}<table><tr><th>field</th><th>type</th><th></th></tr>
{{range .Fields}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">always</span>{{end}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}</div>
{{end}}
</body></html>
`))
