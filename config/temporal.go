package config

import (
	"fmt"

	"github.com/handoff-hq/handoff/codec"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// Temporal says where the Temporal cluster is and how to authenticate to it.
type Temporal struct {
	Address   string `default:"localhost:7233"`
	Namespace string `default:"default"`
	// TLS names the files for mTLS: HANDOFF_TEMPORAL_TLS_CERT, _KEY and _CA.
	TLS TLSFiles
	// APIKey authenticates to Temporal Cloud; it implies TLS.
	APIKey string `split_words:"true"`
	// UI locates the Web UI that links in API answers point to.
	UI WebUI
	// Profile is the Temporal client's own configuration (TEMPORAL_*,
	// temporal.toml), which HANDOFF_TEMPORAL_* override (ClientOptions).
	Profile client.Options `ignored:"true"`
	// own is the configuration before the client profile was applied.
	own *Temporal
	// Encryption, set from HANDOFF_PAYLOAD_KEYS, encrypts every payload
	// the clients write and decrypts what they read; nil for none.
	Encryption *codec.Encryption `ignored:"true"`
}

// TLSFiles are PEM files for a TLS connection.
type TLSFiles struct {
	// Cert and Key are a client certificate for mTLS.
	Cert string
	Key  string
	// CA signed the server's certificate.
	CA string
}

// WebUI is the Temporal Web UI.
type WebUI struct {
	// URL is the UI's base URL; empty leaves links out (HANDOFF_TEMPORAL_UI_URL).
	URL string `default:"http://localhost:8233"`
}

// TLSEnabled reports whether the connection to Temporal uses TLS.
func (t Temporal) TLSEnabled() bool {
	return t.TLS.Cert != "" || t.TLS.CA != "" || t.APIKey != ""
}

// applyClientProfile reads the Temporal client's own environment
// configuration, as the Temporal CLI and SDKs do: TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* (certificates by
// path or data, server name, host verification), TEMPORAL_GRPC_META_*, and
// the profiles of temporal.toml (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE).
// handoff's own HANDOFF_TEMPORAL_* variables win where both are set.
func (t *Temporal) applyClientProfile() error {
	own := *t
	t.own = &own
	prof, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{})
	if err != nil {
		return fmt.Errorf("Temporal client configuration (TEMPORAL_* or temporal.toml): %w", err)
	}
	if prof.Address != "" && !LookupEnv("TEMPORAL_ADDRESS") {
		t.Address = prof.Address
	}
	if prof.Namespace != "" && !LookupEnv("TEMPORAL_NAMESPACE") {
		t.Namespace = prof.Namespace
	}
	if t.APIKey == "" {
		t.APIKey = prof.APIKey
	}
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return fmt.Errorf("Temporal client configuration (TEMPORAL_* or temporal.toml): %w", err)
	}
	t.Profile = opts
	return nil
}

// IgnoreClientProfile forgets the Temporal client's own configuration:
// `handoff dev` runs its own server and must not follow a TEMPORAL_* of the
// developer's shell or a profile in temporal.toml to another cluster.
func (t *Temporal) IgnoreClientProfile() {
	if t.own != nil {
		enc := t.Encryption
		*t = *t.own
		t.Encryption = enc
	}
}

// ClientOptions are the options to dial Temporal with: the client
// profile's connection (TLS, authority, gRPC headers), with handoff's
// address, namespace and API key; TLS files named by HANDOFF_TEMPORAL_TLS_*
// are applied by the caller over the profile's TLS.
func (t Temporal) ClientOptions() client.Options {
	opts := client.Options{HostPort: t.Address, Namespace: t.Namespace,
		ConnectionOptions: t.Profile.ConnectionOptions, HeadersProvider: t.Profile.HeadersProvider, Credentials: t.Profile.Credentials}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return opts
}
