package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// consoleMode makes a terminal on standard input behave like a board's
// UART for the device shell: bytes arrive as typed (no line editing) and
// the terminal does not echo them (the shell does). Ctrl-C still stops the
// process, as whoever runs it in a terminal expects (on a container board
// that is a reset: the engine restarts it). Output processing stays on, so
// log lines still end with CR LF. It returns a
// function that restores the terminal; on anything but a terminal it does
// nothing.
func consoleMode() (restore func()) {
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	t := *old
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.IEXTEN
	t.Iflag &^= unix.ICRNL | unix.INLCR | unix.IXON
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return func() {}
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}
