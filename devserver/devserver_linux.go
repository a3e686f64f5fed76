package devserver

import (
	"os"
	"syscall"
)

// childProcessAttributes puts the dev server in its own process group, so
// that a terminal's Ctrl-C reaches only handoff (which stops the server
// last), and has the kernel kill it should handoff die without stopping it.
func childProcessAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalChild sends SIGTERM, or SIGKILL when kill is set, to the child's
// whole process group.
func signalChild(p *os.Process, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-p.Pid, sig)
}
