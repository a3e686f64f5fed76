package config

import (
	"github.com/handoff-hq/handoff/codec"
)

// payloadEncryption is the codec of HANDOFF_PAYLOAD_KEYS; nil, and no
// encryption, when none is set.
func payloadEncryption(values []string) (*codec.Encryption, error) {
	keys, err := codec.ParseKeys(nonEmpty(values))
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	return codec.New(keys)
}

// SetPayloadKeys sets the payload keys (the first encrypts) and the
// encryption every Temporal client of the configuration uses. Keys that do
// not parse are kept for Validate to report, and encrypt nothing.
func (c *Config) SetPayloadKeys(values []string) error {
	enc, err := payloadEncryption(values)
	c.PayloadKeys, c.Temporal.Encryption = values, enc
	return err
}
