package deployer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/matrix-org/complement/config"
)

// writeCA stores the package's CA certificate (the one Complement's own federation servers
// trust and present certificates from) so hearth can trust it for outgoing requests.
func writeCA(cfg *config.Complement, path string) error {
	certPEM, err := cfg.CACertificateBytes()
	if err != nil {
		return fmt.Errorf("encoding the CA certificate: %w", err)
	}
	return os.WriteFile(path, certPEM, 0o600)
}

// mintServerCertificate issues a certificate for serverName (and its IP) signed by the
// package's CA, and writes the certificate and its private key as PEM files.
func mintServerCertificate(cfg *config.Complement, serverName string, ip net.IP, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating a key for %s: %w", serverName, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: serverName, Organization: []string{"hearth complement"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{serverName},
		IPAddresses:  []net.IP{ip},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, cfg.CACertificate, &key.PublicKey, cfg.CAPrivateKey)
	if err != nil {
		return fmt.Errorf("signing the certificate of %s: %w", serverName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.CACertificate.Raw})...)
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}
