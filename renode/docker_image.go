package renode

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// deviceDockerfile is the Dockerfile of the wasmbed-device image, with the
// instructions of deploy/device/Dockerfile (a test keeps the two the same):
// a static wasmbed-device FROM scratch, run as DockerUID.
const deviceDockerfile = `FROM scratch
COPY wasmbed-device /wasmbed-device
USER 65532:65532
ENTRYPOINT ["/wasmbed-device"]
`

// BuildDeviceImage builds the wasmbed-device image the docker backend runs,
// the image `make image` builds, through the Engine API of cli and tags it
// tag (DefaultDockerImage for the backend's default). binary is the path of
// a wasmbed-device built statically (CGO_ENABLED=0): the image holds
// nothing else, so a binary linked against the C library does not start.
// Nothing is pulled, so the build works on an engine without a registry.
// An image of the same tag is replaced. It returns once the engine has the
// image, or with the build step that failed and the build's output; ctx
// bounds the whole build. The caller removes the image.
func BuildDeviceImage(ctx context.Context, cli *client.Client, binary, tag string) error {
	if tag == "" {
		return errors.New("build device image: a tag is required")
	}
	buildContext, err := deviceBuildContext(binary)
	if err != nil {
		return fmt.Errorf("build device image %s: %w", tag, err)
	}
	res, err := cli.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
	})
	if err != nil {
		return fmt.Errorf("build device image %s: %w", tag, err)
	}
	defer res.Body.Close()
	// The engine reports the build as a stream of JSON messages; a failed
	// step is one with an error, and the stream still ends normally.
	var log strings.Builder
	dec := json.NewDecoder(res.Body)
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("build device image %s: read the build output: %w", tag, err)
		}
		log.WriteString(m.Stream)
		if m.Error != "" {
			return fmt.Errorf("build device image %s: %s\n%s", tag, m.Error, log.String())
		}
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("build device image %s: the engine has no such image after the build: %w\n%s", tag, err, log.String())
	}
	return nil
}

// deviceBuildContext is the tar archive of the image's build context:
// deviceDockerfile and the binary as wasmbed-device.
func deviceBuildContext(binary string) (*bytes.Buffer, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(deviceDockerfile)}, {"wasmbed-device", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now}); err != nil {
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
