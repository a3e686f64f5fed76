// Package worker connects handoff to Temporal: it dials the cluster (plain,
// mTLS or API key), makes sure the namespace has handoff's search
// attributes, and runs the workers — one for the workflows and one per
// provider task queue, so that a slow provider holds up only its own queue.
package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/handoff-hq/handoff/activities"
	"github.com/handoff-hq/handoff/config"
	"github.com/handoff-hq/handoff/workflows"
)

// Dial connects to the Temporal cluster the configuration names.
func Dial(ctx context.Context, cfg config.Temporal, logger *slog.Logger) (client.Client, error) {
	opts := client.Options{
		HostPort:  cfg.Address,
		Namespace: cfg.Namespace,
		Logger:    sdklog.NewStructuredLogger(logger),
	}
	if cfg.TLSEnabled() {
		tlsCfg, err := tlsConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("dial temporal: %w", err)
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	if cfg.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.APIKey)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("dial temporal at %s: %w", cfg.Address, err)
	}
	return c, nil
}

func tlsConfig(cfg config.Temporal) (*tls.Config, error) {
	out := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	if cfg.TLS.CA != "" {
		pem, err := os.ReadFile(cfg.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("read CA: no certificate found")
		}
		out.RootCAs = pool
	}
	return out, nil
}

// RegisterSearchAttributes adds handoff's search attributes to the namespace
// where they are missing. Temporal Cloud namespaces must have them added
// beforehand; there this only checks.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	existing, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, key := range workflows.SearchAttributes {
		if _, ok := existing.GetCustomAttributes()[key.GetName()]; !ok {
			missing[key.GetName()] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

// systemActivities lists the activities that run on each provider's queue.
func systemActivities(acts *activities.Activities) map[string][]any {
	return map[string][]any{
		"crm":        {acts.UpsertCustomer},
		"payments":   {acts.CreateCharge, acts.GetCharge, acts.RefundCharge},
		"accounting": {acts.CreateInvoice, acts.VoidInvoice},
		"mail":       {acts.SendEmail},
	}
}

// Workers are handoff's Temporal workers, started and stopped together.
type Workers struct {
	all []sdkworker.Worker
}

// New builds the workflow worker and one activity worker per provider
// queue, each limited by its provider's rate limit (enforced by Temporal for
// the whole queue, across workers) and concurrency.
func New(c client.Client, acts *activities.Activities, cfg config.Config) (*Workers, error) {
	if c == nil || acts == nil {
		return nil, errors.New("new workers: client and activities are required")
	}
	wf := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{})
	registerWorkflows(wf)
	ws := &Workers{all: []sdkworker.Worker{wf}}
	byQueue := systemActivities(acts)
	for _, system := range config.Systems {
		p, _ := cfg.Provider(system)
		w := sdkworker.New(c, workflows.ProviderTaskQueue(system), sdkworker.Options{
			DisableWorkflowWorker:              true,
			TaskQueueActivitiesPerSecond:       p.RateLimit,
			MaxConcurrentActivityExecutionSize: p.Concurrency,
		})
		for _, fn := range byQueue[system] {
			w.RegisterActivity(fn)
		}
		ws.all = append(ws.all, w)
	}
	return ws, nil
}

// Start starts every worker; on failure the ones already started are stopped.
func (ws *Workers) Start() error {
	for i, w := range ws.all {
		if err := w.Start(); err != nil {
			for _, started := range ws.all[:i] {
				started.Stop()
			}
			return fmt.Errorf("start worker: %w", err)
		}
	}
	return nil
}

// Stop stops every worker, letting running activities finish.
func (ws *Workers) Stop() {
	for _, w := range ws.all {
		w.Stop()
	}
}
