package codec

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// Plain is Temporal's default data converter, except that its JSON
// converter also reads the field names of earlier releases (see
// jsonConverter). Encrypted payloads are read with it too (DataConverter).
var Plain converter.DataConverter = converter.NewCompositeDataConverter(
	converter.NewNilPayloadConverter(),
	converter.NewByteSlicePayloadConverter(),
	converter.NewProtoJSONPayloadConverter(),
	converter.NewProtoPayloadConverter(),
	&jsonConverter{JSONPayloadConverter: converter.NewJSONPayloadConverter()},
)

// jsonConverter is Temporal's JSON payload converter that also reads
// payloads written before handoff named the fields of workflow, update and
// signal arguments in snake_case: a key that is a field's Go name
// ("OrderID", "CorrelationID") is read as the field it names now
// ("order_id"). Temporal keeps histories, and the workflows in them replay
// for as long as they run, so what was written once must stay readable.
//
// Only payloads with such a key take the slower path; the rest are read
// as JSON is.
type jsonConverter struct {
	*converter.JSONPayloadConverter
}

// goKey finds a key that starts with a capital letter: payloads written
// before snake_case had them (a JSON string never holds an unescaped
// quote, so this matches keys only).
var goKey = regexp.MustCompile(`"[A-Z][A-Za-z0-9]*"\s*:`)

// FromPayload reads a payload into valuePtr.
func (c *jsonConverter) FromPayload(payload *commonpb.Payload, valuePtr any) error {
	data := payload.GetData()
	t := reflect.TypeOf(valuePtr)
	if t == nil || t.Kind() != reflect.Pointer || !goKey.Match(data) {
		return c.JSONPayloadConverter.FromPayload(payload, valuePtr)
	}
	renamed, err := RenameGoKeys(data, t.Elem())
	if err != nil {
		return c.JSONPayloadConverter.FromPayload(payload, valuePtr)
	}
	p := &commonpb.Payload{Metadata: payload.GetMetadata(), Data: renamed}
	return c.JSONPayloadConverter.FromPayload(p, valuePtr)
}

// RenameGoKeys rewrites the keys of JSON written for type t under its
// fields' Go names (OrderID) to the names their tags give them now
// (order_id). Keys that are already right, map keys and unknown keys are
// left as they are.
func RenameGoKeys(data []byte, t reflect.Type) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(rename(v, t))
}

var (
	unmarshaler     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func rename(v any, t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return v
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		fields := fieldsOf(t)
		out := make(map[string]any, len(obj))
		for k, val := range obj {
			f, ok := fields.byName[k]
			if !ok {
				if f, ok = fields.byGoName[fold(k)]; ok {
					if _, taken := obj[f.name]; taken {
						continue
					}
					k = f.name
				}
			}
			if ok {
				val = rename(val, f.typ)
			}
			out[k] = val
		}
		return out
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for k, val := range obj {
			obj[k] = rename(val, t.Elem())
		}
		return obj
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return v
		}
		for i, val := range list {
			list[i] = rename(val, t.Elem())
		}
		return list
	}
	return v
}

// field is a struct field as JSON names it.
type field struct {
	name string
	typ  reflect.Type
}

// structFields are a struct's fields by their JSON name, and by their Go
// name folded (lower case, no underscores), with those of embedded structs.
type structFields struct {
	byName   map[string]field
	byGoName map[string]field
}

var fieldCache sync.Map // reflect.Type → structFields

func fieldsOf(t reflect.Type) structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(structFields)
	}
	fs := structFields{byName: map[string]field{}, byGoName: map[string]field{}}
	addFields(fs, t)
	fieldCache.Store(t, fs)
	return fs
}

func addFields(fs structFields, t reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := sf.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			addFields(fs, ft)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, typ: sf.Type}
		fs.byName[name] = f
		fs.byGoName[fold(sf.Name)] = f
	}
}

// fold is a name without case or underscores: OrderID and order_id are
// both "orderid".
func fold(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}
