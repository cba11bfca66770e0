// Command wasmbedd is the Wasmbed daemon: the device gateway, the
// controllers, the emulated boards and the HTTP API, on an embedded store
// or, with --store kubernetes, on the wasmbed.io custom resources of a
// cluster (in-cluster when run as a pod, a kubeconfig otherwise).
// Logs are JSON on standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // --pprof-listen
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/sshconsole"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wasmbedd:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envErrs collects environment values that do not parse; run refuses to
// start with any.
var envErrs []error

// envDuration is env for durations.
func envDuration(name string, def time.Duration) time.Duration {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		envErrs = append(envErrs, fmt.Errorf("%s=%q: not a duration such as 10s", name, v))
		return def
	}
	return d
}

func run() error {
	cfg := daemon.Config{Version: version}
	var tokenFile, logLevel, sshListen, sshKeys, kubeconfig, pprofListen string
	flag.StringVar(&cfg.DataDir, "data-dir", env("WASMBED_DATA_DIR", "wasmbed-data"), "CA, store, modules and board state (env WASMBED_DATA_DIR)")
	flag.StringVar(&cfg.APIListen, "api-listen", env("WASMBED_API_LISTEN", "127.0.0.1:3001"), "HTTP API address (env WASMBED_API_LISTEN)")
	flag.StringVar(&cfg.GatewayListen, "gateway-listen", env("WASMBED_GATEWAY_LISTEN", ":8081"), "device TLS address (env WASMBED_GATEWAY_LISTEN)")
	flag.StringVar(&cfg.GatewayAdvertise, "gateway-advertise", env("WASMBED_GATEWAY_ADVERTISE", ""), "host:port devices dial; default from --gateway-listen (env WASMBED_GATEWAY_ADVERTISE)")
	flag.StringVar(&cfg.APIAdvertise, "api-advertise", env("WASMBED_API_ADVERTISE", ""), "host:port the other daemons of a cluster reach this API at; default from --api-listen (env WASMBED_API_ADVERTISE)")
	flag.StringVar(&cfg.GatewayName, "gateway-name", env("WASMBED_GATEWAY_NAME", ""), "this daemon's Gateway resource; default the host name (env WASMBED_GATEWAY_NAME)")
	flag.StringVar(&tokenFile, "token-file", env("WASMBED_TOKEN_FILE", ""), "file holding the API bearer token; required beyond loopback (env WASMBED_TOKEN_FILE)")
	flag.StringVar(&cfg.DeviceBinary, "device-binary", env("WASMBED_DEVICE_BINARY", ""), "wasmbed-device for emulated boards; default next to wasmbedd (env WASMBED_DEVICE_BINARY)")
	flag.StringVar(&cfg.DockerImage, "docker-image", env("WASMBED_DOCKER_IMAGE", ""), "image of docker-backend boards; default wasmbed-device:dev, built by make image (env WASMBED_DOCKER_IMAGE)")
	flag.StringVar(&cfg.MCUFirmware, "mcu-firmware", env("WASMBED_MCU_FIRMWARE", ""), "firmware ELF of qemu-backend boards; default wasmbed-mcu.elf next to wasmbedd, built by make build (env WASMBED_MCU_FIRMWARE)")
	flag.BoolVar(&cfg.AllowEmptyStore, "allow-empty-store", env("WASMBED_ALLOW_EMPTY_STORE", "") != "", "start with an empty store although the CA has issued device certificates (their records were lost) (env WASMBED_ALLOW_EMPTY_STORE)")
	flag.BoolVar(&cfg.Demo, "demo", env("WASMBED_DEMO", "") != "", "seed three emulated devices and roll a sample app out to them (env WASMBED_DEMO)")
	flag.StringVar(&cfg.DemoModule, "demo-module", env("WASMBED_DEMO_MODULE", daemon.DefaultDemoModule), "module the demo rolls out")
	flag.StringVar(&sshListen, "ssh-listen", env("WASMBED_SSH_LISTEN", ""), "serve the fleet console over SSH on this address, such as :2222; off when empty (env WASMBED_SSH_LISTEN)")
	flag.StringVar(&sshKeys, "ssh-authorized-keys", env("WASMBED_SSH_AUTHORIZED_KEYS", ""), "authorized_keys file of the keys the SSH console lets in; required with --ssh-listen (env WASMBED_SSH_AUTHORIZED_KEYS)")
	flag.StringVar(&cfg.Store, "store", env("WASMBED_STORE", daemon.StoreEmbedded), "embedded or kubernetes (env WASMBED_STORE)")
	flag.StringVar(&kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig of the kubernetes store; default in-cluster, then ~/.kube/config (env KUBECONFIG)")
	flag.StringVar(&cfg.Namespace, "namespace", env("WASMBED_NAMESPACE", podNamespace()), "namespace of the kubernetes store's resources (env WASMBED_NAMESPACE)")
	flag.StringVar(&cfg.CADir, "ca-dir", env("WASMBED_CA_DIR", ""), "CA shared by the daemons of a cluster (ca.crt, ca.key; a mounted Secret); default one in --data-dir (env WASMBED_CA_DIR)")
	flag.DurationVar(&cfg.GatewayHeartbeat, "gateway-heartbeat", envDuration("WASMBED_GATEWAY_HEARTBEAT", 10*time.Second), "how often this gateway heartbeats its Gateway resource; one silent for three is unhealthy (env WASMBED_GATEWAY_HEARTBEAT)")
	flag.DurationVar(&cfg.Lease.Duration, "lease-duration", envDuration("WASMBED_LEASE_DURATION", 15*time.Second), "kubernetes store: the leader Lease's duration; renewal and retries keep client-go's proportions (env WASMBED_LEASE_DURATION)")
	flag.StringVar(&pprofListen, "pprof-listen", env("WASMBED_PPROF_LISTEN", ""), "serve Go's profiles (/debug/pprof/) on this loopback address, such as 127.0.0.1:6060; off when empty (env WASMBED_PPROF_LISTEN)")
	flag.StringVar(&logLevel, "log-level", env("WASMBED_LOG_LEVEL", "info"), "debug, info, warn or error (env WASMBED_LOG_LEVEL)")
	flag.Parse()
	if err := errors.Join(envErrs...); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
		if cfg.Token == "" {
			return fmt.Errorf("token file %s is empty", tokenFile)
		}
	}
	if cfg.Store == daemon.StoreKubernetes {
		kc, err := kubeConfig(kubeconfig)
		if err != nil {
			return fmt.Errorf("kubernetes store: %w", err)
		}
		cfg.Kube = kc
	}
	if sshListen != "" {
		srv, err := sshconsole.New(sshconsole.Config{
			Listen: sshListen, AuthorizedKeys: sshKeys, Token: cfg.Token, Logger: cfg.Logger,
			HostKey: filepath.Join(cfg.DataDir, sshconsole.HostKeyFile),
		})
		if err != nil {
			return err
		}
		cfg.SSH = srv.Serve
	} else if sshKeys != "" {
		return fmt.Errorf("--ssh-authorized-keys without --ssh-listen")
	}
	if pprofListen != "" {
		// Profiles say what the daemon spends its time and memory on;
		// they may reveal what it holds, so they stay on loopback.
		if !daemon.IsLoopback(pprofListen) {
			return fmt.Errorf("--pprof-listen %s: profiles are served on loopback only", pprofListen)
		}
		ln, err := net.Listen("tcp", pprofListen)
		if err != nil {
			return fmt.Errorf("pprof listen: %w", err)
		}
		go http.Serve(ln, http.DefaultServeMux) // net/http/pprof's handlers
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	return daemon.Run(ctx, cfg)
}

// kubeConfig is the cluster of the kubernetes store: the kubeconfig at
// path when given, otherwise in-cluster when run as a pod, otherwise the
// usual kubeconfig (KUBECONFIG, ~/.kube/config).
func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
}

// podNamespace is the namespace a pod runs in (the downward API's
// POD_NAMESPACE or the service account's), or "wasmbed".
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "wasmbed"
}
