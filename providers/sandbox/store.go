package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// collection holds one kind of record (charges, invoices, …) in creation
// order, indexed by id, external reference and idempotency key. It is not
// safe for concurrent use; the Server's lock guards every collection.
type collection[T any] struct {
	// prefix starts every id: the record kind and the sandbox instance, so
	// that ids from an earlier run of the sandbox never name new records.
	prefix string
	seq    int
	ids    []string
	byID   map[string]*entry[T]
	byRef  map[string][]string
	// byKey remembers the answer given to each idempotency key, as Stripe does.
	byKey map[string]*idempotentAnswer
	// keyCount counts the records created under each idempotency key.
	keyCount map[string]int
}

type entry[T any] struct {
	id, ref, key string
	value        *T
}

type idempotentAnswer struct {
	paramsHash string
	status     int
	body       []byte
}

func newCollection[T any](prefix string) *collection[T] {
	return &collection[T]{
		prefix:   prefix,
		byID:     map[string]*entry[T]{},
		byRef:    map[string][]string{},
		byKey:    map[string]*idempotentAnswer{},
		keyCount: map[string]int{},
	}
}

func (c *collection[T]) nextID() string {
	c.seq++
	return fmt.Sprintf("%s_%08d", c.prefix, c.seq) // zero-padded: ids sort in creation order
}

func (c *collection[T]) add(id, ref, key string, v *T) {
	c.ids = append(c.ids, id)
	c.byID[id] = &entry[T]{id: id, ref: ref, key: key, value: v}
	if ref != "" {
		c.byRef[ref] = append(c.byRef[ref], id)
	}
	if key != "" {
		c.keyCount[key]++
	}
}

func (c *collection[T]) get(id string) (*T, bool) {
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	return e.value, true
}

// page returns up to limit records created after the cursor id, keeping
// those that match; next is the cursor for the following page, empty at the end.
func (c *collection[T]) page(cursor string, limit int, match func(*entry[T]) bool) (out []*T, next string) {
	start := 0
	if cursor != "" {
		start = sort.SearchStrings(c.ids, cursor)
		if start < len(c.ids) && c.ids[start] == cursor {
			start++
		}
	}
	last := ""
	for i := start; i < len(c.ids); i++ {
		e := c.byID[c.ids[i]]
		if !match(e) {
			continue
		}
		if len(out) == limit {
			return out, last
		}
		out = append(out, e.value)
		last = e.id
	}
	return out, ""
}

// lookup returns the records with any of the references or ids, in
// creation order of the ids found.
func (c *collection[T]) lookup(refs, ids []string) []*T {
	var out []*T
	seen := map[string]bool{}
	add := func(id string) {
		if e, ok := c.byID[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, e.value)
		}
	}
	for _, ref := range refs {
		for _, id := range c.byRef[ref] {
			add(id)
		}
	}
	for _, id := range ids {
		add(id)
	}
	return out
}

// setRef moves a record to a new external reference.
func (c *collection[T]) setRef(id, ref string) {
	e, ok := c.byID[id]
	if !ok {
		return
	}
	if old := c.byRef[e.ref]; e.ref != "" {
		c.byRef[e.ref] = slices.DeleteFunc(old, func(x string) bool { return x == id })
		if len(c.byRef[e.ref]) == 0 {
			delete(c.byRef, e.ref)
		}
	}
	e.ref = ref
	if ref != "" {
		c.byRef[ref] = append(c.byRef[ref], id)
	}
}

// remove deletes a record, as someone editing the provider by hand would.
func (c *collection[T]) remove(id string) bool {
	e, ok := c.byID[id]
	if !ok {
		return false
	}
	delete(c.byID, id)
	// The record's idempotency key goes with it, as a provider's keys
	// expire: a later create under the key makes a new record.
	if e.key != "" {
		delete(c.byKey, e.key)
		if c.keyCount[e.key]--; c.keyCount[e.key] <= 0 {
			delete(c.keyCount, e.key)
		}
	}
	i := sort.SearchStrings(c.ids, id)
	if i < len(c.ids) && c.ids[i] == id {
		c.ids = append(c.ids[:i], c.ids[i+1:]...)
	}
	refs := c.byRef[e.ref]
	for j, rid := range refs {
		if rid == id {
			c.byRef[e.ref] = append(refs[:j], refs[j+1:]...)
			break
		}
	}
	if len(c.byRef[e.ref]) == 0 {
		delete(c.byRef, e.ref)
	}
	return true
}

// collectionState is what GET /_sandbox/state reports for one collection.
type collectionState struct {
	Count            int            `json:"count"`
	ByIdempotencyKey map[string]int `json:"by_idempotency_key"`
	ByExternalRef    map[string]int `json:"by_external_ref"`
	ByStatus         map[string]int `json:"by_status,omitempty"`
}

func (c *collection[T]) state(status func(*T) string) collectionState {
	s := collectionState{
		Count:            len(c.ids),
		ByIdempotencyKey: map[string]int{},
		ByExternalRef:    map[string]int{},
	}
	for k, n := range c.keyCount {
		s.ByIdempotencyKey[k] = n
	}
	for ref, ids := range c.byRef {
		s.ByExternalRef[ref] = len(ids)
	}
	if status != nil {
		s.ByStatus = map[string]int{}
		for _, e := range c.byID {
			s.ByStatus[status(e.value)]++
		}
	}
	return s
}

// paramsHash identifies a request body independent of key order and spacing,
// so that the same parameters sent again match their idempotency key.
func paramsHash(body []byte) string {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		v = strings.TrimSpace(string(body))
	}
	canonical, _ := json.Marshal(v) // maps marshal with sorted keys
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}
