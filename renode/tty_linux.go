package renode

import (
	"os"
	"syscall"
	"unsafe"
)

// makeRaw puts the terminal f in raw mode, as a serial line is: input
// bytes reach the reader as typed (no echo, no line editing, no signals, no
// CR to NL mapping), 8-bit clean. Output processing stays on, so a board's
// "\n" reaches the console as "\r\n".
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		var t syscall.Termios
		if _, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t))); errno != 0 {
			return
		}
		t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP |
			syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
		t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
		t.Cflag &^= syscall.CSIZE | syscall.PARENB
		t.Cflag |= syscall.CS8
		t.Oflag |= syscall.OPOST | syscall.ONLCR
		t.Cc[syscall.VMIN], t.Cc[syscall.VTIME] = 1, 0
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&t)))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// boardProcAttr starts a sim board in a session of its own with the pty
// as its controlling terminal, and has the kernel kill it if the daemon
// dies without stopping it (a board must not outlive its daemon: another
// gateway may run the device by then).
func boardProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	setDeathSignal(a)
	return a
}

// setDeathSignal has the kernel kill the process if the daemon dies.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
