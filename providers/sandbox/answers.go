package sandbox

// The sandbox's answers: its errors, shaped like Stripe's; idempotent
// creates (replayed answers, 409 for a key reused with other parameters);
// single reads and cursor-paged lists.

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/handoff-hq/handoff/providers"
)

// apiError is the sandbox's error answer, shaped like Stripe's.
type apiError struct {
	status  int
	typ     string
	code    string
	message string
}

func (e *apiError) write(w http.ResponseWriter) {
	var body struct {
		Error struct {
			Type    string `json:"type"`
			Code    string `json:"code,omitempty"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Type, body.Error.Code, body.Error.Message = e.typ, e.code, e.message
	writeJSON(w, e.status, body)
}

// missing is the answer about a record that does not exist.
func missing(kind, id string) *apiError {
	msg := "no such " + kind
	if id != "" {
		msg += ": " + id
	}
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "resource_missing", message: msg}
}

func invalid(code, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, message: msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// createRequest is a decoded create call: its body, idempotency key and the
// external reference the new record will carry.
type createRequest struct {
	body []byte
	key  string
	ref  string
	// hash identifies the parameters, for the idempotency key's check.
	hash string
}

// readCreate reads a create call's body and names its external reference:
// the body's "external_ref" if given, else the Idempotency-Key.
func readCreate(w http.ResponseWriter, r *http.Request, into any) (createRequest, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return createRequest{}, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", message: "request body too large"}
		}
		return createRequest{}, invalid("body_unreadable", err.Error())
	}
	var ref struct {
		ExternalRef string `json:"external_ref"`
	}
	if err := json.Unmarshal(body, into); err != nil {
		return createRequest{}, invalid("body_invalid", "request body is not valid JSON: "+err.Error())
	}
	_ = json.Unmarshal(body, &ref) // already known to be valid JSON
	cr := createRequest{body: body, key: r.Header.Get(providers.HeaderIdempotencyKey), ref: ref.ExternalRef, hash: paramsHash(body)}
	if cr.ref == "" {
		cr.ref = cr.key
	}
	return cr, nil
}

// replay answers a create call whose idempotency key was seen before: the
// stored answer for the same parameters, 409 for other parameters. It
// reports whether it answered. The caller holds s.mu.
func replay(w http.ResponseWriter, answers map[string]*idempotentAnswer, cr createRequest) bool {
	if cr.key == "" {
		return false
	}
	prev, ok := answers[cr.key]
	if !ok {
		return false
	}
	if prev.paramsHash != cr.hash {
		(&apiError{status: http.StatusConflict, typ: "idempotency_error", code: "idempotency_key_reused",
			message: "Keys for idempotent requests can only be used with the same parameters they were first used with."}).write(w)
		return true
	}
	w.Header().Set("Idempotent-Replayed", "true")
	writeRaw(w, prev.status, prev.body)
	return true
}

// remember stores the answer to a create call under its idempotency key and
// writes it. The caller holds s.mu.
func remember(w http.ResponseWriter, answers map[string]*idempotentAnswer, cr createRequest, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if cr.key != "" {
		answers[cr.key] = &idempotentAnswer{paramsHash: cr.hash, status: status, body: b}
	}
	writeRaw(w, status, b)
}

func getOne[T any](s *Server, c *collection[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		v, ok := c.get(r.PathValue("id"))
		var snapshot T
		if ok {
			snapshot = *v
		}
		s.mu.Unlock()
		if !ok {
			missing("record", r.PathValue("id")).write(w)
			return
		}
		writeJSON(w, http.StatusOK, snapshot)
	}
}

// listPage is the answer of every list call. It pages as handoff's own
// API does: ?page_size= and ?page_token=, with next_page_token absent on
// the last page.
type listPage[T any] struct {
	Object        string `json:"object"`
	Data          []T    `json:"data"`
	NextPageToken string `json:"next_page_token,omitempty"`
}

// list serves a paged list, filtered by ?external_ref= when given.
func list[T any](s *Server, c *collection[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := defaultPageSize
		if v := q.Get("page_size"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxPageSize {
				invalid("page_size_invalid", "page_size must be between 1 and "+strconv.Itoa(maxPageSize)).write(w)
				return
			}
			limit = n
		}
		refs, ids := q["external_ref"], q["id"]
		if len(refs)+len(ids) > maxPageSize {
			invalid("filter_too_long", "at most "+strconv.Itoa(maxPageSize)+" external_ref and id values").write(w)
			return
		}
		s.mu.Lock()
		var items []*T
		var next string
		if len(refs) > 0 || len(ids) > 0 {
			// A batch lookup: every record with one of the references or
			// ids, straight from the indexes.
			items = c.lookup(refs, ids)
		} else {
			items, next = c.page(q.Get("page_token"), limit, func(*entry[T]) bool { return true })
		}
		page := listPage[T]{Object: "list", Data: make([]T, 0, len(items)), NextPageToken: next}
		for _, v := range items {
			page.Data = append(page.Data, *v)
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, page)
	}
}
