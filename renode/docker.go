package renode

// The docker backend talks to the Engine API through
// github.com/moby/moby/client, the maintained Docker client module. It
// negotiates the API version with the engine on first use and speaks
// versions down to 1.40, so it also drives the Docker 20.10 engines (API
// 1.41) that stable distributions still ship; github.com/docker/docker gets
// no more releases.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

const dockerName = "docker"

// dockerEngineTimeout bounds one Engine API call the backend makes on its own
// (watching and stopping boards, outside any caller's context).
const dockerEngineTimeout = 30 * time.Second

// dockerPoll is how often the backend looks at a board container that does
// not run (exited, restarting), until it runs again or is stopped. While
// the engine does not answer, the delay doubles up to dockerMaxPoll.
const (
	dockerPoll    = 250 * time.Millisecond
	dockerMaxPoll = 5 * time.Second
)

// After an attach stream ended, the backend looks at the container every
// dockerSettle, up to dockerSettleTries times, until the engine records the
// end of the run the stream carried; then it takes the stream as dropped.
const (
	dockerSettle      = 20 * time.Millisecond
	dockerSettleTries = 50
)

// Run tries again to adopt the leftovers of an earlier daemon while the
// engine cannot be reached, after dockerAdoptRetry, doubling up to
// dockerMaxAdoptRetry.
const (
	dockerAdoptRetry    = 5 * time.Second
	dockerMaxAdoptRetry = 5 * time.Minute
)

// ErrDockerUnreachable is wrapped by the docker backend's errors when the
// Docker engine cannot be reached; the message names the engine's address
// and the cause.
var ErrDockerUnreachable = errors.New("docker engine unreachable")

// ImageNotFoundError is the docker backend's Start error when the engine
// does not have the backend's image: it is built on the machine, never
// pulled.
type ImageNotFoundError struct{ Image string }

// Error says which image is missing and how to build it.
func (e *ImageNotFoundError) Error() string {
	return "image " + e.Image + " not found: run make image"
}

// DockerConfig configures a Docker backend.
type DockerConfig struct {
	// Image is the wasmbed-device image the boards run; "" means
	// DefaultDockerImage. It must exist in the engine: the backend never
	// pulls.
	Image string
	// Instance identifies this daemon across its restarts (it must stay
	// the same for a daemon to adopt its boards again): the value of the
	// wasmbed.io/daemon label of the containers it creates. Required.
	Instance string
	// Network is the Docker network the containers join; "" means
	// DefaultDockerNetwork. "host" shares the host's network: the boards
	// then dial the Spec's gateway address as it is.
	Network string
	// GatewayHost is the address at which containers on Network reach the
	// gateway; "" means the network's gateway IP (see Docker).
	GatewayHost string
	// GatewayPort is the port of the gateway listener the containers
	// dial; "" means the port of the Spec's gateway address.
	GatewayPort string
	// ServerName is the name the boards check in the gateway certificate
	// when the Spec names none; "" means the host of the Spec's gateway
	// address (before it is replaced by the network's gateway).
	ServerName string
	// Logger receives the backend's logs; nil discards them.
	Logger *slog.Logger
	// Client talks to the engine; nil means one made from the environment
	// (DOCKER_HOST and friends, client.FromEnv), which the backend closes
	// when Run returns.
	Client *client.Client
}

// Docker is the docker backend: it runs each board as a container of a
// wasmbed-device image on a local Docker engine. Its Backend name is
// "docker".
//
// The board of device d is the container DockerContainerPrefix+d
// (wasmbed-d), labelled wasmbed.io/device=d, wasmbed.io/daemon=<Instance>,
// wasmbed.io/board=<board>, wasmbed.io/backend=docker and with the Spec's
// labels, on Network, with restart policy unless-stopped and the memory and
// CPU limits of the Spec's LabelMemoryMiB and LabelCPUMillis.
// The device is configured through its environment (WASMBED_DEVICE, _BOARD,
// _GATEWAY, _SERVER_NAME, _STATE_DIR=/state, _CAPABILITIES, _FIRMWARE); its
// identity (device.crt, device.key, ca.crt, mode 0600, owned by DockerUID) is
// copied into the created container's DockerStateDir before the container
// starts. That state lives and dies with the container: Stop removes it, and
// the gateway deploys the device's apps again when it is back.
//
// Gateway address: the Spec's gateway is where boards on this host dial;
// a container cannot dial the host's loopback, so the board dials
// GatewayHost, by default the gateway IP of Network (172.17.0.1 on a default
// install), at GatewayPort. It still checks the certificate against the
// Spec's ServerName, so a gateway certificate for 127.0.0.1 serves it. The
// gateway must listen on an address of the host the network reaches (all
// addresses, or the bridge's).
//
// Console: the container has a TTY, which is the board's UART. The backend
// attaches to it through the Engine API (stdin, stdout, stream): the output
// goes to the board's Console, Console input to the attach stream (failing
// after 5 s when the board does not read it). The attachment is made again
// when the stream drops while the container runs, after a restart with what
// the new run printed before it, from the engine's log; output printed while
// an attachment is being made may be missing. The TTY keeps the
// engine's line discipline: it echoes input (on top of the device shell's own
// echo) and passes it on a line at a time, and Ctrl-C typed there sends
// SIGINT to the device.
//
// Status comes from inspecting the container: Running while it runs,
// Starting while it is created or restarting, Failed with the exit code, or
// the OOM kill, as reason once it ended; ID is the short container id. A
// container that ends unexpectedly is restarted by the engine.
//
// Leftovers: containers outlive the daemon. Run adopts the running
// containers labelled with this Instance and backend (their consoles are
// attached again, with the logs the engine kept, and they count as started
// by this backend) and removes the stopped ones; Start also adopts a running
// container of its device. Containers of other instances or backends are
// left alone. When Run's context ends, it stops and removes every container
// this backend runs; Detach hands them over to a later backend instead.
//
// The engine is reached at Start, not at NewDocker: a backend whose engine is
// down or lacks the image fails Start with an error wrapping
// ErrDockerUnreachable or an *ImageNotFoundError, and its board's Status is
// Failed with that reason.
//
// All methods are safe for concurrent use.
type Docker struct {
	cfg       DockerConfig
	cli       *client.Client
	cliErr    error // why there is no client
	ownClient bool
	log       *slog.Logger

	mu     sync.Mutex
	boards map[string]*dockerBoard
	closed bool // Run has ended or is stopping the boards, or Detach was called
}

var _ Backend = (*Docker)(nil)

// NewDocker checks cfg and returns the backend. It does not reach the
// engine, so it succeeds while the engine is down.
func NewDocker(cfg DockerConfig) (*Docker, error) {
	if cfg.Instance == "" {
		return nil, errors.New("docker backend: an instance id is required")
	}
	if cfg.Image == "" {
		cfg.Image = DefaultDockerImage
	}
	if cfg.Network == "" {
		cfg.Network = DefaultDockerNetwork
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Docker{
		cfg:    cfg,
		cli:    cfg.Client,
		log:    cfg.Logger.With("component", dockerName),
		boards: map[string]*dockerBoard{},
	}
	if d.cli == nil {
		c, err := client.New(client.FromEnv)
		if err != nil {
			d.cliErr = fmt.Errorf("docker client: %w", err)
		} else {
			d.cli, d.ownClient = c, true
		}
	}
	return d, nil
}

// Name returns "docker".
func (d *Docker) Name() string { return dockerName }

// dockerBoard is one device's board: its monitor goroutine owns the
// attachment and, when asked to stop, the container's removal.
type dockerBoard struct {
	boardBase
	id     string // the container's full id; set before the monitor starts
	stopc  chan struct{}
	stop   sync.Once
	remove bool          // written before stopc closes: remove the container, not just let go of it
	done   chan struct{} // closed when the board is stopped or let go of
}

// requestStop asks the monitor to end: remove says whether the container is
// stopped and removed (Stop, Run) or left running (Detach). The first
// request wins.
func (b *dockerBoard) requestStop(remove bool) {
	b.stop.Do(func() {
		b.remove = remove
		close(b.stopc)
	})
}

func (b *dockerBoard) stopping() bool {
	return closed(b.stopc)
}

func (b *dockerBoard) finished() bool {
	return closed(b.done)
}

func (b *dockerBoard) setStatus(st Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status = st
}

// set changes the state and reason and keeps the start time and id.
func (b *dockerBoard) set(state State, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status.State, b.status.Reason = state, reason
}

func (d *Docker) newBoard(spec Spec) *dockerBoard {
	return &dockerBoard{
		boardBase: newBoardBase(spec, dockerName),
		stopc:     make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// fail ends a board that never got a monitor.
func (b *dockerBoard) fail(err error) {
	b.mu.Lock()
	b.status = Status{Device: b.spec.Device, Backend: dockerName, State: Failed, Reason: err.Error()}
	b.mu.Unlock()
	b.console.Close()
	close(b.done)
}

// engine returns the client once the engine answers a ping.
func (d *Docker) engine(ctx context.Context) (*client.Client, error) {
	if d.cliErr != nil {
		return nil, d.cliErr
	}
	if _, err := d.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return nil, d.unreachable(err)
	}
	return d.cli, nil
}

// unreachable wraps an error that reaching the engine gave.
func (d *Docker) unreachable(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op // the dial error says it all; the client's words around it repeat the address
	}
	return fmt.Errorf("%w at %s: %w", ErrDockerUnreachable, d.cli.DaemonHost(), err)
}

// engineErr wraps err as unreachable when the engine could not be reached.
func (d *Docker) engineErr(err error) error {
	if err != nil && d.cli != nil && client.IsErrConnectionFailed(err) && !errors.Is(err, ErrDockerUnreachable) {
		return d.unreachable(err)
	}
	return err
}

// Start starts the board of spec.Device: it creates the container (see
// Docker), copies the identity into it, attaches to its TTY and starts it,
// all within ctx. A running container of the device labelled with this
// Instance (a leftover) is adopted instead; a stopped one is replaced; one of
// another instance or backend makes Start fail. Start returns nil at once for a board
// already running or starting, whose spec stays the one it started with. A
// board being stopped is waited for (within ctx) and started again.
func (d *Docker) Start(ctx context.Context, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	var b *dockerBoard
	for b == nil {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return fmt.Errorf("start board %s: %w", spec.Device, ErrBackendClosed)
		}
		old := d.boards[spec.Device]
		switch {
		case old == nil || old.finished():
			b = d.newBoard(spec)
			d.boards[spec.Device] = b
			d.mu.Unlock()
		case old.stopping():
			d.mu.Unlock()
			select {
			case <-old.done:
			case <-ctx.Done():
				return fmt.Errorf("start board %s: %w", spec.Device, ctx.Err())
			}
		default:
			d.mu.Unlock()
			return nil
		}
	}
	att, err := d.create(ctx, b)
	if err != nil {
		err = fmt.Errorf("start board %s: %w", spec.Device, d.engineErr(err))
		b.fail(err)
		return err
	}
	go d.monitor(b, att)
	return nil
}

// create makes and starts the board's container, or adopts a running one of
// this instance, and returns the attachment to its TTY.
func (d *Docker) create(ctx context.Context, b *dockerBoard) (*client.HijackedResponse, error) {
	cli, err := d.engine(ctx)
	if err != nil {
		return nil, err
	}
	spec := b.spec
	name := DockerContainerName(spec.Device)
	old, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		var labels map[string]string
		if old.Container.Config != nil {
			labels = old.Container.Config.Labels
		}
		if labels[LabelDaemon] != d.cfg.Instance || labels[LabelBackend] != dockerName {
			return nil, fmt.Errorf("container %s exists and is not this backend's (labels %s=%q, %s=%q)",
				name, LabelDaemon, labels[LabelDaemon], LabelBackend, labels[LabelBackend])
		}
		if st := dockerStatus(spec.Device, old.Container); st.State == Running || st.State == Starting {
			b.id = old.Container.ID
			b.setStatus(st)
			d.log.Info("board adopted", "device", spec.Device, "container", st.ID)
			return d.attachOrWait(ctx, b), nil
		}
		if _, err := cli.ContainerRemove(ctx, old.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("remove old container %s: %w", name, err)
		}
	case !cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}

	if _, err := cli.ImageInspect(ctx, d.cfg.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, &ImageNotFoundError{Image: d.cfg.Image}
		}
		return nil, fmt.Errorf("inspect image %s: %w", d.cfg.Image, err)
	}
	gateway, err := d.gatewayAddr(ctx, cli, spec.Gateway)
	if err != nil {
		return nil, err
	}
	serverName := spec.ServerName
	if serverName == "" {
		serverName = d.cfg.ServerName
	}
	if serverName == "" {
		serverName, _, _ = net.SplitHostPort(spec.Gateway)
	}
	cfg, host, err := d.containerSpec(spec, gateway, serverName)
	if err != nil {
		return nil, err
	}
	identity, err := dockerIdentityTar(spec)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}

	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host})
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", name, err)
	}
	b.id = created.ID
	ok := false
	defer func() {
		if !ok {
			rctx, cancel := context.WithTimeout(context.Background(), dockerEngineTimeout)
			defer cancel()
			cli.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
		}
	}()
	if _, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: identity}); err != nil {
		return nil, fmt.Errorf("copy identity into %s: %w", name, err)
	}
	// Attached before it starts, the console misses nothing of the boot.
	a, err := cli.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", name, err)
	}
	att := &a.HijackedResponse
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		att.Close()
		return nil, fmt.Errorf("start container %s: %w", name, err)
	}
	ok = true
	b.console.SetInput(dockerInput{att.Conn})
	st := Status{Device: spec.Device, Backend: dockerName, State: Starting, ID: dockerShortID(created.ID)}
	if res, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); err == nil {
		st = dockerStatus(spec.Device, res.Container)
	}
	b.setStatus(st)
	d.log.Info("board started", "device", spec.Device, "container", st.ID, "board", spec.Board.Name, "gateway", gateway)
	return att, nil
}

// gatewayAddr is the host:port the boards dial: see Docker.
func (d *Docker) gatewayAddr(ctx context.Context, cli *client.Client, specGateway string) (string, error) {
	host := d.cfg.GatewayHost
	if host == "" && d.cfg.Network == "host" {
		h, _, err := net.SplitHostPort(specGateway)
		if err != nil {
			return "", fmt.Errorf("gateway address %q: %w", specGateway, err)
		}
		host = h
	}
	if host == "" {
		n, err := cli.NetworkInspect(ctx, d.cfg.Network, client.NetworkInspectOptions{})
		if err != nil {
			return "", fmt.Errorf("inspect network %s: %w", d.cfg.Network, err)
		}
		ip, err := dockerNetworkGateway(n.Network)
		if err != nil {
			return "", err
		}
		host = ip.String()
	}
	return d.gatewayHostPort(host, specGateway)
}

// attach attaches to the TTY of the board's running container (with the
// logs the engine kept when logs is set) and sets the board's status. It
// fails when the container does not run, or no longer runs the process it
// ran before the attachment.
func (d *Docker) attach(ctx context.Context, b *dockerBoard, logs bool) (*client.HijackedResponse, error) {
	att, _, err := d.attachAt(ctx, b, logs)
	return att, err
}

// attachAt is attach that also returns when the attachment was asked for.
func (d *Docker) attachAt(ctx context.Context, b *dockerBoard, logs bool) (*client.HijackedResponse, time.Time, error) {
	before, err := d.cli.ContainerInspect(ctx, b.id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, time.Time{}, err
	}
	if st := dockerStatus(b.spec.Device, before.Container); st.State != Running {
		b.setStatus(st)
		return nil, time.Time{}, fmt.Errorf("container %s does not run", dockerShortID(b.id))
	}
	at := time.Now()
	a, err := d.cli.ContainerAttach(ctx, b.id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true, Logs: logs})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("attach to %s: %w", dockerShortID(b.id), err)
	}
	att := &a.HijackedResponse
	// An attachment made to a container that has just ended would wait
	// for its next start; look again now that it is made.
	after, err := d.cli.ContainerInspect(ctx, b.id, client.ContainerInspectOptions{})
	if err != nil {
		att.Close()
		return nil, time.Time{}, err
	}
	st := dockerStatus(b.spec.Device, after.Container)
	if st.State != Running || after.Container.State.StartedAt != before.Container.State.StartedAt {
		b.setStatus(st)
		att.Close()
		return nil, time.Time{}, fmt.Errorf("container %s ended while being attached", dockerShortID(b.id))
	}
	b.console.SetInput(dockerInput{att.Conn})
	b.setStatus(st)
	return att, at, nil
}

// monitor follows the board until it is asked to stop: it copies the
// attachment to the console, looks at the container when the stream ends,
// and attaches again while the container runs. Once asked, it stops and
// removes the container (or lets go of it) and closes b.done.
func (d *Docker) monitor(b *dockerBoard, att *client.HijackedResponse) {
	log := d.log.With("device", b.spec.Device, "container", dockerShortID(b.id))
	defer close(b.done)
	defer b.console.Close()
	last := b.get() // the status when the board was last followed or looked at
	settling := 0   // inspections since the stream ended that still showed the run it carried
	failures := 0   // inspections in a row the engine did not answer
	for {
		if att != nil {
			dockerFollow(b, att)
			att = nil
			settling = 1
		}
		if b.stopping() {
			d.finish(b, log)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), dockerEngineTimeout)
		res, err := d.cli.ContainerInspect(ctx, b.id, client.ContainerInspectOptions{})
		cancel()
		wait := dockerPoll
		switch {
		case cerrdefs.IsNotFound(err):
			b.setStatus(Status{Device: b.spec.Device, Backend: dockerName, State: Failed, Reason: "container removed outside wasmbed"})
			b.console.Write([]byte("\r\n[docker: container removed outside wasmbed]\r\n"))
			log.Warn("board container removed outside wasmbed")
			return
		case err != nil:
			err = d.engineErr(err)
			b.set(Failed, err.Error())
			if failures == 0 {
				log.Warn("board container not inspected", "err", err)
			}
			failures++
			wait = min(dockerPoll<<min(failures, 5), dockerMaxPoll)
		default:
			if failures > 0 {
				log.Info("board container inspected again")
				failures = 0
			}
			st := dockerStatus(b.spec.Device, res.Container)
			if settling > 0 && settling < dockerSettleTries && st.State == Running && st.Started.Equal(last.Started) {
				// The engine ends the stream of a process that exited
				// a moment before it records the exit; a stream that
				// merely dropped shows the same for a while.
				settling++
				wait = dockerSettle
				break
			}
			settling = 0
			b.setStatus(st)
			if st.State != Running && last.State == Running {
				reason := exitReasonDocker(res.Container.State)
				b.console.Write(fmt.Appendf(nil, "\r\n[docker: board exited (%s); the engine restarts it]\r\n", reason))
				log.Warn("board exited", "reason", reason)
			}
			if st.State != Running {
				last = st
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), dockerEngineTimeout)
			var at time.Time
			att, at, err = d.attachAt(ctx, b, false)
			cancel()
			if err != nil {
				log.Debug("board console not attached", "err", err)
				break
			}
			now := b.get()
			switch {
			case now.Started.Equal(last.Started):
				b.console.Write([]byte("\r\n[docker: console attached again]\r\n"))
			case last.State == Running:
				// Restarted before the exit could be seen.
				b.console.Write([]byte("\r\n[docker: board exited; the engine restarted it]\r\n"))
				log.Warn("board exited and restarted")
				d.backfill(b, now.Started, at, log)
			default:
				b.console.Write([]byte("\r\n[docker: board restarted]\r\n"))
				d.backfill(b, now.Started, at, log)
			}
			log.Info("board console attached again")
			last = now
			continue
		}
		select {
		case <-b.stopc:
		case <-time.After(wait):
		}
	}
}

// backfill writes to the console what the board's current run, started at
// started, printed before the attachment asked for at attached: the
// engine's log of that time. Output printed while the attachment was being
// made is missing.
func (d *Docker) backfill(b *dockerBoard, started, attached time.Time, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerEngineTimeout)
	defer cancel()
	rc, err := d.cli.ContainerLogs(ctx, b.id, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true,
		Since: started.Format(time.RFC3339Nano), Until: attached.Format(time.RFC3339Nano),
	})
	if err != nil {
		log.Debug("board boot output not read", "err", err)
		return
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, DefaultScrollback))
	if err != nil {
		log.Debug("board boot output not read", "err", err)
	}
	b.console.Write(data)
}

// dockerFollow copies the attachment's output to the console until the
// stream ends or the board is asked to stop; then it detaches the console's
// input (attached to the stream when it was made) and closes the
// attachment.
func dockerFollow(b *dockerBoard, att *client.HijackedResponse) {
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		buf := make([]byte, 4096)
		for {
			n, err := att.Reader.Read(buf)
			if n > 0 {
				b.console.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-b.stopc:
	}
	b.console.SetInput(nil)
	att.Close()
	<-ended
}

// finish ends a board asked to stop: its container is stopped (SIGTERM,
// SIGKILL after StopGrace) and removed, or left running for Detach.
func (d *Docker) finish(b *dockerBoard, log *slog.Logger) {
	if !b.remove {
		b.setStatus(Status{Device: b.spec.Device, Backend: dockerName, State: Stopped, Reason: "detached: the container keeps running"})
		log.Info("board detached")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), StopGrace+dockerEngineTimeout)
	defer cancel()
	grace := int(StopGrace / time.Second)
	if _, err := d.cli.ContainerStop(ctx, b.id, client.ContainerStopOptions{Timeout: &grace}); err != nil && !cerrdefs.IsNotFound(err) {
		log.Warn("board container not stopped", "err", err)
	}
	if _, err := d.cli.ContainerRemove(ctx, b.id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		err = fmt.Errorf("remove container %s: %w", dockerShortID(b.id), d.engineErr(err))
		b.set(Failed, err.Error())
		log.Error("board container not removed", "err", err)
		return
	}
	b.setStatus(Status{Device: b.spec.Device, Backend: dockerName, State: Stopped})
	log.Info("board stopped")
}

// dockerInput writes console input to the attach stream, giving up after
// inputTimeout when the board does not read it.
type dockerInput struct{ c net.Conn }

func (w dockerInput) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(inputTimeout))
	n, err := w.c.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("board does not read its input: %w", err)
	}
	return n, err
}

// Stop stops the board of device: its container gets SIGTERM, SIGKILL after
// StopGrace, and is removed; Stop waits for that or for ctx to end (the
// board is then still being stopped). Its console is closed and keeps the
// scrollback. Stopping a board this backend does not run returns nil.
func (d *Docker) Stop(ctx context.Context, device string) error {
	b := lookup(&d.mu, d.boards, device)
	if b == nil {
		return nil
	}
	b.requestStop(true)
	return awaitStopped(ctx, device, b.done)
}

// Status returns the state of the board of device as the engine last
// reported it; ID is the short id of its container.
func (d *Docker) Status(device string) Status {
	return statusOf(&d.mu, d.boards, device, dockerName)
}

// Console returns the console of the board of device: the live one while
// the backend follows it, the last one (closed, with its scrollback) after
// it stopped. The error wraps ErrNoBoard for a device never started.
func (d *Docker) Console(device string) (*Console, error) {
	return consoleOf(&d.mu, d.boards, device)
}

// Run adopts the containers an earlier daemon with the same Instance left
// (see Docker), trying again while the engine cannot be reached (after 5 s,
// doubling up to 5 min), waits for ctx to end, then stops and removes every
// container this backend runs and returns nil once they are gone. Start
// fails with ErrBackendClosed from then on. Boards may be started before Run
// is called; call Run once.
func (d *Docker) Run(ctx context.Context) error {
	d.adoptUntilDone(ctx)
	<-ctx.Done()
	boards := d.close()
	var wg sync.WaitGroup
	for _, b := range boards {
		wg.Go(func() {
			b.requestStop(true)
			<-b.done
		})
	}
	wg.Wait()
	if d.ownClient {
		d.cli.Close()
	}
	return nil
}

// Detach lets go of every board without stopping it: the attachments end,
// the consoles close (keeping their scrollback), and the containers keep
// running for a later backend with the same Instance to adopt, as a daemon
// that hands its boards over to its successor does. It returns once every
// board is let go of. Start fails with ErrBackendClosed afterwards, and Run
// then stops nothing when its context ends.
func (d *Docker) Detach() {
	boards := d.close()
	var wg sync.WaitGroup
	for _, b := range boards {
		wg.Go(func() {
			b.requestStop(false)
			<-b.done
		})
	}
	wg.Wait()
}

// close refuses new boards and returns the current ones.
func (d *Docker) close() []*dockerBoard {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	boards := make([]*dockerBoard, 0, len(d.boards))
	for _, b := range d.boards {
		boards = append(boards, b)
	}
	return boards
}

// adoptUntilDone adopts the leftovers, trying again while the engine cannot
// be reached, until it succeeds or ctx ends. Only the first failure is
// logged as a warning: a daemon on a machine without Docker keeps quiet.
func (d *Docker) adoptUntilDone(ctx context.Context) {
	if d.cliErr != nil {
		d.log.Warn("leftover boards not adopted", "err", d.cliErr)
		return
	}
	delay := dockerAdoptRetry
	for first := true; ; first = false {
		actx, cancel := context.WithTimeout(ctx, dockerEngineTimeout)
		err := d.adopt(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			if err == nil && !first {
				d.log.Info("leftover boards adopted after the engine answered")
			}
			return
		}
		if first {
			d.log.Warn("leftover boards not adopted; trying again", "err", err, "retry_in", delay.String())
		} else {
			d.log.Debug("leftover boards not adopted", "err", err, "retry_in", delay.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, dockerMaxAdoptRetry)
	}
}

// adopt takes over the running containers labelled with this Instance and
// removes its stopped ones.
func (d *Docker) adopt(ctx context.Context) error {
	cli, err := d.engine(ctx)
	if err != nil {
		return err
	}
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelDaemon+"="+d.cfg.Instance, LabelBackend+"="+dockerName),
	})
	if err != nil {
		return fmt.Errorf("list containers: %w", d.engineErr(err))
	}
	for _, c := range list.Items {
		device := c.Labels[LabelDevice]
		log := d.log.With("device", device, "container", dockerShortID(c.ID))
		if !validName(device) {
			log.Warn("container without a device label left alone")
			continue
		}
		switch c.State {
		case "running", "restarting":
			switch adopted, err := d.adoptContainer(ctx, device, c.Labels[LabelBoard], c.ID); {
			case err != nil:
				log.Error("leftover board not adopted", "err", err)
			case adopted:
				log.Info("leftover board adopted")
			}
		default:
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				log.Error("leftover board not removed", "err", err)
				continue
			}
			log.Info("stopped leftover board removed")
		}
	}
	return nil
}

// adoptContainer makes the running container id the board of device,
// unless the backend already has a live board for it (Start adopted it).
func (d *Docker) adoptContainer(ctx context.Context, device, board, id string) (adopted bool, err error) {
	spec := Spec{Device: device}
	if bd, err := LookupBoard(board); err == nil {
		spec.Board = bd
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return false, ErrBackendClosed
	}
	if old := d.boards[device]; old != nil && !old.finished() {
		d.mu.Unlock()
		return false, nil
	}
	b := d.newBoard(spec)
	b.id = id
	d.boards[device] = b
	d.mu.Unlock()
	go d.monitor(b, d.attachOrWait(ctx, b))
	return true, nil
}

// attachOrWait attaches to an adopted container with the logs the engine
// kept, so that its console shows what it printed before. It returns nil
// when that fails (the container is restarting, say): the monitor then
// attaches once it runs.
func (d *Docker) attachOrWait(ctx context.Context, b *dockerBoard) *client.HijackedResponse {
	att, err := d.attach(ctx, b, true)
	if err != nil {
		d.log.Info("adopted board not attached yet", "device", b.spec.Device, "container", dockerShortID(b.id), "err", err)
		return nil
	}
	return att
}
