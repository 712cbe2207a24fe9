package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"certmail/certified"
	"certmail/kv"
	"certmail/kv/keyspace"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// gatewayKeyRecord holds, in a store that several nodes share, the public
// half of the gateway key its evidence is signed with.
var gatewayKeyRecord = []byte(keyspace.Node + "gateway-key")

// claimGatewayKey makes sure that the gateway key in dataDir is the one
// every other node of a shared (PostgreSQL) store signs with: the key
// stays a file in each node's data directory, never in the database, so
// a node without it would make a key of its own and sign evidence that
// no published key verifies. The first process to open the store (serve,
// or `user add`) makes the key and records its public half; after that a
// process whose data directory has no key, or another key, is refused and
// told to copy the file.
func claimGatewayKey(store *mailbox.Store, dataDir string) error {
	path := filepath.Join(dataDir, certified.GatewayKeyFile)
	var recorded []byte
	var signed bool
	if err := store.Records().View(func(r kv.Records) error {
		v, _, err := r.Get(gatewayKeyRecord)
		recorded = v
		if err == nil && v == nil {
			signed, err = evidence.Signed(r)
		}
		return err
	}); err != nil {
		return fmt.Errorf("reading the store's gateway key: %w", err)
	}
	_, statErr := os.Stat(path)
	if errors.Is(statErr, fs.ErrNotExist) {
		if recorded != nil {
			return fmt.Errorf("no gateway key in %s: the store's evidence is signed with the key %s of another node; copy gateway.key from that node's data directory into %s (mode 0600) and start again", AbsPath(dataDir), fingerprint(recorded), AbsPath(dataDir))
		}
		// A store moved from a data directory (migrate, restore) has
		// signed evidence but no recorded key: a new key would sign
		// what the old one's log goes on with.
		if signed {
			return fmt.Errorf("no gateway key in %s, and the store's evidence log is already signed (a store migrated or restored from a data directory?): copy gateway.key from the data directory it came from into %s (mode 0600) and start again", AbsPath(dataDir), AbsPath(dataDir))
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	priv, err := receipts.LoadOrCreateGatewayKey(path)
	if err != nil {
		return fmt.Errorf("gateway key: %w", err)
	}
	pub := []byte(priv.Public().(ed25519.PublicKey))
	if recorded != nil {
		if !bytes.Equal(recorded, pub) {
			return fmt.Errorf("the gateway key in %s (%s) is not the one the store's evidence is signed with (%s): copy gateway.key from another node's data directory", path, fingerprint(pub), fingerprint(recorded))
		}
		return nil
	}
	// The first: record it, unless another process recorded its own
	// meanwhile (then ours, made a moment ago, is not the store's).
	err = store.Records().Update(func(r kv.Records) error {
		v, found, err := r.Get(gatewayKeyRecord)
		if err != nil {
			return err
		}
		if found && !bytes.Equal(v, pub) {
			recorded = v
			return nil
		}
		recorded = pub
		if found {
			return nil
		}
		return r.Set(gatewayKeyRecord, pub)
	})
	if err != nil {
		return fmt.Errorf("recording the gateway key: %w", err)
	}
	if !bytes.Equal(recorded, pub) {
		return fmt.Errorf("another node recorded its gateway key (%s) first: copy its gateway.key into %s, replacing the one made here (%s)", fingerprint(recorded), AbsPath(dataDir), fingerprint(pub))
	}
	return nil
}

// fingerprint names a public key in messages: SHA-256, first 8 bytes.
func fingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(h[:8])
}
