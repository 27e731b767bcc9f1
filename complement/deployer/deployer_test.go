package deployer

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/complement/config"
	"github.com/matrix-org/complement/helpers"
)

// TestDeployment exercises the deployer against a real hearth binary (HEARTH_BIN): register,
// restart on the same data, stop/start, pause/unpause, and federation over TLS through the
// round tripper. Run it from the scratch module run.sh prepares:
//
//	cd complement/.work/complement && HEARTH_BIN=… go test hearth.local/complement/deployer
func TestDeployment(t *testing.T) {
	if os.Getenv("HEARTH_BIN") == "" {
		t.Skip("HEARTH_BIN is not set")
	}
	t.Setenv("COMPLEMENT_BASE_IMAGE", "hearth")
	t.Setenv("HEARTH_COMPLEMENT_DIR", t.TempDir())
	cfg := config.NewConfigFromEnvVars("deployer", "")
	d := Deploy(t, 2, cfg)
	defer d.Destroy(t)

	alice := d.Register(t, "hs1", helpers.RegistrationOpts{})
	admin := d.Register(t, "hs2", helpers.RegistrationOpts{IsAdmin: true})
	if !strings.HasSuffix(admin.UserID, ":hs2") {
		t.Fatalf("admin user id %q", admin.UserID)
	}

	if err := d.Restart(t); err != nil {
		t.Fatalf("restart: %v", err)
	}
	again := d.Login(t, "hs1", alice, helpers.LoginOpts{})
	if again.UserID != alice.UserID {
		t.Fatalf("login after restart: %q, want %q", again.UserID, alice.UserID)
	}

	versions := func(hs string) error {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(d.(*Deployment).servers[hs].clientURL() + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	d.StopServer(t, "hs2")
	if versions("hs2") == nil {
		t.Fatalf("hs2 answers after StopServer")
	}
	d.StartServer(t, "hs2")
	if err := versions("hs2"); err != nil {
		t.Fatalf("hs2 after StartServer: %v", err)
	}
	d.PauseServer(t, "hs1")
	if versions("hs1") == nil {
		t.Fatalf("hs1 answers while paused")
	}
	d.UnpauseServer(t, "hs1")
	if err := versions("hs1"); err != nil {
		t.Fatalf("hs1 after UnpauseServer: %v", err)
	}

	fed := &http.Client{Transport: d.RoundTripper(), Timeout: 5 * time.Second}
	resp, err := fed.Get("https://hs2/_matrix/federation/v1/version")
	if err != nil {
		t.Fatalf("federation request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"Hearth"`) {
		t.Fatalf("federation answer %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].Subject.CommonName != "hs2" {
		t.Fatalf("federation listener did not present hs2's minted certificate")
	}
	if err := resp.TLS.PeerCertificates[0].CheckSignatureFrom(cfg.CACertificate); err != nil {
		t.Fatalf("hs2's certificate is not from Complement's CA: %v", err)
	}
}
