// Package cluster runs a real Temporal cluster on PostgreSQL on this
// machine, each service its own process, with the Temporal Web UI, and
// handoff's processes beside it: the sandbox, API instances behind a
// failover balancer, and workers. `make cluster` and the scale-out tests use
// it. Nothing here is part of handoff itself: the handoff processes are the
// production binary with production environment variables.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// PostgresBin is where Debian's PostgreSQL 15 keeps its programs.
const PostgresBin = "/usr/lib/postgresql/15/bin"

// Services are the Temporal server's services, each run as its own process,
// in the order they start.
var Services = []string{"history", "matching", "frontend", "worker"}

// Options configure a cluster.
type Options struct {
	// Dir keeps the cluster's state: PostgreSQL's data, configuration,
	// certificates, logs. A cluster started again on the same Dir keeps
	// its workflows.
	Dir string
	// Bin holds temporal-server, temporal-sql-tool, temporal-ui-server
	// and handoff.
	Bin string
	// Ports are the ports to listen on; zero ones are picked free.
	Ports Ports
	// Fast trades PostgreSQL's durability for speed (fsync off): for
	// clusters a test throws away.
	Fast bool
	// TLS turns on mTLS at the frontend, with certificates made in Dir/tls.
	TLS bool
	// CodecEndpoint is where the Web UI decodes payloads.
	CodecEndpoint string
	// Progress, when set, is told what is being started.
	Progress func(string)
}

// Ports are the cluster's ports on 127.0.0.1.
type Ports struct {
	Postgres, Frontend, FrontendHTTP, History, Matching, Worker, UI int
	// Membership ports of the four services, in Services' order.
	Membership [4]int
}

func (p *Ports) fill() error {
	all := []*int{&p.Postgres, &p.Frontend, &p.FrontendHTTP, &p.History, &p.Matching, &p.Worker, &p.UI,
		&p.Membership[0], &p.Membership[1], &p.Membership[2], &p.Membership[3]}
	for _, port := range all {
		ports.take(*port)
	}
	for _, port := range []*int{&p.Postgres, &p.Frontend, &p.FrontendHTTP, &p.History, &p.Matching, &p.Worker, &p.UI,
		&p.Membership[0], &p.Membership[1], &p.Membership[2], &p.Membership[3]} {
		if *port == 0 {
			free, err := FreePort()
			if err != nil {
				return err
			}
			*port = free
		}
	}
	return nil
}

// Temporal is a running Temporal cluster on PostgreSQL.
type Temporal struct {
	opts  Options
	Ports Ports
	// Frontend is the frontend's gRPC address, UI the Web UI's URL.
	Frontend, UI string
	// TLS holds the client's certificate files when mTLS is on.
	TLS *TLSFiles

	postgres *Process
	services map[string]*Process
	ui       *Process
}

// StartTemporal starts PostgreSQL (made and given Temporal's schemas on
// first use), the four Temporal services and the Web UI, and waits until
// the frontend answers.
func StartTemporal(ctx context.Context, opts Options) (*Temporal, error) {
	if err := opts.Ports.fill(); err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "pg", "temporal/config", "ui/config"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	t := &Temporal{opts: opts, Ports: opts.Ports, services: map[string]*Process{},
		Frontend: fmt.Sprintf("127.0.0.1:%d", opts.Ports.Frontend), UI: fmt.Sprintf("http://127.0.0.1:%d", opts.Ports.UI)}
	ok := false
	defer func() {
		if !ok {
			t.Stop()
		}
	}()
	if opts.TLS {
		files, err := MakeCertificates(filepath.Join(opts.Dir, "tls"))
		if err != nil {
			return nil, err
		}
		t.TLS = &files
	}
	if err := t.startPostgres(ctx); err != nil {
		return nil, err
	}
	if err := t.writeConfig(); err != nil {
		return nil, err
	}
	// The first service to start on a fresh database writes the
	// cluster's metadata; services starting at the same moment race to
	// write it and the losers stop. So history starts alone, and the
	// others once it listens.
	for i, svc := range Services {
		t.progress("starting Temporal's " + svc + " service")
		if err := t.StartService(svc); err != nil {
			return nil, err
		}
		if i == 0 {
			addr := fmt.Sprintf("127.0.0.1:%d", t.Ports.History)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err := t.services[svc].waitFor(wctx, "history to listen", func(ctx context.Context) bool { return listening(ctx, addr) })
			cancel()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := t.waitFrontend(ctx); err != nil {
		return nil, err
	}
	t.progress("starting the Temporal Web UI")
	t.ui = newProcess(t.logs(), "temporal-ui", filepath.Join(opts.Bin, "temporal-ui-server"),
		[]string{"--root", filepath.Join(opts.Dir, "ui"), "--config", "config", "--env", "cluster", "start"}, nil)
	if err := t.ui.Start(); err != nil {
		return nil, err
	}
	if err := t.ui.waitFor(ctx, "the Web UI to answer", func(ctx context.Context) bool { return answers(ctx, t.UI) }); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

func (t *Temporal) progress(s string) {
	if t.opts.Progress != nil {
		t.opts.Progress(s)
	}
}

func (t *Temporal) logs() string { return filepath.Join(t.opts.Dir, "logs") }

// postgresUser is whom PostgreSQL runs as: it refuses root, so a root
// caller runs it as the postgres user Debian's package made.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL does not run as root, and there is no postgres user to run it as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres makes the database cluster on first use, starts it, and
// gives it Temporal's schemas.
func (t *Temporal) startPostgres(ctx context.Context) error {
	cred, err := postgresUser()
	if err != nil {
		return err
	}
	dir := filepath.Join(t.opts.Dir, "pg")
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.MkdirAll(sock, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := chownAll(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		t.progress("making the PostgreSQL database cluster")
		if err := os.RemoveAll(data); err != nil { // what an interrupted initdb left
			return err
		}
		initdb := exec.CommandContext(ctx, filepath.Join(PostgresBin, "initdb"), "-D", data, "-U", "temporal", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N")
		initdb.SysProcAttr, initdb.Env = &syscall.SysProcAttr{Credential: cred}, baseEnv()
		if out, err := initdb.CombinedOutput(); err != nil {
			hint := ""
			if cred != nil {
				hint = fmt.Sprintf(" (PostgreSQL runs as the postgres user, which must be able to enter %s and every directory above it)", dir)
			}
			return fmt.Errorf("initdb%s: %w\n%s", hint, err, out)
		}
	}
	args := []string{"-D", data, "-p", strconv.Itoa(t.Ports.Postgres), "-k", sock, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"}
	if t.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	t.postgres = newProcess(t.logs(), "postgres", filepath.Join(PostgresBin, "postgres"), args, nil)
	t.postgres.user = cred
	t.progress("starting PostgreSQL")
	if err := t.postgres.Start(); err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", t.Ports.Postgres)
	if err := t.postgres.waitFor(ctx, "PostgreSQL to listen", func(ctx context.Context) bool { return listening(ctx, addr) }); err != nil {
		return err
	}
	// Every step is idempotent: a start interrupted halfway is finished,
	// and a schema of an older server version is brought up to date.
	t.progress("setting up Temporal's schemas")
	tool := filepath.Join(t.opts.Bin, "temporal-sql-tool")
	for _, db := range []struct{ name, schema string }{{"temporal", "postgresql/v12/temporal"}, {"temporal_visibility", "postgresql/v12/visibility"}} {
		for _, step := range [][]string{{"create-database"}, {"setup-schema", "-v", "0.0"}, {"update-schema", "--schema-name", db.schema}} {
			args := append([]string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", strconv.Itoa(t.Ports.Postgres), "-u", "temporal", "--db", db.name}, step...)
			cmd := exec.CommandContext(ctx, tool, args...)
			cmd.Env = baseEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("temporal-sql-tool %s: %w\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	return nil
}

func chownAll(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// StartService starts (or starts again) one Temporal service.
func (t *Temporal) StartService(svc string) error {
	p, ok := t.services[svc]
	if !ok {
		p = newProcess(t.logs(), "temporal-"+svc, filepath.Join(t.opts.Bin, "temporal-server"),
			[]string{"--root", filepath.Join(t.opts.Dir, "temporal"), "--config", "config", "--env", "cluster", "--allow-no-auth", "start", "--service", svc}, nil)
		t.services[svc] = p
	}
	return p.Start()
}

// Processes are the cluster's programs: PostgreSQL, the services, the UI.
func (t *Temporal) Processes() []*Process {
	out := []*Process{t.postgres}
	for _, svc := range Services {
		out = append(out, t.services[svc])
	}
	return append(out, t.ui)
}

// Service is the process of one Temporal service.
func (t *Temporal) Service(svc string) *Process { return t.services[svc] }

// RestartService kills a service (SIGKILL) and starts it again.
func (t *Temporal) RestartService(svc string) error {
	p := t.services[svc]
	if p == nil {
		return fmt.Errorf("no service %s", svc)
	}
	p.Kill()
	return t.StartService(svc)
}

// waitFrontend waits until the frontend answers its health check, and
// every service still runs.
func (t *Temporal) waitFrontend(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts := client.Options{HostPort: t.Frontend, Namespace: "temporal-system", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))}
	if t.TLS != nil {
		tlsCfg, err := t.TLS.ClientConfig()
		if err != nil {
			return err
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	var stopped error
	err := t.services["frontend"].waitFor(ctx, "the frontend to answer", func(ctx context.Context) bool {
		for _, svc := range Services {
			if p := t.services[svc]; !p.Running() {
				stopped = fmt.Errorf("%s stopped while the cluster started:\n%s", p.Name, p.Tail(3000))
				return true
			}
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		c, err := client.DialContext(dctx, opts)
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.CheckHealth(dctx, &client.CheckHealthRequest{})
		return err == nil
	})
	if stopped != nil {
		return stopped
	}
	return err
}

// Stop stops the Web UI, the services and PostgreSQL, in that order.
func (t *Temporal) Stop() {
	if t.ui != nil {
		t.ui.Stop(5 * time.Second)
	}
	for i := len(Services) - 1; i >= 0; i-- {
		if p := t.services[Services[i]]; p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if t.postgres != nil {
		// SIGINT is PostgreSQL's fast shutdown; Stop sends SIGTERM, its
		// smart one, which waits for clients that are gone by now.
		t.postgres.Stop(20 * time.Second)
	}
}

func (t *Temporal) writeConfig() error {
	values := map[string]any{"P": t.Ports, "TLS": t.TLS, "Codec": t.opts.CodecEndpoint,
		"Dynamic": filepath.Join(t.opts.Dir, "temporal", "config", "dynamicconfig.yaml")}
	for _, f := range []struct{ path, tmpl string }{
		{filepath.Join(t.opts.Dir, "temporal", "config", "cluster.yaml"), serverConfig},
		{filepath.Join(t.opts.Dir, "temporal", "config", "dynamicconfig.yaml"), dynamicConfig},
		{filepath.Join(t.opts.Dir, "ui", "config", "cluster.yaml"), uiConfig},
	} {
		var b strings.Builder
		if err := template.Must(template.New("").Parse(f.tmpl)).Execute(&b, values); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
