package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTheTemporalClientsOwnConfigurationIsRead proves handoff connects as
// the Temporal CLI and SDKs would: from TEMPORAL_* and temporal.toml
// profiles, with HANDOFF_TEMPORAL_* winning where both are set.
func TestTheTemporalClientsOwnConfigurationIsRead(t *testing.T) {
	toml := filepath.Join(t.TempDir(), "temporal.toml")
	err := os.WriteFile(toml, []byte(`
[profile.default]
address = "default.example:7233"

[profile.cloud]
address = "shop.a1b2c.tmprl.cloud:7233"
namespace = "shop.a1b2c"
api_key = "profile-key"
grpc_meta = { x-team = "payments" }
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", toml)

	t.Run("the default profile", func(t *testing.T) {
		cfg := mustLoad(t)
		if cfg.Temporal.Address != "default.example:7233" || cfg.Temporal.Namespace != "default" {
			t.Errorf("address %q namespace %q", cfg.Temporal.Address, cfg.Temporal.Namespace)
		}
		if cfg.Temporal.ClientOptions().ConnectionOptions.TLS != nil {
			t.Error("TLS on without anything asking for it")
		}
	})
	t.Run("a named profile, with an API key that implies TLS", func(t *testing.T) {
		t.Setenv("TEMPORAL_PROFILE", "cloud")
		cfg := mustLoad(t)
		opts := cfg.Temporal.ClientOptions()
		if opts.HostPort != "shop.a1b2c.tmprl.cloud:7233" || opts.Namespace != "shop.a1b2c" || cfg.Temporal.APIKey != "profile-key" {
			t.Errorf("options %q %q, key %q", opts.HostPort, opts.Namespace, cfg.Temporal.APIKey)
		}
		if opts.ConnectionOptions.TLS == nil || opts.Credentials == nil || opts.HeadersProvider == nil {
			t.Errorf("TLS %v, credentials %v, headers %v: want all from the profile", opts.ConnectionOptions.TLS, opts.Credentials, opts.HeadersProvider)
		}
	})
	t.Run("environment over profile, handoff's own over both", func(t *testing.T) {
		t.Setenv("TEMPORAL_PROFILE", "cloud")
		t.Setenv("TEMPORAL_NAMESPACE", "from-env")
		t.Setenv("HANDOFF_TEMPORAL_ADDRESS", "handoff.example:7233")
		cfg := mustLoad(t)
		if cfg.Temporal.Address != "handoff.example:7233" || cfg.Temporal.Namespace != "from-env" {
			t.Errorf("address %q namespace %q", cfg.Temporal.Address, cfg.Temporal.Namespace)
		}
	})
	t.Run("a profile that does not exist", func(t *testing.T) {
		t.Setenv("TEMPORAL_PROFILE", "nope")
		if _, err := Load(); err == nil {
			t.Error("Load with a missing profile: nil error")
		}
	})
}

func mustLoad(t *testing.T) Config {
	t.Helper()
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestTheDevServerIgnoresTheClientProfile proves `handoff dev` does not
// follow the developer's TEMPORAL_ADDRESS to another cluster.
func TestTheDevServerIgnoresTheClientProfile(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "elsewhere.example:7233")
	t.Setenv("TEMPORAL_API_KEY", "someone-elses")
	cfg := mustLoad(t)
	cfg.Temporal.IgnoreClientProfile()
	if cfg.Temporal.Address != "localhost:7233" || cfg.Temporal.APIKey != "" || cfg.Temporal.ClientOptions().Credentials != nil {
		t.Errorf("address %q, API key %q: the profile is still used", cfg.Temporal.Address, cfg.Temporal.APIKey)
	}
}
