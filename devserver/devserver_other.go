//go:build !linux

package devserver

import (
	"os"
	"syscall"
)

// childProcessAttributes leaves the dev server in handoff's process group:
// without a parent-death signal outside Linux, sharing the terminal's group
// is what makes Ctrl-C reach it even if handoff dies first.
func childProcessAttributes() *syscall.SysProcAttr { return nil }

// signalChild interrupts the child, or kills it when kill is set.
func signalChild(p *os.Process, kill bool) {
	if kill {
		_ = p.Kill()
		return
	}
	_ = p.Signal(os.Interrupt)
}
