//go:build !linux

package renode

import (
	"os"
	"syscall"
)

// makeRaw leaves the terminal as it is where the termios calls differ from
// Linux's: the shell then sees input line by line, echoed by the terminal.
func makeRaw(*os.File) error { return nil }

// boardProcAttr starts a sim board in a session of its own with the pty
// as its controlling terminal.
func boardProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
}

// setDeathSignal does nothing where there is no death signal.
func setDeathSignal(*syscall.SysProcAttr) {}
