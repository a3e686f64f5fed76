// Package codec encrypts every payload handoff writes to Temporal: workflow
// and activity inputs and results, signals, updates, queries, memos and
// failure details. Temporal, its database, its backups and its Web UI hold
// only ciphertext; handoff's processes, and operators through the codec
// endpoint, decode it.
//
// A payload is serialised, compressed (zlib) and sealed with AES-256-GCM
// under a named key; the key's id travels in the payload's metadata, so
// that several keys can be in use during a rotation: the first key of the
// ring encrypts, every key decrypts. Payloads written before encryption was
// switched on carry no such metadata and are read as they are.
package codec

import (
	"bytes"
	"compress/zlib"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// EncodingEncrypted is the encoding of an encrypted payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher names the cipher and the compression under it.
	MetadataCipher = "encryption-cipher"
	cipherName     = "AES256-GCM/zlib"
)

// writers are zlib writers at the fastest level (payloads are small JSON,
// and compression costs every workflow task), kept for reuse: a new one
// allocates hundreds of kilobytes.
var writers = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
	return w
}}

// readers are zlib readers kept for reuse, like writers.
var readers sync.Pool

// reader is a pooled zlib reader of data.
func reader(data []byte) (io.ReadCloser, error) {
	if r, ok := readers.Get().(io.ReadCloser); ok {
		if err := r.(zlib.Resetter).Reset(bytes.NewReader(data), nil); err != nil {
			return nil, err
		}
		return r, nil
	}
	return zlib.NewReader(bytes.NewReader(data))
}

// maxPayloadBytes bounds what one payload may decompress to.
const maxPayloadBytes = 64 << 20

// ErrUnknownKey is a payload sealed with a key this process does not hold.
// A worker fails the task that meets one (and Temporal retries the task
// until a worker with the key takes it): nothing is ever written that the
// worker could not read back.
var ErrUnknownKey = errors.New("payload encrypted with a key this process does not have")

// ErrUndecryptable is a payload whose key is known but whose ciphertext
// does not open: it was altered, or the key under its id changed.
var ErrUndecryptable = errors.New("payload cannot be decrypted")

// Key is one named AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseKeys reads HANDOFF_PAYLOAD_KEYS: comma-separated "<id>:<base64 of
// 32 bytes>", the key that encrypts first. It never puts a key's value in
// an error.
func ParseKeys(values []string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i, v := range values {
		id, secret, ok := strings.Cut(strings.TrimSpace(v), ":")
		if !ok || !keyID.MatchString(id) {
			return nil, fmt.Errorf("key %d: want <id>:<base64 key>, with an id of letters, digits, '.', '_' or '-'", i+1)
		}
		raw, err := base64.StdEncoding.DecodeString(secret)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("key %q: want the base64 of 32 random bytes (openssl rand -base64 32)", id)
		}
		if seen[id] {
			return nil, fmt.Errorf("key %q: listed twice", id)
		}
		seen[id] = true
		keys = append(keys, Key{ID: id, Secret: raw})
	}
	return keys, nil
}

// Encryption is the payload codec: it seals with the first key and opens
// with any.
type Encryption struct {
	primary string
	aeads   map[string]cipher.AEAD
	// failed, when set, hears of every payload that could not be read:
	// "unknown_key" or "undecryptable".
	failed func(reason string)
}

// OnFailure sets what hears of payloads that cannot be read (for a
// metric); call it before the codec is used.
func (e *Encryption) OnFailure(f func(reason string)) { e.failed = f }

func (e *Encryption) fail(reason string, err error) error {
	if e.failed != nil {
		e.failed(reason)
	}
	return err
}

var _ converter.PayloadCodec = (*Encryption)(nil)

// New returns the codec of a key ring; the first key encrypts.
func New(keys []Key) (*Encryption, error) {
	if len(keys) == 0 {
		return nil, errors.New("payload encryption: no key")
	}
	e := &Encryption{primary: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("payload key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("payload key %q: %w", k.ID, err)
		}
		e.aeads[k.ID] = aead
	}
	return e, nil
}

// Has reports whether the ring holds the key with this id; a nil
// Encryption holds none.
func (e *Encryption) Has(id string) bool {
	if e == nil {
		return false
	}
	_, ok := e.aeads[id]
	return ok
}

// keyIDInJSON finds the key ids of a history in Temporal's JSON form,
// where metadata values are base64.
var keyIDInJSON = regexp.MustCompile(`"` + MetadataKeyID + `"\s*:\s*"([A-Za-z0-9+/=]+)"`)

// MissingKeys lists the payload keys a history (JSON, as `temporal
// workflow show -o json` writes it) was encrypted with that e lacks.
func (e *Encryption) MissingKeys(historyJSON []byte) []string {
	var missing []string
	for _, m := range keyIDInJSON.FindAllSubmatch(historyJSON, -1) {
		raw, err := base64.StdEncoding.DecodeString(string(m[1]))
		if id := string(raw); err == nil && !e.Has(id) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	return missing
}

// Encode seals every payload with the primary key.
func (e *Encryption) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := e.aeads[e.primary]
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode payload: %w", err)
		}
		var compressed bytes.Buffer
		zw := writers.Get().(*zlib.Writer)
		zw.Reset(&compressed)
		_, err = zw.Write(plain)
		if err == nil {
			err = zw.Close()
		}
		writers.Put(zw)
		if err != nil {
			return nil, fmt.Errorf("compress payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+compressed.Len()+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encrypt payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(e.primary),
				MetadataCipher:             []byte(cipherName),
			},
			Data: aead.Seal(nonce, nonce, compressed.Bytes(), []byte(e.primary)),
		}
	}
	return out, nil
}

// Decode opens every encrypted payload and passes the others through.
func (e *Encryption) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := e.aeads[id]
		if !ok {
			return nil, e.fail("unknown_key", unknownKey(id))
		}
		decoded, err := open(aead, id, p.GetData())
		if err != nil {
			return nil, e.fail("undecryptable", err)
		}
		out[i] = decoded
	}
	return out, nil
}

// open decrypts, decompresses and unmarshals one payload's data.
func open(aead cipher.AEAD, id string, data []byte) (*commonpb.Payload, error) {
	if len(data) < aead.NonceSize() {
		return nil, fmt.Errorf("key %q: %w", id, ErrUndecryptable)
	}
	nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
	compressed, err := aead.Open(nil, nonce, sealed, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", id, ErrUndecryptable)
	}
	zr, err := reader(compressed)
	if err != nil {
		return nil, fmt.Errorf("key %q: decompress: %w", id, ErrUndecryptable)
	}
	defer readers.Put(zr)
	plain, err := io.ReadAll(io.LimitReader(zr, maxPayloadBytes+1))
	if err != nil || len(plain) > maxPayloadBytes {
		return nil, fmt.Errorf("key %q: decompress: %w", id, ErrUndecryptable)
	}
	var decoded commonpb.Payload
	if err := proto.Unmarshal(plain, &decoded); err != nil {
		return nil, fmt.Errorf("key %q: %w", id, ErrUndecryptable)
	}
	return &decoded, nil
}

// unknownKey names the missing key. It is an application error of its own
// type, so that it reads the same in a worker's log, in a task failure and
// at the codec endpoint.
func unknownKey(id string) error {
	return temporal.NewApplicationErrorWithCause(
		fmt.Sprintf("payload encrypted with key %q, which is not in HANDOFF_PAYLOAD_KEYS", id), "UnknownPayloadKey", ErrUnknownKey)
}

// DataConverter is the default data converter with the encryption under
// it; nil encryption leaves payloads as they are.
func DataConverter(e *Encryption) converter.DataConverter {
	if e == nil {
		return Plain
	}
	return converter.NewCodecDataConverter(Plain, e)
}

// FailureConverter moves failures' messages and stack traces into an
// encoded attribute, so that they are encrypted like the payloads.
func FailureConverter(e *Encryption) converter.FailureConverter {
	if e == nil {
		return temporal.GetDefaultFailureConverter()
	}
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: DataConverter(e), EncodeCommonAttributes: true,
	})
}
