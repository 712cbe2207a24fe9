package main

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"certmail/receipts"
)

type ed25519PublicKey = ed25519.PublicKey

// writeKeyPair writes priv to path (0600, refusing to overwrite) and its
// public key to path.pub.
func writeKeyPair(path string, priv ed25519.PrivateKey) error {
	privPEM, err := receipts.MarshalPrivateKeyPEM(priv)
	if err != nil {
		return err
	}
	pubPEM, err := receipts.MarshalPublicKeyPEM(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing private key: %w", err)
	}
	if _, err := f.Write(privPEM); err != nil {
		f.Close()
		return fmt.Errorf("writing private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing private key: %w", err)
	}
	if err := os.WriteFile(path+".pub", pubPEM, 0o644); err != nil {
		return fmt.Errorf("writing public key: %w", err)
	}
	return nil
}
