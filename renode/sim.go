package renode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// Sim backend constants.
const (
	// DefaultRestartBackoff is the first delay before a failed board is
	// restarted when SimConfig.RestartBackoff is zero.
	DefaultRestartBackoff = time.Second
	// MaxRestartBackoff caps the restart delay, which doubles after every
	// failure and starts afresh after a run that lasted longer than this.
	MaxRestartBackoff = 30 * time.Second
	// StopGrace is how long a board has to exit after SIGTERM before it
	// gets SIGKILL.
	StopGrace = 5 * time.Second
	// BoardDaemonEnv is set in the environment of every board process the
	// sim backend starts, to the starting Sim's instance id, so that a
	// later daemon can recognize the boards an earlier one left behind.
	BoardDaemonEnv = "WASMBED_BOARD_DAEMON"
	// PIDFile is the name of the file in a board's directory that holds
	// the process id of its running wasmbed-device, in decimal.
	PIDFile = "board.pid"
)

// Input written to a board that does not read it fails after this long
// instead of blocking the caller forever.
const inputTimeout = 5 * time.Second

// SimConfig configures a Sim.
type SimConfig struct {
	// DeviceBinary is the path of the wasmbed-device binary. "" looks for
	// wasmbed-device next to the running executable, then in PATH.
	DeviceBinary string
	// Dir holds the boards: the board of device d keeps its state
	// directory (identity, modules, app state) and its PIDFile in
	// Dir/d. It is created (mode 0700) if missing. Required.
	Dir string
	// Logger receives the backend's logs; nil discards them.
	Logger *slog.Logger
	// RestartBackoff is the first delay before restarting a board that
	// ended unexpectedly; 0 means DefaultRestartBackoff. It doubles after
	// each failure, up to MaxRestartBackoff.
	RestartBackoff time.Duration
}

// Sim is the sim backend: it runs every board, whatever its type, as a
// Linux-class wasmbed-device process that reports the board's type and
// capabilities. Its Backend name is "sim".
//
// Each board runs under its own pseudo-terminal, which is the board's UART:
// everything the device prints (console on standard output, logs on
// standard error) goes to the board's Console, and Console input goes to
// the device's standard input. The terminal is in raw mode, like a serial
// line: no echo, no line editing, no signals from typed characters; output
// newlines become CR LF. Input a board does not read within 5 seconds
// fails. The process runs in its own session and process group, with
// BoardDaemonEnv set, and its pid is written to Dir/<device>/PIDFile while
// it runs.
//
// A board that exits without being stopped is Failed (the exit status is
// the reason) and is restarted after a delay; the console keeps one
// scrollback across such restarts and notes each exit in it.
//
// Leftovers: boards outlive a daemon that dies without stopping them, but
// a board whose terminal was held by an earlier daemon cannot be attached
// again. So Run (and Start, for its own device) stops every process named
// by a Dir/*/PIDFile that still runs, carries BoardDaemonEnv with a value
// other than this Sim's instance id and has wasmbed-device in its command
// line (as /proc shows them), and removes stale pid files; the daemon's
// Device controller starts the boards that should run again. One Dir must
// be used by one daemon at a time.
//
// All methods are safe for concurrent use.
type Sim struct {
	cfg SimConfig
	bin string
	id  string // this instance's BoardDaemonEnv value
	log *slog.Logger

	mu     sync.Mutex
	boards map[string]*simBoard
	closed bool // Run has ended or is stopping the boards
}

var _ Backend = (*Sim)(nil)

// NewSim checks cfg, finds the wasmbed-device binary and creates cfg.Dir.
func NewSim(cfg SimConfig) (*Sim, error) {
	if cfg.Dir == "" {
		return nil, errors.New("sim backend: board directory is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("sim backend: board directory: %w", err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim backend: %w", err)
	}
	bin, err := findDeviceBinary(cfg.DeviceBinary)
	if err != nil {
		return nil, fmt.Errorf("sim backend: %w", err)
	}
	if cfg.RestartBackoff <= 0 {
		cfg.RestartBackoff = DefaultRestartBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id := make([]byte, 8)
	rand.Read(id)
	return &Sim{
		cfg:    cfg,
		bin:    bin,
		id:     hex.EncodeToString(id),
		log:    cfg.Logger.With("component", "sim"),
		boards: map[string]*simBoard{},
	}, nil
}

// findDeviceBinary returns the absolute path of the wasmbed-device binary:
// path itself when given, else the one next to the running executable, else
// the one in PATH.
func findDeviceBinary(path string) (string, error) {
	const name = "wasmbed-device"
	if path != "" {
		if err := checkExecutable(path); err != nil {
			return "", fmt.Errorf("device binary: %w", err)
		}
		return filepath.Abs(path)
	}
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("find %s: not next to %s and not in PATH; build it with make build or give its path", name, exe)
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// Name returns "sim".
func (s *Sim) Name() string { return "sim" }

// simBoard is one device's board: its supervisor goroutine owns the process.
type simBoard struct {
	boardBase
	dir   string
	stopc chan struct{} // closed to ask the supervisor to stop the board
	stop  sync.Once
	done  chan struct{} // closed when the supervisor ended and the process is reaped
}

func (b *simBoard) requestStop() { b.stop.Do(func() { close(b.stopc) }) }

func (b *simBoard) stopping() bool {
	return closed(b.stopc)
}

func (b *simBoard) finished() bool {
	return closed(b.done)
}

func (b *simBoard) set(state State, reason string, started time.Time, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status.State, b.status.Reason, b.status.ID = state, reason, id
	if !started.IsZero() {
		b.status.Started = started
	}
}

// Start starts the board of spec.Device: it writes the identity from spec
// into Dir/<device> (device.crt, device.key, ca.crt, mode 0600), stops a
// board an earlier daemon left running for the device, and starts
//
//	wasmbed-device --name <device> --board <board> --gateway <gateway>
//	  [--server-name <name>] --state-dir Dir/<device>
//	  --capabilities wasm,wasi[,<board capabilities>] --firmware sim/<board>
//
// under a fresh pseudo-terminal and console. It returns nil at once for a
// board already running, starting or waiting to restart, whose spec stays
// the one it started with. A board being stopped is waited for (within ctx)
// and started again.
func (s *Sim) Start(ctx context.Context, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	var b *simBoard
	for b == nil {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return fmt.Errorf("start board %s: %w", spec.Device, ErrBackendClosed)
		}
		old := s.boards[spec.Device]
		switch {
		case old == nil || old.finished():
			b = &simBoard{
				boardBase: newBoardBase(spec, s.Name()),
				dir:       filepath.Join(s.cfg.Dir, spec.Device),
				stopc:     make(chan struct{}),
				done:      make(chan struct{}),
			}
			s.boards[spec.Device] = b
			s.mu.Unlock()
		case old.stopping():
			s.mu.Unlock()
			select {
			case <-old.done:
			case <-ctx.Done():
				return fmt.Errorf("start board %s: %w", spec.Device, ctx.Err())
			}
		default:
			s.mu.Unlock()
			return nil
		}
	}
	if err := s.prepare(b); err != nil {
		err = fmt.Errorf("start board %s: %w", spec.Device, err)
		b.set(Failed, err.Error(), time.Time{}, "")
		b.console.Close()
		close(b.done)
		return err
	}
	go s.supervise(b)
	return nil
}

func cloneSpec(spec Spec) Spec {
	spec.Board = spec.Board.clone()
	spec.CertPEM = bytes.Clone(spec.CertPEM)
	spec.KeyPEM = bytes.Clone(spec.KeyPEM)
	spec.CAPEM = bytes.Clone(spec.CAPEM)
	if spec.Labels != nil {
		labels := make(map[string]string, len(spec.Labels))
		for k, v := range spec.Labels {
			labels[k] = v
		}
		spec.Labels = labels
	}
	return spec
}

// prepare writes the board's identity and clears a leftover of its device.
func (s *Sim) prepare(b *simBoard) error {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"device.crt", b.spec.CertPEM}, {"device.key", b.spec.KeyPEM}, {"ca.crt", b.spec.CAPEM}} {
		if err := writeFileAtomic(filepath.Join(b.dir, f.name), f.data); err != nil {
			return fmt.Errorf("write identity: %w", err)
		}
	}
	s.cleanLeftover(b.dir)
	return nil
}

// writeFileAtomic replaces path with data, mode 0600, so that a reader
// never sees a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// supervise runs the board until it is asked to stop, restarting it after
// unexpected exits. It owns the board's processes and closes b.done last.
func (s *Sim) supervise(b *simBoard) {
	log := s.log.With("device", b.spec.Device)
	defer close(b.done)
	defer b.console.Close()
	backoff := s.cfg.RestartBackoff
	for {
		if b.stopping() {
			b.set(Stopped, "", time.Time{}, "")
			return
		}
		b.set(Starting, "", time.Time{}, "")
		p, err := s.spawn(b)
		var reason, note string
		if err != nil {
			reason = err.Error()
			note = "board did not start"
			log.Error("board start failed", "err", err)
		} else {
			pid := p.cmd.Process.Pid
			b.set(Running, "", p.started, strconv.Itoa(pid))
			log.Info("board started", "pid", pid, "board", b.spec.Board.Name)
			select {
			case <-p.exited:
				reason = exitReason(p.waitErr)
				note = "board exited"
				log.Warn("board exited", "pid", pid, "reason", reason)
			case <-b.stopc:
				p.stop()
				log.Info("board stopped", "pid", pid)
				b.set(Stopped, "", time.Time{}, "")
				return
			}
			if time.Since(p.started) > MaxRestartBackoff {
				backoff = s.cfg.RestartBackoff // it ran well: start the backoff afresh
			}
		}
		b.set(Failed, reason, time.Time{}, "")
		b.console.Write(fmt.Appendf(nil, "\r\n[sim: %s (%s); restart in %s]\r\n", note, reason, backoff))
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-b.stopc:
			t.Stop()
			b.set(Stopped, "", time.Time{}, "")
			return
		}
		backoff = min(2*backoff, MaxRestartBackoff)
	}
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// simProcess is one run of a board's wasmbed-device.
type simProcess struct {
	cmd     *exec.Cmd
	master  *os.File // the pty master: the board's UART as the daemon sees it
	started time.Time
	pidFile string
	console *Console
	pumped  chan struct{} // closed when the output pump ended
	exited  chan struct{} // closed when the process was reaped; then waitErr is set
	waitErr error
}

// spawn starts the board's device process under a new pseudo-terminal.
func (s *Sim) spawn(b *simBoard) (*simProcess, error) {
	master, tty, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	defer tty.Close() // the child has its copy
	if err := pty.Setsize(master, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		master.Close()
		return nil, fmt.Errorf("size pseudo-terminal: %w", err)
	}
	if err := makeRaw(tty); err != nil {
		master.Close()
		return nil, fmt.Errorf("set pseudo-terminal raw: %w", err)
	}
	cmd := exec.Command(s.bin, s.args(b.spec, b.dir)...)
	cmd.Dir = b.dir
	cmd.Env = s.env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// A session of its own makes the pty its controlling terminal and the
	// process the leader of its own process group (pgid = pid).
	cmd.SysProcAttr = boardProcAttr()
	if err := cmd.Start(); err != nil {
		master.Close()
		return nil, fmt.Errorf("run %s: %w", s.bin, err)
	}
	p := &simProcess{
		cmd:     cmd,
		master:  master,
		started: time.Now(),
		pidFile: filepath.Join(b.dir, PIDFile),
		console: b.console,
		pumped:  make(chan struct{}),
		exited:  make(chan struct{}),
	}
	if err := writeFileAtomic(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		s.log.Warn("board pid file not written", "device", b.spec.Device, "err", err)
	}
	go p.pump()
	b.console.SetInput(ptyInput{master})
	go func() {
		p.waitErr = cmd.Wait()
		// The output left in the pty is read before the master closes;
		// a process that leaked the terminal to a child cannot hold it open.
		select {
		case <-p.pumped:
		case <-time.After(time.Second):
		}
		b.console.SetInput(nil)
		master.Close()
		<-p.pumped
		removePIDFile(p.pidFile, cmd.Process.Pid)
		close(p.exited)
	}()
	return p, nil
}

// openPTY opens a pseudo-terminal whose master is non-blocking and known to
// Go's poller, so that a pending read ends when it is closed and writes
// honour deadlines. (pty.Open hands back a master in blocking mode.)
func openPTY() (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	syscall.ForkLock.RLock() // no child may inherit the copy before it is close-on-exec
	fd, err := syscall.Dup(int(m.Fd()))
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err == nil {
		err = syscall.SetNonblock(fd, true)
		if err != nil {
			syscall.Close(fd)
		}
	}
	if err != nil {
		tty.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), m.Name()), tty, nil
}

func (s *Sim) args(spec Spec, dir string) []string {
	caps := []string{"wasm", "wasi"}
	for _, c := range spec.Board.Capabilities {
		if c != CapNone {
			caps = append(caps, c)
		}
	}
	args := []string{
		"--name", spec.Device,
		"--board", spec.Board.Name,
		"--gateway", spec.Gateway,
	}
	if spec.ServerName != "" {
		args = append(args, "--server-name", spec.ServerName)
	}
	return append(args,
		"--state-dir", dir,
		"--capabilities", strings.Join(caps, ","),
		"--firmware", "sim/"+spec.Board.Name,
	)
}

// env is the board's environment: the daemon's without its own WASMBED_
// settings (the flags say everything), plus BoardDaemonEnv.
func (s *Sim) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WASMBED_") {
			env = append(env, kv)
		}
	}
	return append(env, BoardDaemonEnv+"="+s.id)
}

// pump copies the board's output to its console until the pty closes.
func (p *simProcess) pump() {
	defer close(p.pumped)
	buf := make([]byte, 4096)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			p.console.Write(buf[:n])
		}
		if err != nil {
			return // EIO once the board's side of the terminal is closed
		}
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after StopGrace, and
// waits until the process is reaped.
func (p *simProcess) stop() {
	pid := p.cmd.Process.Pid
	signalGroup := func(sig syscall.Signal) {
		select {
		case <-p.exited: // reaped: the pid may belong to someone else now
		default:
			syscall.Kill(-pid, sig)
		}
	}
	signalGroup(syscall.SIGTERM)
	t := time.NewTimer(StopGrace)
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
	}
	signalGroup(syscall.SIGKILL)
	<-p.exited
}

// ptyInput writes console input to the board's terminal, giving up after
// inputTimeout when the board does not read it.
type ptyInput struct{ f *os.File }

func (w ptyInput) Write(p []byte) (int, error) {
	w.f.SetWriteDeadline(time.Now().Add(inputTimeout))
	n, err := w.f.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("board does not read its input: %w", err)
	}
	return n, err
}

// removePIDFile removes the pid file if it still names pid, so that a
// newer run's file is left alone.
func removePIDFile(path string, pid int) {
	if got, err := readPIDFile(path); err == nil && got == pid {
		os.Remove(path)
	}
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content", path)
	}
	return pid, nil
}

// Stop stops the board of device: SIGTERM to its process group, SIGKILL
// after StopGrace, and waits until it is reaped or ctx ends. A board
// waiting to restart is not restarted. Its console is closed and keeps the
// scrollback. Stopping a board that does not run returns nil.
func (s *Sim) Stop(ctx context.Context, device string) error {
	b := lookup(&s.mu, s.boards, device)
	if b == nil {
		return nil
	}
	b.requestStop()
	return awaitStopped(ctx, device, b.done)
}

// Forget stops the board of device and deletes its state directory (its
// apps, modules and identity) and its console: a device created again
// under the name starts clean.
func (s *Sim) Forget(ctx context.Context, device string) error {
	if err := s.Stop(ctx, device); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.boards, device)
	s.mu.Unlock()
	if !validName(device) {
		return nil // no board could have had this name: keep Dir intact
	}
	return os.RemoveAll(filepath.Join(s.cfg.Dir, device))
}

// Status returns the state of the board of device; ID is the pid of its
// wasmbed-device while it runs.
func (s *Sim) Status(device string) Status {
	return statusOf(&s.mu, s.boards, device, s.Name())
}

// Console returns the console of the board of device: the live one while
// it runs or restarts, the last run's (closed, with its scrollback) after
// it stopped. The error wraps ErrNoBoard for a device never started.
func (s *Sim) Console(device string) (*Console, error) {
	return consoleOf(&s.mu, s.boards, device)
}

// Run cleans the leftovers of an earlier daemon (see Sim), waits for ctx to
// end, then stops every board and returns nil once they are all reaped.
// Start fails with ErrBackendClosed from then on. Boards may be started
// before Run is called; call Run once.
func (s *Sim) Run(ctx context.Context) error {
	s.cleanLeftovers()
	<-ctx.Done()
	s.mu.Lock()
	s.closed = true
	boards := make([]*simBoard, 0, len(s.boards))
	for _, b := range s.boards {
		boards = append(boards, b)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range boards {
		wg.Go(func() {
			b.requestStop()
			<-b.done
		})
	}
	wg.Wait()
	return nil
}

// cleanLeftovers applies cleanLeftover to every board directory in Dir.
func (s *Sim) cleanLeftovers() {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		s.log.Error("board directory not readable", "dir", s.cfg.Dir, "err", err)
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			s.cleanLeftover(filepath.Join(s.cfg.Dir, e.Name()))
		}
	}
}

// cleanLeftover looks at dir's pid file: a board process started by another
// Sim instance (an earlier daemon) is stopped, since its terminal cannot be
// re-attached; a file naming no such process is stale and removed. Boards
// of this instance are left alone.
func (s *Sim) cleanLeftover(dir string) {
	path := filepath.Join(dir, PIDFile)
	pid, err := readPIDFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		os.Remove(path)
		return
	}
	daemon, isBoard := inspectBoard(pid)
	switch {
	case isBoard && daemon == s.id:
		return // ours
	case isBoard:
		log := s.log.With("device", filepath.Base(dir), "pid", pid)
		if err := killLeftover(pid); err != nil {
			log.Error("leftover board not stopped", "err", err)
			return
		}
		log.Info("leftover board stopped")
	}
	removePIDFile(path, pid)
}

// inspectBoard reports whether pid is a live wasmbed-device started by a
// sim backend, and that backend's instance id, from /proc.
func inspectBoard(pid int) (daemon string, ok bool) {
	if !alive(pid) {
		return "", false
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil || !bytes.Contains(cmdline, []byte("wasmbed-device")) {
		return "", false
	}
	environ, err := os.ReadFile(filepath.Join(proc, "environ"))
	if err != nil {
		return "", false
	}
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if v, found := bytes.CutPrefix(kv, []byte(BoardDaemonEnv+"=")); found {
			return string(v), true
		}
	}
	return "", false
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	// The state follows the parenthesized command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// killLeftover stops a board this process did not start: SIGTERM to its
// process group, SIGKILL after StopGrace, and waits until it is gone
// (reaped by its parent or a zombie).
func killLeftover(pid int) error {
	target := pid
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		target = -pid
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(target, sig); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("signal %d: %w", pid, err)
		}
		deadline := time.Now().Add(StopGrace)
		for time.Now().Before(deadline) {
			if !alive(pid) {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return fmt.Errorf("process %d still runs after SIGKILL", pid)
}
