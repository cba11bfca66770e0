package renode

import (
	"archive/tar"
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Docker backend constants.
const (
	// DefaultDockerImage is the image DockerConfig.Image defaults to, as
	// `make image` builds it from deploy/device/Dockerfile.
	DefaultDockerImage = "wasmbed-device:dev"
	// DefaultDockerNetwork is the network DockerConfig.Network defaults to.
	DefaultDockerNetwork = "bridge"
	// DockerContainerPrefix starts the name of every board container:
	// the board of device d is the container DockerContainerPrefix+d.
	DockerContainerPrefix = "wasmbed-"
	// DockerStateDir is the device's state directory inside its container
	// (WASMBED_STATE_DIR): the identity is copied there before the start.
	DockerStateDir = "/state"
	// DockerUID is the user and group id the device runs as in its
	// container; it owns DockerStateDir. deploy/device/Dockerfile names the
	// same id.
	DockerUID = 65532
)

// Labels of Spec.Labels the docker backend turns into resource limits of a
// board's container; the daemon sets them from the Device's
// spec.emulation.memoryMiB and cpuMillis. A board without them has no
// limit.
const (
	// LabelMemoryMiB is the container's memory limit in MiB (1<<20
	// bytes), a whole number above 0; swap is not allowed beyond it.
	LabelMemoryMiB = "wasmbed.io/memory-mib"
	// LabelCPUMillis is the container's CPU limit in thousandths of a CPU
	// (1000 is one CPU), a whole number above 0.
	LabelCPUMillis = "wasmbed.io/cpu-millis"
)

// dockerLogSize bounds the container log the engine keeps (and replays to a
// daemon that adopts the container): one file of this size.
const dockerLogSize = "1m"

// DockerContainerName returns the name of the container of device's board.
func DockerContainerName(device string) string { return DockerContainerPrefix + device }

// containerSpec is the container the docker backend creates for spec:
// gateway is the host:port the board dials across the Docker network and
// serverName the name it checks in the gateway certificate.
func (d *Docker) containerSpec(spec Spec, gateway, serverName string) (*container.Config, *container.HostConfig, error) {
	res, err := dockerResources(spec.Labels)
	if err != nil {
		return nil, nil, err
	}
	labels := make(map[string]string, len(spec.Labels)+3)
	maps.Copy(labels, spec.Labels)
	labels[LabelDevice] = spec.Device
	labels[LabelDaemon] = d.cfg.Instance
	labels[LabelBoard] = spec.Board.Name
	labels[LabelBackend] = dockerName
	stopTimeout := int(StopGrace / time.Second)
	cfg := &container.Config{
		Image:    d.cfg.Image,
		Hostname: spec.Device,
		User:     fmt.Sprintf("%d:%d", DockerUID, DockerUID),
		Env: []string{
			"WASMBED_DEVICE=" + spec.Device,
			"WASMBED_BOARD=" + spec.Board.Name,
			"WASMBED_GATEWAY=" + gateway,
			"WASMBED_SERVER_NAME=" + serverName,
			"WASMBED_STATE_DIR=" + DockerStateDir,
			"WASMBED_CAPABILITIES=" + strings.Join(dockerCapabilities(spec.Board), ","),
			"WASMBED_FIRMWARE=docker/" + spec.Board.Name,
		},
		Labels: labels,
		// The container's TTY is the board's UART: one stream for the
		// device's standard output and error, and its standard input,
		// kept open between attachments.
		Tty:          true,
		OpenStdin:    true,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		StopSignal:   "SIGTERM",
		StopTimeout:  &stopTimeout,
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(d.cfg.Network),
		// A board restarts whenever it ends without being stopped, as a
		// powered board does, also after the engine restarts.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": dockerLogSize, "max-file": "1",
		}},
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Resources:   res,
	}
	return cfg, host, nil
}

// dockerCapabilities are the capabilities a board's wasmbed-device reports:
// wasm, wasi and the board's connectivity.
func dockerCapabilities(b Board) []string {
	caps := []string{"wasm", "wasi"}
	for _, c := range b.Capabilities {
		if c != CapNone {
			caps = append(caps, c)
		}
	}
	return caps
}

// dockerResources reads the limits of LabelMemoryMiB and LabelCPUMillis.
func dockerResources(labels map[string]string) (container.Resources, error) {
	var r container.Resources
	if v, ok := labels[LabelMemoryMiB]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > 1<<30 {
			return r, fmt.Errorf("label %s=%q: want a whole number of MiB above 0", LabelMemoryMiB, v)
		}
		r.Memory = n << 20
		r.MemorySwap = r.Memory
	}
	if v, ok := labels[LabelCPUMillis]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > 1<<30 {
			return r, fmt.Errorf("label %s=%q: want a whole number of thousandths of a CPU above 0", LabelCPUMillis, v)
		}
		r.NanoCPUs = n * 1e6
	}
	return r, nil
}

// dockerIdentityTar is the tar CopyToContainer unpacks at / before the board
// starts: DockerStateDir (0700) holding device.crt, device.key and ca.crt
// (0600), all owned by DockerUID.
func dockerIdentityTar(spec Spec) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(DockerStateDir, "/") + "/"
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o700,
		Uid: DockerUID, Gid: DockerUID, ModTime: now}); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"device.crt", spec.CertPEM}, {"device.key", spec.KeyPEM}, {"ca.crt", spec.CAPEM}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + f.name, Mode: 0o600,
			Size: int64(len(f.data)), Uid: DockerUID, Gid: DockerUID, ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// dockerNetworkGateway is the IPv4 address at which containers on n reach the
// host: the gateway of n's IPAM configuration, else the first address of
// its subnet, which Docker gives the bridge when it names no gateway (as
// the default bridge network does not).
func dockerNetworkGateway(n network.Inspect) (netip.Addr, error) {
	for _, c := range n.IPAM.Config {
		if c.Gateway.Is4() {
			return c.Gateway, nil
		}
	}
	for _, c := range n.IPAM.Config {
		if c.Subnet.Addr().Is4() {
			return c.Subnet.Masked().Addr().Next(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s has no IPv4 gateway or subnet; set the gateway host in the docker backend's config", n.Name)
}

// gatewayHostPort joins host with the port of DockerConfig.GatewayPort, or
// else of the spec's gateway address.
func (d *Docker) gatewayHostPort(host, specGateway string) (string, error) {
	port := d.cfg.GatewayPort
	if port == "" {
		_, p, err := net.SplitHostPort(specGateway)
		if err != nil {
			return "", fmt.Errorf("gateway address %q: %w", specGateway, err)
		}
		port = p
	}
	return net.JoinHostPort(host, port), nil
}

// dockerStatus turns what the engine says of a board's container into its
// Status.
func dockerStatus(device string, c container.InspectResponse) Status {
	st := Status{Device: device, Backend: dockerName, ID: dockerShortID(c.ID)}
	s := c.State
	if s == nil {
		st.State, st.Reason = Failed, "the engine reports no state for the container"
		return st
	}
	if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && t.Year() > 1 {
		st.Started = t
	}
	switch {
	case s.Restarting:
		st.State, st.Reason = Starting, "restarting after "+exitReasonDocker(s)
	case s.Paused:
		st.State, st.Reason = Failed, "container paused"
	case s.Running:
		st.State = Running
	case s.Status == container.StateCreated:
		st.State = Starting
	default:
		st.State, st.Reason = Failed, exitReasonDocker(s)
	}
	return st
}

// exitReasonDocker says how a container's last run ended.
func exitReasonDocker(s *container.State) string {
	switch {
	case s.OOMKilled:
		return fmt.Sprintf("out of memory (OOMKilled), exit code %d", s.ExitCode)
	case s.Error != "":
		return fmt.Sprintf("exit code %d: %s", s.ExitCode, s.Error)
	}
	return fmt.Sprintf("exit code %d", s.ExitCode)
}

// dockerShortID is the 12-character form of a container id, as docker ps
// shows it.
func dockerShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
