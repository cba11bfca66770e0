//go:build linux

// Package kubetest starts real Kubernetes API servers for tests: an etcd
// embedded in the test process and the kube-apiserver binary built from
// the module proxy by `make kube-apiserver` (deploy/kube-testenv). It also
// installs the CRDs from crds/ and applies manifests from deploy/.
//
// Only tests import it. It is Linux-only: the API server it starts dies
// with the test process (Pdeathsig).
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	etcdtestserver "k8s.io/apiserver/pkg/storage/etcd3/testserver"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// EnvAPIServer names the kube-apiserver binary; the Makefile sets it to
// the cached build. Without it, DefaultAPIServer is tried.
const EnvAPIServer = "WASMBED_KUBE_APISERVER"

// Version is the Kubernetes version deploy/kube-testenv pins.
const Version = "v1.37.2"

// DefaultAPIServer is where `make kube-apiserver` leaves the binary.
func DefaultAPIServer() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "wasmbed", "kube-"+Version, "kube-apiserver")
}

// APIServerBinary returns the kube-apiserver to run, or "" when none is
// built.
func APIServerBinary() string {
	p := os.Getenv(EnvAPIServer)
	if p == "" {
		p = DefaultAPIServer()
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return ""
	}
	return p
}

// A User is a bearer-token identity the API server knows.
type User struct {
	Name   string
	Groups []string
}

// Admin is in system:masters: RBAC lets it do anything.
var Admin = User{Name: "wasmbed-test-admin", Groups: []string{"system:masters"}}

// ServiceAccount is the identity a pod running as namespace/name has.
func ServiceAccount(namespace, name string) User {
	return User{
		Name:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
}

// Cluster is a running kube-apiserver on loopback with its own etcd.
type Cluster struct {
	Host   string // https://127.0.0.1:port
	caFile string
	tokens map[string]string // user name -> bearer token
}

// Config returns a client configuration that authenticates as user, which
// must have been passed to Start (Admin always is).
func (c *Cluster) Config(user User) *rest.Config {
	tok, ok := c.tokens[user.Name]
	if !ok {
		panic("kubetest: user " + user.Name + " was not given to Start")
	}
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.caFile},
		QPS:             500,
		Burst:           1000,
	}
}

// Kubeconfig writes a kubeconfig file for user into dir, for programs the
// test runs, and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, dir string, user User) string {
	t.Helper()
	cfg := c.Config(user)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: c.caFile}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user"}
	kc.CurrentContext = "test"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Admin returns a system:masters client configuration.
func (c *Cluster) Admin() *rest.Config { return c.Config(Admin) }

// Start runs etcd and kube-apiserver for the test, with Admin and users as
// the identities it accepts, and stops both when the test ends. It skips
// the test when the kube-apiserver binary is not built (see
// APIServerBinary): `make test-k8s` and .ci/run build it first.
func Start(t testing.TB, users ...User) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd; skipped with -short")
	}
	bin := APIServerBinary()
	if bin == "" {
		t.Skipf("no kube-apiserver built: run `make kube-apiserver` (or set %s)", EnvAPIServer)
	}
	etcdURL := StartEtcd(t)

	dir := t.TempDir()
	c := &Cluster{tokens: map[string]string{}}
	var tokenFile strings.Builder
	for i, u := range append([]User{Admin}, users...) {
		tok := randomToken()
		c.tokens[u.Name] = tok
		fmt.Fprintf(&tokenFile, "%s,%s,uid-%d,\"%s\"\n", tok, u.Name, i, strings.Join(u.Groups, ","))
	}
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(tokenFile.String()))
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, rsaKeyPEM(t))

	port := freePort(t)
	certDir := filepath.Join(dir, "certs")
	cmd := exec.Command(bin,
		"--etcd-servers="+etcdURL,
		"--etcd-prefix=/registry",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+certDir,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
	)
	logFile, err := os.Create(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server must not outlive a test binary that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})

	c.Host = "https://127.0.0.1:" + strconv.Itoa(port)
	c.caFile = filepath.Join(certDir, "apiserver.crt")
	if err := c.waitReady(exited); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		t.Fatalf("kube-apiserver: %v\n%s", err, tail(log, 40))
	}
	return c
}

// waitReady polls /readyz until the server answers ok.
func (c *Cluster) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before it was ready: %v", err)
		default:
		}
		last = c.readyz()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after 90s: %v", last)
}

func (c *Cluster) readyz() error {
	if _, err := os.Stat(c.caFile); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(c.Admin())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Host+"/readyz", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// StartEtcd runs an etcd in the test process until the test ends and
// returns its client URL.
func StartEtcd(t testing.TB) string {
	t.Helper()
	cfg := etcdtestserver.NewTestConfig(t)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("embedded etcd not ready after 60s")
	}
	return cfg.ListenClientUrls[0].String()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func rsaKeyPEM(t testing.TB) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, lines int) string {
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}

// WaitAllowed waits until the server's authorizer lets user do verb on
// resource (of group, in namespace): RBAC objects just created take a
// moment to reach it, and a client started at once would be refused.
func (c *Cluster) WaitAllowed(t testing.TB, user User, verb, group, resource, namespace string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Admin())
	if err != nil {
		t.Fatal(err)
	}
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Name, Groups: user.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: namespace},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), review, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s may still not %s %s.%s in %s after 30s (%v)", user.Name, verb, resource, group, namespace, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
