package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/devserver"
	"github.com/handoff-hq/handoff/system"
	"github.com/handoff-hq/handoff/worker"
)

// devOptions are the flags of handoff dev.
type devOptions struct {
	dataDir, binary string
	uiPort          int
}

func devCommand() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system locally: Temporal dev server, worker, API, sandbox",
		Long: `Run the whole system in one process: the pinned Temporal dev server (unless one
already answers at HANDOFF_TEMPORAL_ADDRESS), the sandbox providers, the worker and
the API, with development credentials kept in the data directory. Ctrl-C stops it.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger("text")
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), log, o)
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data", ".data", "directory for the dev server's state and development credentials")
	cmd.Flags().StringVar(&o.binary, "temporal", "bin/temporal", "the pinned Temporal CLI")
	cmd.Flags().IntVar(&o.uiPort, "ui-port", 8233, "port of the Temporal Web UI")
	return cmd
}

// runDev runs the whole system in one process: it starts the pinned Temporal
// dev server (unless one already answers), then the sandbox, the worker and
// the API, prints where they are, and on Ctrl-C or SIGTERM stops them in the
// reverse order, the dev server last.
func runDev(ctx context.Context, log *slog.Logger, o devOptions) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", o.dataDir, err)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	cfg.Temporal.IgnoreClientProfile()
	if !config.LookupEnv("TEMPORAL_UI_URL") {
		cfg.Temporal.UI.URL = fmt.Sprintf("http://localhost:%d", o.uiPort)
	}
	creds, err := devCredentials(o.dataDir, &cfg)
	if err != nil {
		return err
	}
	if err := cfg.Validate(config.ValidateOptions{NeedAPITokens: true}); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	cliConfig, err := writeCLIConfig(o.dataDir, cfg, creds)
	if err != nil {
		return err
	}
	apiLn, err := listen(cfg.APIAddr)
	if err != nil {
		return err
	}
	sandboxLn, err := listen(cfg.Sandbox.Addr)
	if err != nil {
		apiLn.Close()
		return err
	}

	temporalNote := "already running, used as is"
	parts := []part{}
	if !devserver.Reachable(ctx, cfg.Temporal.Address, cfg.Temporal.Namespace) {
		dev, logFile, err := startDevServer(ctx, cfg, o.binary, o.dataDir, o.uiPort)
		if err != nil {
			apiLn.Close()
			sandboxLn.Close()
			return err
		}
		defer func() {
			if err := dev.Stop(15 * time.Second); err != nil {
				log.Error("stop dev server", "error", err)
			}
			logFile.Close()
		}()
		temporalNote = "started here, state in " + filepath.Join(o.dataDir, "temporal.db")
		parts = append(parts, part{"temporal dev server", func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case <-dev.Done():
				return fmt.Errorf("exited (log: %s): %w", logFile.Name(), dev.Err())
			}
		}})
	}

	// One registry: /metrics shows handoff's own series and the SDK's.
	reg := newRegistry()
	c, closeMetrics, err := dialWithMetrics(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	defer c.Close()
	if err := worker.RegisterSearchAttributes(ctx, c, cfg.Temporal.Namespace); err != nil {
		return err
	}

	parts = append(parts,
		part{"sandbox", func(ctx context.Context) error { return serveSandbox(ctx, cfg, sandboxLn, log) }},
		part{"worker", func(ctx context.Context) error { return runWorkers(ctx, cfg, c, reg, log, nil) }},
		part{"api", func(ctx context.Context) error { return serveAPI(ctx, cfg, c, apiLn, reg, log) }},
	)
	err = runParts(ctx, parts, func() { printBanner(cfg, creds, temporalNote, cliConfig) })
	fmt.Println("handoff stopped.")
	return err
}

// part is one long-running piece of the system; run returns when its
// context ends.
type part struct {
	name string
	run  func(context.Context) error
}

// runParts starts the parts in order and, once ctx ends or any part stops on
// its own, stops them in reverse order, each after the one started after it:
// the API stops taking requests before the workers stop, and the workers
// before the providers they call.
func runParts(ctx context.Context, parts []part, started func()) error {
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	exited := make(chan error, len(parts))
	all := make([]running, 0, len(parts))
	for _, p := range parts {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := running{cancel: cancel, done: make(chan error, 1)}
		go func() {
			err := p.run(pctx)
			if err == nil && pctx.Err() == nil {
				err = errors.New("stopped unexpectedly")
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", p.name, err)
			}
			r.done <- err
			if pctx.Err() == nil {
				exited <- err
			}
		}()
		all = append(all, r)
	}
	started()
	var first error
	select {
	case <-ctx.Done():
	case first = <-exited:
	}
	for i := len(all) - 1; i >= 0; i-- {
		all[i].cancel()
		if err := <-all[i].done; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func startDevServer(ctx context.Context, cfg config.Config, binary, dataDir string, uiPort int) (*devserver.Server, *os.File, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, nil, fmt.Errorf("no Temporal server at %s and no CLI to start one (run `make temporal`): %w", cfg.Temporal.Address, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.Temporal.Address); host != "localhost" && host != "127.0.0.1" && host != "" {
		return nil, nil, fmt.Errorf("temporal at %s does not answer; a dev server is started only for a local address", cfg.Temporal.Address)
	}
	logFile, err := os.OpenFile(filepath.Join(dataDir, "temporal.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open dev server log: %w", err)
	}
	fmt.Printf("Starting the Temporal dev server at %s (log: %s) …\n", cfg.Temporal.Address, logFile.Name())
	dev, err := devserver.Start(ctx, devserver.Options{
		Binary: binary, Address: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace,
		UIPort: uiPort, DBFile: filepath.Join(dataDir, "temporal.db"), Output: logFile,
		UICodecEndpoint: codecEndpoint(cfg),
	})
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	return dev, logFile, nil
}

// devCredentials fills in development-only bearer tokens where the
// environment sets none. They are generated once and kept in the data
// directory, so that they survive restarts; a value set in the environment
// always wins.
func devCredentials(dataDir string, cfg *config.Config) (map[string]string, error) {
	path := filepath.Join(dataDir, "dev-credentials.env")
	stored, err := config.ReadEnvFile(path)
	if err != nil {
		return nil, err
	}
	shown := map[string]string{}
	for _, cred := range devCredentialSpecs(cfg) {
		if config.LookupEnv(cred.name) {
			continue
		}
		value, ok := stored[cred.name]
		if !ok {
			value = cred.prefix + randomHex(16)
			if cred.random != nil {
				value = cred.prefix + cred.random()
			}
			stored[cred.name] = value
		}
		cred.set(value)
		shown[cred.name] = value
	}
	// The sandbox's providers authenticate like real ones: with OAuth2
	// client credentials that the sandbox issues tokens for.
	cfg.SetSandboxClient(cfg.Sandbox.ClientID, cfg.Sandbox.ClientSecret)
	// Every value is kept: a payload key lost on restart would leave the
	// earlier workflows unreadable.
	return shown, writeEnvFile(path, "Development-only credentials generated by `handoff dev`. Never use them elsewhere.", stored)
}

type devCredential struct {
	name   string
	prefix string
	set    func(string)
	// random makes the value after the prefix; default 32 hex digits.
	random func() string
}

func devCredentialSpecs(cfg *config.Config) []devCredential {
	return []devCredential{
		{name: "API_TOKENS", prefix: "dev_api_", set: func(v string) { cfg.APITokens = []string{v} }},
		{name: "OPERATOR_TOKENS", prefix: "dev_operator_", set: func(v string) { cfg.OperatorTokens = []string{v} }},
		{name: "SANDBOX_CLIENT_ID", prefix: "dev_client_", set: func(v string) { cfg.Sandbox.ClientID = v }},
		{name: "SANDBOX_CLIENT_SECRET", prefix: "dev_secret_", set: func(v string) { cfg.Sandbox.ClientSecret = v }},
		// whsec_ and 32 hex digits, which read as base64 are a 24-byte key.
		{name: "PAYMENTS_WEBHOOK_SECRETS", prefix: "whsec_", set: webhookSecret(cfg, system.Payments.Name)},
		{name: "CRM_WEBHOOK_SECRETS", prefix: "whsec_", set: webhookSecret(cfg, system.CRM.Name)},
		{name: "ACCOUNTING_WEBHOOK_SECRETS", prefix: "whsec_", set: webhookSecret(cfg, system.Accounting.Name)},
		// The payload key: an id of its own (a key made again for the same
		// state is then reported as missing, not as altered data), and 32
		// random bytes in base64.
		{name: "PAYLOAD_KEYS", prefix: "dev-", set: func(v string) { _ = cfg.SetPayloadKeys([]string{v}) }, random: func() string {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			return randomHex(3) + ":" + base64.StdEncoding.EncodeToString(key)
		}},
	}
}

// codecEndpoint is where the Web UI decodes payloads: the API's codec
// endpoint, when payloads are encrypted.
func codecEndpoint(cfg config.Config) string {
	if cfg.Temporal.Encryption == nil {
		return ""
	}
	return config.URLFor(cfg.APIAddr) + "/codec"
}

// webhookSecret sets the system's webhook signing secret.
func webhookSecret(cfg *config.Config, name string) func(string) {
	return func(v string) {
		p, _ := cfg.Provider(name)
		p.WebhookSecrets = []string{v}
		cfg.SetProvider(name, p)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// writeEnvFile writes values as HANDOFF_NAME=value lines under a comment,
// readable by its owner only (config.ReadEnvFile reads them back).
func writeEnvFile(path, comment string, values map[string]string) error {
	var b strings.Builder
	b.WriteString("# " + comment + "\n")
	for _, k := range slices.Sorted(maps.Keys(values)) {
		fmt.Fprintf(&b, "%s_%s=%s\n", config.Prefix, k, values[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// WriteFile keeps the mode of a file that was there.
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeCLIConfig writes the handoff CLI's configuration for this system
// (its API's URL and the development tokens) and returns its path.
func writeCLIConfig(dataDir string, cfg config.Config, creds map[string]string) (string, error) {
	path := filepath.Join(dataDir, "cli.env")
	values := map[string]string{"URL": config.URLFor(cfg.APIAddr)}
	// Tokens set in the environment are not written down here.
	if t := creds["OPERATOR_TOKENS"]; t != "" {
		values["OPERATOR_TOKEN"] = t
	}
	if t := creds["API_TOKENS"]; t != "" {
		values["API_TOKEN"] = t
	}
	return path, writeEnvFile(path, "The handoff CLI's settings for `make run` (development only): HANDOFF_CONFIG="+path+" ./bin/handoff …", values)
}

func printBanner(cfg config.Config, creds map[string]string, temporalNote, cliConfig string) {
	apiURL := config.URLFor(cfg.APIAddr)
	token := creds["API_TOKENS"]
	if token == "" {
		token = "(from HANDOFF_API_TOKENS)"
	}
	operator := creds["OPERATOR_TOKENS"]
	if operator == "" {
		operator = "(from HANDOFF_OPERATOR_TOKENS)"
	}
	fmt.Printf(`
handoff is running (development mode)

  API        %s   (reference: %s/docs/api, OpenAPI: %s/openapi.yaml)
  Web UI     %s/namespaces/%s/workflows
  Temporal   %s (namespace %s; %s)
  Sandbox    %s   (state: %s/_sandbox/state)
  Operations %s/ops   (sign in with the operator token)
  Metrics    %s/metrics
  Webhooks   %s/webhooks/{system}   (the sandbox signs and delivers its payment, contact and customer events here)

  API token       %s   (development only)
  Operator token  %s   (development only)

Place an order:
  curl -s -X POST %s/v1/orders -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
    -d '{"order_id":"A-1001","customer":{"email":"ada@example.com","name":"Ada"},"currency":"eur","amount":2500,"items":[{"sku":"book","quantity":1,"unit_amount":2500}]}'
  curl -s %s/v1/orders/A-1001 -H 'Authorization: Bearer %s'

Operate it from the command line (through the API; settings in %s):
  export HANDOFF_CONFIG=%s
  ./bin/handoff actions list
  ./bin/handoff orders show A-1001

Keep a customer in the CRM and accounting:
  curl -s -X PUT %s/v1/customers/c-1001 -H 'Authorization: Bearer %s' \
    -H 'Content-Type: application/json' -d '{"version":1,"email":"ada@example.com","name":"Ada","billing_address":"1 Analytical Way"}'
  curl -s %s/v1/customers/c-1001 -H 'Authorization: Bearer %s'

Press Ctrl-C to stop.
`, apiURL, apiURL, apiURL, strings.TrimRight(cfg.Temporal.UI.URL, "/"), cfg.Temporal.Namespace,
		cfg.Temporal.Address, cfg.Temporal.Namespace, temporalNote,
		cfg.SandboxURL(), cfg.SandboxURL(), apiURL, apiURL, apiURL,
		token, operator, apiURL, token, apiURL, token, cliConfig, cliConfig, apiURL, token, apiURL, token)
}
