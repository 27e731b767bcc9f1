// Package deployer runs Complement's homeservers as local `hearth serve` processes instead of
// Docker containers.
//
// Each deployment gets its own block of loopback addresses, 127.B1.B2.0/24, and hsN listens
// on 127.B1.B2.(N+1): the client API on :8008 (HTTP) and federation on :8448 (HTTPS, with a
// certificate minted from the CA Complement generated for the test package). Every server
// resolves the others through a static table in its config, and trusts Complement's CA, so
// Complement's own federation servers (on COMPLEMENT_HOSTNAME_RUNNING_COMPLEMENT, 127.0.0.1)
// are reachable too.
//
// Environment: HEARTH_BIN (the hearth binary, required), HEARTH_COMPLEMENT_DIR (where pid
// files go), HEARTH_COMPLEMENT_DATA (where each deployment's directory goes, default the
// system temp dir; kept short, because hearth's admin socket path must fit in sun_path),
// HEARTH_COMPLEMENT_LOG_LEVEL (hearth's log_level, default "info"),
// HEARTH_COMPLEMENT_KEEP=1 (keep data dirs and logs after each test).
package deployer

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/matrix-org/complement"
	"github.com/matrix-org/complement/client"
	"github.com/matrix-org/complement/config"
	"github.com/matrix-org/complement/ct"
	"github.com/matrix-org/complement/helpers"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Lines of a server's log printed when its test fails.
const logTailLines = 200

// blocks hands out /24 blocks of 127.0.0.0/8; 127.0.0.0/16 is left to Complement's own
// servers. It starts at an offset from the pid so that two test binaries running at the same
// time are unlikely to pick the same addresses (if they do, hearth fails to bind and says so).
var (
	blockCounter atomic.Uint64
	blockOffset  = uint64(os.Getpid()) * 7919
)

const blockCount = 254 * 256

func nextBlock() (byte, byte) {
	k := (blockOffset + blockCounter.Add(1)) % blockCount
	return byte(1 + k/256), byte(k % 256)
}

// Deployment is a set of running hearth processes for one test.
type Deployment struct {
	cfg              *config.Complement
	dir              string
	servers          map[string]*server
	localpartCounter atomic.Int64
	destroyOnce      sync.Once
}

var _ complement.Deployment = (*Deployment)(nil)

// Deploy starts numServers hearth processes; it is the function passed to
// complement.WithDeployment.
func Deploy(t ct.TestLike, numServers int, cfg *config.Complement) complement.Deployment {
	t.Helper()
	bin := os.Getenv("HEARTH_BIN")
	if bin == "" {
		ct.Fatalf(t, "deployer: HEARTH_BIN is not set (run the suite with complement/run.sh)")
	}
	root := os.Getenv("HEARTH_COMPLEMENT_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), "hearth-complement")
	}
	pidDir := filepath.Join(root, "pids")
	if err := os.MkdirAll(pidDir, 0o700); err != nil {
		ct.Fatalf(t, "deployer: %v", err)
	}
	b1, b2 := nextBlock()
	dataRoot := os.Getenv("HEARTH_COMPLEMENT_DATA")
	if dataRoot == "" {
		dataRoot = os.TempDir()
	}
	dir, err := os.MkdirTemp(dataRoot, fmt.Sprintf("%d.%d-", b1, b2))
	if err != nil {
		ct.Fatalf(t, "deployer: %v", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "test"), []byte(t.Name()+"\n"), 0o600)
	d := &Deployment{cfg: cfg, dir: dir, servers: map[string]*server{}}
	caPath := filepath.Join(dir, "ca.crt")
	if err := writeCA(cfg, caPath); err != nil {
		ct.Fatalf(t, "deployer: %v", err)
	}
	var all []*server
	for i := 1; i <= numServers; i++ {
		name := fmt.Sprintf("hs%d", i)
		s := &server{
			name:   name,
			ip:     net.IPv4(127, b1, b2, byte(i+1)).To4(),
			dir:    filepath.Join(dir, name),
			bin:    bin,
			pidDir: pidDir,
		}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			ct.Fatalf(t, "deployer: %v", err)
		}
		if err := mintServerCertificate(cfg, name, s.ip, filepath.Join(s.dir, "federation.crt"), filepath.Join(s.dir, "federation.key")); err != nil {
			ct.Fatalf(t, "deployer: %v", err)
		}
		d.servers[name] = s
		all = append(all, s)
	}
	logLevel := os.Getenv("HEARTH_COMPLEMENT_LOG_LEVEL")
	if logLevel == "" {
		logLevel = "info"
	}
	for _, s := range all {
		if err := s.writeConfig(caPath, all, logLevel); err != nil {
			ct.Fatalf(t, "deployer: %v", err)
		}
	}
	started := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for i, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.start(cfg.SpawnHSTimeout)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Logf("%s log (last %d lines):\n%s", all[i].name, logTailLines, all[i].logTail(logTailLines))
			d.stopAll()
			ct.Fatalf(t, "deployer: %v", err)
		}
	}
	live.Lock()
	live.set[d] = struct{}{}
	live.Unlock()
	t.Logf("deployer: %d hearth server(s) on 127.%d.%d.0/24 in %v (%s)", numServers, b1, b2, time.Since(started).Round(time.Millisecond), dir)
	return d
}

func (d *Deployment) server(t ct.TestLike, hsName string) *server {
	t.Helper()
	s, ok := d.servers[hsName]
	if !ok {
		ct.Fatalf(t, "deployer: no homeserver named %q in this deployment", hsName)
	}
	return s
}

func (d *Deployment) sortedServers() []*server {
	names := make([]string, 0, len(d.servers))
	for name := range d.servers {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*server, 0, len(names))
	for _, name := range names {
		out = append(out, d.servers[name])
	}
	return out
}

// GetFullyQualifiedHomeserverName: server names are the short names themselves.
func (d *Deployment) GetFullyQualifiedHomeserverName(t ct.TestLike, hsName string) spec.ServerName {
	t.Helper()
	d.server(t, hsName)
	return spec.ServerName(hsName)
}

func (d *Deployment) newClient(t ct.TestLike, s *server, password string) *client.CSAPI {
	return client.NewCSAPI(client.CSAPIOpts{
		BaseURL:          s.clientURL(),
		Client:           client.NewLoggedClient(t, s.name, nil),
		SyncUntilTimeout: 5 * time.Second,
		Debug:            d.cfg.DebugLoggingEnabled,
		Password:         password,
	})
}

func (d *Deployment) UnauthenticatedClient(t ct.TestLike, hsName string) *client.CSAPI {
	t.Helper()
	return d.newClient(t, d.server(t, hsName), "")
}

// Register creates user-N[-suffix]: admins through shared-secret registration (secret
// "complement"), everyone else through /register.
func (d *Deployment) Register(t ct.TestLike, hsName string, opts helpers.RegistrationOpts) *client.CSAPI {
	t.Helper()
	s := d.server(t, hsName)
	password := opts.Password
	if password == "" {
		password = "complement_meets_min_password_req"
	}
	c := d.newClient(t, s, password)
	localpart := fmt.Sprintf("user-%d", d.localpartCounter.Add(1))
	if opts.LocalpartSuffix != "" {
		localpart += "-" + opts.LocalpartSuffix
	}
	var userID, token, deviceID string
	if opts.IsAdmin {
		userID, token, deviceID = c.RegisterSharedSecret(t, localpart, password, true)
	} else {
		userID, token, deviceID = c.RegisterUser(t, localpart, password)
	}
	c.UserID, c.AccessToken, c.DeviceID = userID, token, deviceID
	return c
}

// Login logs in again as the user of an existing client.
func (d *Deployment) Login(t ct.TestLike, hsName string, existing *client.CSAPI, opts helpers.LoginOpts) *client.CSAPI {
	t.Helper()
	s := d.server(t, hsName)
	localpart, _, err := gomatrixserverlib.SplitID('@', existing.UserID)
	if err != nil {
		ct.Fatalf(t, "deployer: Login: invalid user id %q: %v", existing.UserID, err)
	}
	password := existing.Password
	if opts.Password != "" {
		password = opts.Password
	}
	c := d.newClient(t, s, password)
	var userID, token, deviceID string
	if opts.DeviceID == "" {
		userID, token, deviceID = c.LoginUser(t, localpart, password)
	} else {
		userID, token, deviceID = c.LoginUser(t, localpart, password, client.WithDeviceID(opts.DeviceID))
	}
	c.UserID, c.AccessToken, c.DeviceID = userID, token, deviceID
	return c
}

// AppServiceUser needs application services, which only Docker blueprints set up.
func (d *Deployment) AppServiceUser(t ct.TestLike, hsName, appServiceUserID string) *client.CSAPI {
	t.Helper()
	ct.Fatalf(t, "deployer: application services are not supported by the process deployer")
	return nil
}

// Restart stops every server and starts it again on the same data dir.
func (d *Deployment) Restart(t ct.TestLike) error {
	t.Helper()
	for _, s := range d.sortedServers() {
		if err := s.stop(); err != nil {
			return err
		}
	}
	for _, s := range d.sortedServers() {
		if err := s.start(d.cfg.SpawnHSTimeout); err != nil {
			t.Logf("%s log (last %d lines):\n%s", s.name, logTailLines, s.logTail(logTailLines))
			return err
		}
	}
	return nil
}

func (d *Deployment) StopServer(t ct.TestLike, hsName string) {
	t.Helper()
	if err := d.server(t, hsName).stop(); err != nil {
		ct.Fatalf(t, "deployer: StopServer: %v", err)
	}
}

func (d *Deployment) StartServer(t ct.TestLike, hsName string) {
	t.Helper()
	s := d.server(t, hsName)
	if err := s.start(d.cfg.SpawnHSTimeout); err != nil {
		t.Logf("%s log (last %d lines):\n%s", s.name, logTailLines, s.logTail(logTailLines))
		ct.Fatalf(t, "deployer: StartServer: %v", err)
	}
}

func (d *Deployment) PauseServer(t ct.TestLike, hsName string) {
	t.Helper()
	if err := d.server(t, hsName).signal(syscall.SIGSTOP); err != nil {
		ct.Fatalf(t, "deployer: PauseServer: %v", err)
	}
}

func (d *Deployment) UnpauseServer(t ct.TestLike, hsName string) {
	t.Helper()
	if err := d.server(t, hsName).signal(syscall.SIGCONT); err != nil {
		ct.Fatalf(t, "deployer: UnpauseServer: %v", err)
	}
}

// ContainerID names the process (there is no container).
func (d *Deployment) ContainerID(t ct.TestLike, hsName string) string {
	t.Helper()
	return fmt.Sprintf("hearth-pid-%d", d.server(t, hsName).pid())
}

// Destroy stops every server; when the test failed (or COMPLEMENT_ALWAYS_PRINT_SERVER_LOGS
// is set) it first prints the tail of each server's log.
func (d *Deployment) Destroy(t ct.TestLike) {
	t.Helper()
	d.destroyOnce.Do(func() {
		if t.Failed() || d.cfg.AlwaysPrintServerLogs {
			for _, s := range d.sortedServers() {
				t.Logf("%s log (%s, last %d lines):\n%s", s.name, s.logPath(), logTailLines, s.logTail(logTailLines))
			}
		}
		d.stopAll()
		live.Lock()
		delete(live.set, d)
		live.Unlock()
		if os.Getenv("HEARTH_COMPLEMENT_KEEP") == "" {
			_ = os.RemoveAll(d.dir)
		}
	})
}

// live holds the deployments not destroyed yet, for Cleanup.
var live = struct {
	sync.Mutex
	set map[*Deployment]struct{}
}{set: map[*Deployment]struct{}{}}

// Cleanup stops the servers of deployments a test forgot to destroy; it is passed to
// complement.WithCleanup and runs when the test package ends.
func Cleanup(*config.Complement) {
	live.Lock()
	left := make([]*Deployment, 0, len(live.set))
	for d := range live.set {
		left = append(left, d)
	}
	live.set = map[*Deployment]struct{}{}
	live.Unlock()
	for _, d := range left {
		d.stopAll()
	}
}

func (d *Deployment) stopAll() {
	var wg sync.WaitGroup
	for _, s := range d.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.stop()
		}()
	}
	wg.Wait()
}

func (d *Deployment) GetConfig() *config.Complement { return d.cfg }

// Network: the servers share the host's loopback, not a Docker network.
func (d *Deployment) Network() string { return "" }

// RoundTripper sends requests for https://hsN/… to hsN's federation listener, and requests
// for Complement's own host to loopback.
func (d *Deployment) RoundTripper() http.RoundTripper {
	return &roundTripper{d: d, transport: &http.Transport{
		// Complement's own servers present certificates from its CA, which its clients check
		// by other means; the test's peer is known by address here.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}}
}

type roundTripper struct {
	d         *Deployment
	transport *http.Transport
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Hostname()
	out := req.Clone(req.Context())
	if host == rt.d.cfg.HostnameRunningComplement {
		out.URL.Host = net.JoinHostPort("127.0.0.1", portOr(req.URL.Port(), "443"))
	} else if s, ok := rt.d.servers[host]; ok {
		out.URL.Host = s.federationAddr()
	} else {
		return nil, fmt.Errorf("deployer: round tripper: unknown homeserver %q", host)
	}
	out.URL.Scheme = "https"
	out.Host = req.URL.Host
	return rt.transport.RoundTrip(out)
}

func portOr(port, fallback string) string {
	if port == "" {
		return fallback
	}
	return port
}
