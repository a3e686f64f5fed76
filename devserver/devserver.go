// Package devserver supervises a local Temporal dev server process for
// `handoff dev` and the tests: started from the pinned CLI with handoff's search
// attributes, waited on until it answers, stopped last.
package devserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/handoff-hq/handoff/workflows"
)

// Options configures a local Temporal dev server process.
type Options struct {
	// Binary is the pinned Temporal CLI, e.g. ./bin/temporal.
	Binary string
	// Address is the frontend's host:port.
	Address   string
	Namespace string
	// UIPort serves the Web UI; 0 disables it.
	UIPort int
	// DBFile keeps the server's state across restarts; empty keeps it in memory.
	DBFile string
	// Output receives the server's log.
	Output io.Writer
	// UICodecEndpoint, when set, is the remote codec the Web UI decodes
	// payloads with.
	UICodecEndpoint string
}

// Server is a running `temporal server start-dev` process.
type Server struct {
	cmd      *exec.Cmd
	done     chan struct{}
	err      error // set before done is closed
	stopping atomic.Bool
}

// Start starts the Temporal dev server and waits until it answers.
// It runs in its own process group, so that a terminal's Ctrl-C reaches only
// handoff, which then stops the server last, after its own workers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	host, port, err := net.SplitHostPort(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("start dev server: address %q: %w", opts.Address, err)
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	args := []string{"server", "start-dev", "--ip", host, "--port", port,
		"--namespace", opts.Namespace, "--log-level", "warn",
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
	}
	if opts.UIPort == 0 {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(opts.UIPort))
		if opts.UICodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", opts.UICodecEndpoint)
		}
	}
	if opts.DBFile != "" {
		// WAL with synchronous=normal roughly doubles throughput; it survives
		// a crash of the process, not of the machine.
		args = append(args, "--db-filename", opts.DBFile,
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
	}
	for _, key := range workflows.SearchAttributes {
		args = append(args, "--search-attribute", key.GetName()+"=Keyword")
	}
	cmd := exec.Command(opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	cmd.SysProcAttr = childProcessAttributes()
	d := &Server{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal is tied to the OS thread that started the
		// child (golang/go#27505): that thread stays alive as long as the child.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start dev server %s: %w", opts.Binary, err)
	}
	if err := d.waitReady(ctx, opts); err != nil {
		_ = d.Stop(5 * time.Second)
		return nil, err
	}
	return d, nil
}

func (d *Server) waitReady(ctx context.Context, opts Options) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		if Reachable(ctx, opts.Address, opts.Namespace) {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("dev server exited before it was ready: %w", d.err)
		case <-ctx.Done():
			return fmt.Errorf("dev server not ready: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PID is the server's process id.
func (d *Server) PID() int { return d.cmd.Process.Pid }

// Done is closed when the server process has exited, for whatever reason.
func (d *Server) Done() <-chan struct{} { return d.done }

// Err is why the process exited; read it after Done is closed.
func (d *Server) Err() error { return d.err }

// Stop asks the server to stop and kills it after the timeout. An exit
// caused by the stop itself is not an error.
func (d *Server) Stop(timeout time.Duration) error {
	select {
	case <-d.done:
		return d.exitError()
	default:
	}
	d.stopping.Store(true)
	signalChild(d.cmd.Process, false)
	select {
	case <-d.done:
		return nil
	case <-time.After(timeout):
		signalChild(d.cmd.Process, true)
		<-d.done
		return fmt.Errorf("dev server did not stop within %s; killed", timeout)
	}
}

func (d *Server) exitError() error {
	if d.stopping.Load() || d.err == nil {
		return nil
	}
	return fmt.Errorf("dev server exited: %w", d.err)
}

// Reachable reports whether a Temporal frontend answers at address.
func Reachable(ctx context.Context, address, namespace string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{
		HostPort: address, Namespace: namespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err == nil
}
