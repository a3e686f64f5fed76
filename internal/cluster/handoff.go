package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FleetOptions configure handoff's processes beside a cluster.
type FleetOptions struct {
	// APIs and Workers are how many instances of each run.
	APIs, Workers int
	// BalancerPort, SandboxPort, APIPorts and MetricsPorts are where they
	// listen; zero ones are picked free.
	BalancerPort, SandboxPort int
	APIPorts, MetricsPorts    []int
	// Env is added to every handoff process's environment, after the
	// cluster's own settings.
	Env []string
}

// Fleet is handoff running beside a cluster: the sandbox, API instances
// behind a failover balancer, and workers.
type Fleet struct {
	// URL is the balancer's, APIURLs each API instance's.
	URL     string
	APIURLs []string
	// Sandbox is the sandbox's URL, WorkerMetrics each worker's /metrics.
	Sandbox       string
	WorkerMetrics []string
	// Env is the environment every handoff process gets (credentials
	// included), for commands run against the fleet.
	Env []string

	sandbox  *Process
	apis     []*Process
	workers  []*Process
	balancer *http.Server
}

// Credentials are a fleet's development-only secrets: generated once per
// cluster directory and kept in credentials.env (0600) beside its state, so
// that a cluster started again reads the workflows it wrote.
func Credentials(dir string) ([]string, error) {
	path := filepath.Join(dir, "credentials.env")
	if raw, err := os.ReadFile(path); err == nil {
		var env []string
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "HANDOFF_") {
				env = append(env, line)
			}
		}
		return env, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{
		"HANDOFF_API_TOKENS=cluster_api_" + randomHex(16),
		"HANDOFF_OPERATOR_TOKENS=cluster_operator_" + randomHex(16),
		"HANDOFF_SANDBOX_CLIENT_ID=cluster_client_" + randomHex(8),
		"HANDOFF_SANDBOX_CLIENT_SECRET=cluster_secret_" + randomHex(16),
		"HANDOFF_PAYMENTS_WEBHOOK_SECRETS=whsec_" + randomHex(16),
		"HANDOFF_CRM_WEBHOOK_SECRETS=whsec_" + randomHex(16),
		"HANDOFF_ACCOUNTING_WEBHOOK_SECRETS=whsec_" + randomHex(16),
		"HANDOFF_PAYLOAD_KEYS=cluster-" + randomHex(3) + ":" + base64.StdEncoding.EncodeToString(key),
	}
	body := "# Development-only credentials of this local cluster. Never use them elsewhere.\n" + strings.Join(env, "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return nil, err
	}
	return env, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Target is the Temporal a fleet works against.
type Target struct {
	// Frontend is its gRPC address, UI its Web UI's URL (may be empty).
	Frontend, UI string
	// TLS, when set, are the client's certificate files.
	TLS *TLSFiles
	// Dir keeps the fleet's credentials and logs; Bin holds handoff.
	Dir, Bin string
	// Progress, when set, is told what is being started.
	Progress func(string)
}

func (t Target) progress(s string) {
	if t.Progress != nil {
		t.Progress(s)
	}
}

func (t Target) logs() string { return filepath.Join(t.Dir, "logs") }

// Target is the cluster as a fleet's target.
func (t *Temporal) Target() Target {
	return Target{Frontend: t.Frontend, UI: t.UI, TLS: t.TLS, Dir: t.opts.Dir, Bin: t.opts.Bin, Progress: t.opts.Progress}
}

// StartFleet runs `handoff setup`, then the sandbox, the workers and the API
// instances with the balancer in front, and waits until each is ready.
func StartFleet(ctx context.Context, t Target, opts FleetOptions) (*Fleet, error) {
	if err := os.MkdirAll(t.logs(), 0o755); err != nil {
		return nil, err
	}
	creds, err := Credentials(t.Dir)
	if err != nil {
		return nil, err
	}
	port := func(p int) (int, error) {
		if p != 0 {
			return p, nil
		}
		return FreePort()
	}
	balancerPort, err := port(opts.BalancerPort)
	if err != nil {
		return nil, err
	}
	// Held from now on, so that nothing else takes it meanwhile.
	balancerLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", balancerPort))
	if err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	sandboxPort, err := port(opts.SandboxPort)
	if err != nil {
		return nil, err
	}
	f := &Fleet{URL: fmt.Sprintf("http://127.0.0.1:%d", balancerPort), Sandbox: fmt.Sprintf("http://127.0.0.1:%d", sandboxPort)}
	f.Env = append([]string{
		"HANDOFF_TEMPORAL_ADDRESS=" + t.Frontend,
		"HANDOFF_TEMPORAL_NAMESPACE=default",
		"HANDOFF_TEMPORAL_UI_URL=" + t.UI, // empty leaves links out
		"HANDOFF_SANDBOX_ADDR=" + strings.TrimPrefix(f.Sandbox, "http://"),
		// Webhooks reach the API instances through the balancer, as they
		// would through a load balancer in production.
		"HANDOFF_SANDBOX_WEBHOOK_URL=" + f.URL + "/webhooks",
		"HANDOFF_PAYMENTS_URL=" + f.Sandbox + "/payments",
		"HANDOFF_ACCOUNTING_URL=" + f.Sandbox + "/accounting",
		"HANDOFF_CRM_URL=" + f.Sandbox + "/crm",
		"HANDOFF_MAIL_URL=" + f.Sandbox + "/mail",
		"HANDOFF_LOG_FORMAT=json",
	}, creds...)
	if t.TLS != nil {
		f.Env = append(f.Env, "HANDOFF_TEMPORAL_TLS_CA="+t.TLS.CA, "HANDOFF_TEMPORAL_TLS_CERT="+t.TLS.Cert, "HANDOFF_TEMPORAL_TLS_KEY="+t.TLS.Key)
	}
	f.Env = append(f.Env, opts.Env...)
	ok := false
	defer func() {
		if !ok {
			f.Stop()
			balancerLn.Close()
		}
	}()
	handoff := filepath.Join(t.Bin, "handoff")

	t.progress("running handoff setup (namespace and search attributes)")
	setup := newProcess(t.logs(), "handoff-setup", handoff, []string{"setup", "--retention", "24h"}, f.Env)
	if err := setup.Start(); err != nil {
		return nil, err
	}
	select {
	case <-setup.Exited():
	case <-ctx.Done():
		setup.Stop(5 * time.Second)
		return nil, ctx.Err()
	}
	if err := setup.Err(); err != nil {
		return nil, fmt.Errorf("handoff setup: %w\n%s", err, setup.Tail(2000))
	}

	f.sandbox = newProcess(t.logs(), "sandbox", handoff, []string{"sandbox"}, f.Env)
	if err := f.sandbox.Start(); err != nil {
		return nil, err
	}
	if err := f.sandbox.waitFor(ctx, "the sandbox to answer", func(ctx context.Context) bool {
		return answers(ctx, f.Sandbox+"/_sandbox/healthz")
	}); err != nil {
		return nil, err
	}
	for i := range opts.Workers {
		p, err := port(at(opts.MetricsPorts, i))
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		w := newProcess(t.logs(), fmt.Sprintf("worker-%d", i+1), handoff, []string{"worker"}, append(slices.Clone(f.Env), "HANDOFF_METRICS_ADDR="+addr))
		f.workers = append(f.workers, w)
		f.WorkerMetrics = append(f.WorkerMetrics, "http://"+addr+"/metrics")
		t.progress("starting " + w.Name)
		if err := w.Start(); err != nil {
			return nil, err
		}
	}
	for i := range opts.APIs {
		p, err := port(at(opts.APIPorts, i))
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		env := append(slices.Clone(f.Env), "HANDOFF_API_ADDR="+addr, "HANDOFF_WORKER_METRICS_URLS="+strings.Join(f.WorkerMetrics, ","))
		a := newProcess(t.logs(), fmt.Sprintf("api-%d", i+1), handoff, []string{"api"}, env)
		f.apis = append(f.apis, a)
		f.APIURLs = append(f.APIURLs, "http://"+addr)
		t.progress("starting " + a.Name)
		if err := a.Start(); err != nil {
			return nil, err
		}
	}
	for i := range f.workers {
		if err := f.WaitWorker(ctx, i); err != nil {
			return nil, err
		}
	}
	for i := range f.apis {
		if err := f.WaitAPI(ctx, i); err != nil {
			return nil, err
		}
	}
	f.balancer = &http.Server{Handler: newBalancer(f.APIURLs), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.balancer.Serve(balancerLn) }()
	ok = true
	return f, nil
}

func at(ports []int, i int) int {
	if i < len(ports) {
		return ports[i]
	}
	return 0
}

// answers reports whether url answers with a 2xx status.
func answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// API and Worker are the processes of the i-th instance (from 0).
func (f *Fleet) API(i int) *Process    { return f.apis[i] }
func (f *Fleet) Worker(i int) *Process { return f.workers[i] }

// Processes are the fleet's programs.
func (f *Fleet) Processes() []*Process {
	return append(append([]*Process{f.sandbox}, f.apis...), f.workers...)
}

// WaitAPI waits until the i-th API instance is ready and reaches Temporal.
func (f *Fleet) WaitAPI(ctx context.Context, i int) error {
	return waitReady(ctx, f.apis[i], f.APIURLs[i]+"/readyz?temporal=required")
}

// WaitWorker waits until the i-th worker polls.
func (f *Fleet) WaitWorker(ctx context.Context, i int) error {
	return waitReady(ctx, f.workers[i], strings.TrimSuffix(f.WorkerMetrics[i], "/metrics")+"/readyz")
}

// waitReady waits up to two minutes until the program's probe answers.
func waitReady(ctx context.Context, p *Process, probe string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return p.waitFor(ctx, "its /readyz", func(ctx context.Context) bool { return answers(ctx, probe) })
}

// Stop stops the balancer, the API instances, the workers and the sandbox.
func (f *Fleet) Stop() {
	if f.balancer != nil {
		_ = f.balancer.Close()
	}
	var wg sync.WaitGroup
	for _, group := range [][]*Process{f.apis, f.workers, {f.sandbox}} {
		for _, p := range group {
			if p == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop(40 * time.Second) }()
		}
		wg.Wait()
	}
}

// balancer spreads requests over the API instances in turn and, when one
// does not take the connection, sends the request to the next: a failover
// load balancer in front of the fleet.
type balancer struct {
	targets []*url.URL
	next    atomic.Uint64
	proxy   *httputil.ReverseProxy
}

// balancerStart is the context key of the target a request went to first.
type balancerStart struct{}

func newBalancer(urls []string) *balancer {
	b := &balancer{}
	for _, u := range urls {
		parsed, _ := url.Parse(u)
		b.targets = append(b.targets, parsed)
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(b.targets[r.In.Context().Value(balancerStart{}).(int)])
			r.SetXForwarded()
		},
		Transport: &failover{targets: b.targets},
		// A request to an instance that dies while answering gets 502;
		// webhook senders deliver it again.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return b
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := int(b.next.Add(1) % uint64(len(b.targets)))
	b.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), balancerStart{}, start)))
}

// failover sends a request to its target and, when the connection is
// refused (nothing was sent), to each other target in turn.
type failover struct {
	targets []*url.URL
}

func (f *failover) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, 4<<20)); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	start, _ := r.Context().Value(balancerStart{}).(int)
	var last error
	for i := range len(f.targets) {
		t := f.targets[(start+i)%len(f.targets)]
		req := r.Clone(r.Context())
		req.URL.Scheme, req.URL.Host = t.Scheme, t.Host
		req.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := http.DefaultTransport.RoundTrip(req)
		var op *net.OpError
		if err == nil || !errors.As(err, &op) || op.Op != "dial" {
			return resp, err
		}
		last = err
	}
	return nil, last
}
