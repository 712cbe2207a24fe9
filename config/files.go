package config

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// LoadCertificate reads and parses the certificate chain and private key
// (PEM) and checks that they belong together. serve loads (and on SIGHUP
// reloads) its certificate with it, and CheckFiles calls it, so that
// `certmail config check` refuses what serve would.
func (t TLS) LoadCertificate() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return c, fmt.Errorf("loading TLS certificate %s and key %s: %w", t.Cert, t.Key, err)
	}
	return c, nil
}

// CheckFiles checks what serve reads at start beyond the configuration's
// own values (which Parse and Validate check): the TLS certificate and
// key. The encryption key file is already read by Validate, since every
// command that opens the store needs it.
func (c *Config) CheckFiles() error {
	var errs []error
	if c.TLS.Enabled() {
		if _, err := c.TLS.LoadCertificate(); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	return errors.Join(errs...)
}
