package cluster

import (
	"context"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one program of the cluster, started again under the same
// command and environment after it stops or is killed. Its output goes to
// <dir>/logs/<name>.log, appended across restarts.
type Process struct {
	Name string
	path string
	args []string
	env  []string
	log  string
	// user, when set, runs the program as that user (PostgreSQL refuses
	// to run as root).
	user *syscall.Credential

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// NewProcess is a program run with args and env (added to the system's
// basics), its output appended to <logDir>/<name>.log; Start starts it.
func NewProcess(logDir, name, path string, args, env []string) *Process {
	return newProcess(logDir, name, path, args, env)
}

func newProcess(logDir, name, path string, args, env []string) *Process {
	return &Process{Name: name, path: path, args: args, env: env, log: filepath.Join(logDir, name+".log")}
}

// Start starts the program; it is an error if it runs already.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exitedLocked() {
		return fmt.Errorf("%s runs already", p.Name)
	}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(baseEnv(), p.env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a Ctrl-C at the terminal reaches the launcher,
	// which stops the programs in order.
	// It dies with the launcher, even when the launcher is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.user, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.err = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		out.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (p *Process) exitedLocked() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Running reports whether the program runs.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exitedLocked()
}

// PID is the program's process id, 0 when it does not run.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL and waits until the program has gone.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to grace for the program to stop, then
// kills it.
func (p *Process) Stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		select {
		case <-exited:
			return
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-exited
}

// Exited is closed when the program last started has stopped.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Err is how the program last started ended; nil while it runs.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Tail is the end of the program's log, for error messages.
func (p *Process) Tail(n int) string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > int64(n) {
		_, _ = f.Seek(-int64(n), io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// waitFor polls ok until it holds, the program stops, or ctx ends.
func (p *Process) waitFor(ctx context.Context, what string, ok func(context.Context) bool) error {
	for {
		if ok(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s: %w\n%s", p.Name, what, ctx.Err(), p.Tail(2000))
		case <-p.Exited():
			return fmt.Errorf("%s stopped before %s:\n%s", p.Name, what, p.Tail(2000))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// listening reports whether something accepts connections at addr.
func listening(ctx context.Context, addr string) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// baseEnv is what the programs inherit of the launcher's environment: the
// system's basics, not its settings (a TEMPORAL_* or HANDOFF_* variable of
// the caller's shell must not point the cluster elsewhere).
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "USER":
			out = append(out, kv)
		}
	}
	return out
}

// FreePort is a free TCP port on loopback below 32768, apart from the
// kernel's ephemeral ports (the local ends of outgoing connections, which
// could take a port between a program's stop and its restart), and below
// what Temporal keeps of its services' ports (a smallint column). The
// integration tests pick theirs below 20000.
func FreePort() (int, error) { return ports.pick() }

// ports hands out each port once per launcher.
var ports = &portPicker{taken: map[int]bool{}}

type portPicker struct {
	mu    sync.Mutex
	taken map[int]bool
}

func (pp *portPicker) pick() (int, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		if pp.taken[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		pp.taken[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port between 20000 and 32000")
}

// take records ports chosen by the caller, so that none is handed out.
func (pp *portPicker) take(chosen ...int) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, p := range chosen {
		pp.taken[p] = true
	}
}
