package contracts

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Shape declares the fields of a record a provider answers with, as the
// contract knows it: handoff reads every answer of an operation that
// declares what it returns against its shape, and reports where the
// provider drifted from it (see Drift).
type Shape struct {
	// Open shapes may carry fields the contract does not name, as the
	// objects of APIs that add fields in every version do; a closed
	// shape's unknown field is drift.
	Open   bool             `yaml:"open"`
	Fields map[string]Field `yaml:"fields"`
}

// Field is one field of a shape.
type Field struct {
	// Type is string, integer, number, boolean, object or array.
	Type string `yaml:"type"`
	// Required fields are in every answer.
	Required bool `yaml:"required"`
	// Values, when set, are every value the field takes.
	Values []string `yaml:"values"`
	// Format is a named format (currency, email, positive_integer) or a
	// regular expression the value matches.
	Format string `yaml:"format"`
	// Items names the shape of an array's elements; Shape, that of an
	// object.
	Items string `yaml:"items"`
	Shape string `yaml:"shape"`
}

// The kinds of drift, a closed set (the label of
// handoff_contract_drift_total).
const (
	DriftMissingField = "missing_field"
	DriftWrongType    = "wrong_type"
	DriftWrongFormat  = "wrong_format"
	DriftUnknownValue = "unknown_value"
	DriftUnknownField = "unknown_field"
	DriftAPIVersion   = "api_version"
)

// DriftKinds lists every kind of drift.
var DriftKinds = []string{DriftMissingField, DriftWrongType, DriftWrongFormat, DriftUnknownValue, DriftUnknownField, DriftAPIVersion}

// A Drift is one way an answer differs from the contract.
type Drift struct {
	Kind string
	// Field is the field's path in the answer (data[].status), or the
	// version header.
	Field string
	// Example describes what was found without its content where that
	// could be personal: a value of a declared set, a version, or a JSON
	// type and length.
	Example string
}

func (d Drift) String() string { return fmt.Sprintf("%s %s (%s)", d.Kind, d.Field, d.Example) }

var fieldTypes = []string{"string", "integer", "number", "boolean", "object", "array"}

// Drift reads a 2xx answer of the operation against the shape the
// operation returns and the API version the contract pins. An operation
// that declares no shape is not read; an answer that is not JSON is the
// caller's to report.
func (c *Contract) Drift(operation string, header http.Header, body []byte) []Drift {
	if c == nil {
		return nil
	}
	var out []Drift
	if c.API.VersionHeader != "" && c.API.Version != "" {
		if got := header.Get(c.API.VersionHeader); got != "" && got != c.API.Version {
			out = append(out, Drift{Kind: DriftAPIVersion, Field: c.API.VersionHeader, Example: clip(got)})
		}
	}
	op, ok := c.Operation(operation)
	if !ok || op.Returns == "" {
		return out
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return out
	}
	return append(out, c.read(op.Returns, "", v)...)
}

// read compares value against the named shape, at path.
func (c *Contract) read(shape, path string, value any) []Drift {
	obj, ok := value.(map[string]any)
	if !ok {
		return []Drift{{Kind: DriftWrongType, Field: orRoot(path), Example: describe(value)}}
	}
	fields := c.Shapes[shape].Fields
	var out []Drift
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		f := fields[name]
		v, present := obj[name]
		at := join(path, name)
		switch {
		case !present || v == nil:
			if f.Required {
				out = append(out, Drift{Kind: DriftMissingField, Field: at, Example: "absent"})
			}
			continue
		case !isType(f.Type, v):
			out = append(out, Drift{Kind: DriftWrongType, Field: at, Example: describe(v) + ", want " + f.Type})
			continue
		}
		switch {
		case len(f.Values) > 0 && !slices.Contains(f.Values, fmt.Sprint(v)):
			out = append(out, Drift{Kind: DriftUnknownValue, Field: at, Example: clip(fmt.Sprint(v))})
		case f.Format != "" && !matches(f.Format, v):
			out = append(out, Drift{Kind: DriftWrongFormat, Field: at, Example: describe(v) + ", want " + f.Format})
		case f.Type == "object" && f.Shape != "":
			out = append(out, c.read(f.Shape, at, v)...)
		case f.Type == "array" && f.Items != "":
			// Every element is read, each drift reported once per field.
			seen := map[string]bool{}
			for _, item := range v.([]any) {
				for _, d := range c.read(f.Items, at+"[]", item) {
					if key := d.Kind + " " + d.Field; !seen[key] {
						seen[key] = true
						out = append(out, d)
					}
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		if _, declared := fields[name]; !declared && !c.Shapes[shape].Open {
			out = append(out, Drift{Kind: DriftUnknownField, Field: join(path, name), Example: describe(obj[name])})
		}
	}
	return out
}

func isType(want string, v any) bool {
	switch want {
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == float64(int64(n))
	case "number":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

// describe names a value's JSON type, and a string's length, never its
// content.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string of %d characters", len(x))
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case bool:
		return "boolean"
	case []any:
		return fmt.Sprintf("array of %d", len(x))
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// clip bounds a value of a declared set or a version header, which are
// codes rather than personal data, to 40 characters.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orRoot(path string) string {
	if path == "" {
		return "(answer)"
	}
	return path
}

// checkShapes reports a shape or a returns that cannot be read.
func (c Contract) checkShapes() []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(c.Shapes)) {
		for _, fname := range slices.Sorted(maps.Keys(c.Shapes[name].Fields)) {
			f := c.Shapes[name].Fields[fname]
			at := "shape " + name + " field " + fname
			if !slices.Contains(fieldTypes, f.Type) {
				problems = append(problems, fmt.Sprintf("%s: type %q is not one of %s", at, f.Type, strings.Join(fieldTypes, ", ")))
			}
			if _, ok := c.Shapes[f.Items]; f.Items != "" && (f.Type != "array" || !ok) {
				problems = append(problems, fmt.Sprintf("%s: items %q must name a shape of this contract, on an array", at, f.Items))
			}
			if _, ok := c.Shapes[f.Shape]; f.Shape != "" && (f.Type != "object" || !ok) {
				problems = append(problems, fmt.Sprintf("%s: shape %q must name a shape of this contract, on an object", at, f.Shape))
			}
			if f.Format != "" {
				if _, named := namedFormats[f.Format]; !named {
					if _, err := compiled(f.Format); err != nil {
						problems = append(problems, fmt.Sprintf("%s: format %q: %v", at, f.Format, err))
					}
				}
			}
		}
	}
	for _, op := range c.Operations {
		if _, ok := c.Shapes[op.Returns]; op.Returns != "" && !ok {
			problems = append(problems, fmt.Sprintf("operation %s returns %q, which is not a shape of this contract", op.Name, op.Returns))
		}
	}
	return problems
}

// WithoutOptionalDrift is a 2xx answer of the operation with every field
// the contract declares optional, and the answer holds with another type,
// left out: what handoff decodes from it then reads as if the provider had
// not sent the field, while a required field of the wrong type still fails
// the call. It reports false when there is nothing to leave out.
func (c *Contract) WithoutOptionalDrift(operation string, body []byte) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	op, ok := c.Operation(operation)
	if !ok || op.Returns == "" {
		return nil, false
	}
	var v any
	if json.Unmarshal(body, &v) != nil || !c.dropWrongOptional(op.Returns, v) {
		return nil, false
	}
	out, err := json.Marshal(v)
	return out, err == nil
}

func (c *Contract) dropWrongOptional(shape string, value any) bool {
	obj, ok := value.(map[string]any)
	if !ok {
		return false
	}
	dropped := false
	for name, f := range c.Shapes[shape].Fields {
		v, present := obj[name]
		switch {
		case !present || v == nil:
		case !isType(f.Type, v):
			if !f.Required {
				delete(obj, name)
				dropped = true
			}
		case f.Type == "object" && f.Shape != "":
			dropped = c.dropWrongOptional(f.Shape, v) || dropped
		case f.Type == "array" && f.Items != "":
			for _, item := range v.([]any) {
				dropped = c.dropWrongOptional(f.Items, item) || dropped
			}
		}
	}
	return dropped
}
