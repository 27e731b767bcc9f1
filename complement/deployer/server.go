package deployer

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	clientPort     = 8008
	federationPort = 8448
	// How long a stopping server may take before it is killed.
	stopGrace = 10 * time.Second
)

// server is one `hearth serve` process: its name, loopback address, files and process state.
type server struct {
	name   string // hs1, hs2, …
	ip     net.IP
	dir    string // holds config, certificate, data and log
	bin    string
	pidDir string // where run.sh finds the pids of servers still running
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	paused bool
}

func (s *server) clientURL() string {
	return fmt.Sprintf("http://%s", net.JoinHostPort(s.ip.String(), strconv.Itoa(clientPort)))
}

func (s *server) federationAddr() string {
	return net.JoinHostPort(s.ip.String(), strconv.Itoa(federationPort))
}

func (s *server) configPath() string { return filepath.Join(s.dir, "hearth.toml") }
func (s *server) logPath() string    { return filepath.Join(s.dir, "hearth.log") }

// writeConfig writes the server's hearth.toml: its name and address, a fresh data dir, TLS
// for federation from the minted certificate, trust in Complement's CA, the static names of
// every server in the deployment, settings that keep tests fast (no rate limits, cheap
// password hashes, no fsync), and media as Complement expects it (legacy endpoints serve new
// media, URL previews on and allowed to reach loopback).
func (s *server) writeConfig(caPath string, peers []*server, logLevel string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name = %q\n", s.name)
	fmt.Fprintf(&b, "database_path = %q\n", filepath.Join(s.dir, "data"))
	fmt.Fprintf(&b, "address = %q\nport = %d\n", s.ip.String(), clientPort)
	b.WriteString("allow_registration = true\n")
	b.WriteString("registration_shared_secret = \"complement\"\n")
	fmt.Fprintf(&b, "log_level = %q\n", logLevel)
	b.WriteString("\n[storage]\nsync_writes = false\n")
	b.WriteString("\n[password_hash]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n")
	b.WriteString("\n[rate_limits]\nenabled = false\n")
	// Complement downloads new media over the legacy endpoints too (Synapse, which freezes
	// them, skips those tests) and previews pages of its own web server on loopback.
	b.WriteString("\n[media]\nenable_authenticated_media = false\n")
	b.WriteString("url_preview = true\nurl_preview_allow_private_addresses = true\n")
	b.WriteString("\n[federation]\nenabled = true\n")
	fmt.Fprintf(&b, "address = %q\nport = %d\n", s.ip.String(), federationPort)
	fmt.Fprintf(&b, "tls_certificate = %q\n", filepath.Join(s.dir, "federation.crt"))
	fmt.Fprintf(&b, "tls_private_key = %q\n", filepath.Join(s.dir, "federation.key"))
	fmt.Fprintf(&b, "trusted_ca_files = [%q]\n", caPath)
	b.WriteString("allow_private_addresses = true\n")
	b.WriteString("\n[federation.resolve]\n")
	for _, peer := range peers {
		fmt.Fprintf(&b, "%s = %q\n", peer.name, peer.federationAddr())
	}
	return os.WriteFile(s.configPath(), []byte(b.String()), 0o600)
}

// start launches the process and waits until both listeners answer.
func (s *server) start(timeout time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s is already running", s.name)
	}
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "serve", "--config", s.configPath())
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = cleanEnv()
	// The server dies with the test binary, however that ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	pidFile := filepath.Join(s.pidDir, strconv.Itoa(cmd.Process.Pid))
	_ = os.WriteFile(pidFile, []byte(s.dir+"\n"), 0o600)
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		_ = os.Remove(pidFile)
		close(exited)
	}()
	s.cmd, s.exited, s.paused = cmd, exited, false
	if err := s.waitReady(timeout, exited); err != nil {
		s.killLocked()
		return err
	}
	return nil
}

// cleanEnv is the test binary's environment without HEARTH_* variables, so that nothing but
// the written config file shapes the server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HEARTH_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *server) waitReady(timeout time.Duration, exited chan struct{}) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start-up", s.name)
		default:
		}
		resp, err := client.Get(s.clientURL() + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				conn, err := net.DialTimeout("tcp", s.federationAddr(), time.Second)
				if err == nil {
					conn.Close()
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %v", s.name, timeout)
}

// stop asks the server to shut down (SIGTERM) and kills it if it takes too long.
func (s *server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%s is not running", s.name)
	}
	if s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopGrace):
		s.killLocked()
		s.cmd = nil
		return fmt.Errorf("%s did not stop within %v; killed", s.name, stopGrace)
	}
	s.cmd = nil
	return nil
}

func (s *server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func (s *server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("%s is not running", s.name)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return err
	}
	s.paused = sig == syscall.SIGSTOP
	// Signals arrive asynchronously: wait until every thread has stopped (or resumed), as
	// `docker pause` waits for the freezer.
	return waitStopped(s.cmd.Process.Pid, s.paused, 5*time.Second)
}

// waitStopped polls /proc until every thread of pid is stopped (state T), or none is.
func waitStopped(pid int, stopped bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		all, none := len(tasks) > 0, true
		for _, task := range tasks {
			stat, err := os.ReadFile(task)
			if err != nil {
				continue
			}
			// The state follows the command name, which is in parentheses.
			rest := string(stat)
			if i := strings.LastIndexByte(rest, ')'); i >= 0 && i+2 < len(rest) {
				isStopped := rest[i+2] == 'T' || rest[i+2] == 't'
				all = all && isStopped
				none = none && !isStopped
			}
		}
		if (stopped && all) || (!stopped && none) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d did not %s within %v", pid, map[bool]string{true: "stop", false: "resume"}[stopped], timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// logTail returns the last n lines of the server's log.
func (s *server) logTail(n int) string {
	f, err := os.Open(s.logPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if err := scanner.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		lines = append(lines, fmt.Sprintf("(reading the log failed: %v)", err))
	}
	return strings.Join(lines, "\n")
}
