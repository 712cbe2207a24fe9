package certified

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"certmail/receipts"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// Recipient keys, in the store's auxiliary space:
//
//	cm/custody/<acct>          the gateway-held key, sealed under the password
//	cm/pubkey/<acct>/<kid>     every public key the account ever had
//
// Public keys are never deleted, so that CODs signed with a retired key
// still verify.

// KeyRecord is a public key registered for an account.
type KeyRecord struct {
	KeyID   string           `json:"kid"`
	Public  []byte           `json:"public"` // raw Ed25519
	Custody receipts.Custody `json:"custody"`
	Created time.Time        `json:"created"`
	Retired time.Time        `json:"retired,omitzero"`
}

func custodyKey(acct string) []byte { return []byte(keyspace.Certified + "custody/" + acct) }

func pubKeyPrefix(acct string) []byte { return []byte(keyspace.Certified + "pubkey/" + acct + "/") }

func pubKeyKey(acct, kid string) []byte {
	return []byte(keyspace.Certified + "pubkey/" + acct + "/" + kid)
}

// ProvisionCustody creates an account's gateway-held key, sealed under its
// password; run it in the transaction that creates the account.
func ProvisionCustody(kv kv.Records, acct, password string) error {
	priv, err := receipts.GenerateKey()
	if err != nil {
		return err
	}
	sealed, err := receipts.SealKey(priv, []byte(password))
	if err != nil {
		return fmt.Errorf("sealing custody key of %s: %w", acct, err)
	}
	if err := kv.Set(custodyKey(acct), sealed); err != nil {
		return err
	}
	return putKey(kv, acct, priv.Public().(ed25519.PublicKey), receipts.CustodyGatewayHeld)
}

// ChangePassword re-seals the custody key when the old password is known
// (the owner changes it). When it is not (an operator resets it), the old
// key is retired, still listed for verifying old CODs, and a new key is
// made: nobody who lacks the old password can ever sign with the old key.
func ChangePassword(kv kv.Records, acct, oldPassword, newPassword string) error {
	sealed, ok, err := kv.Get(custodyKey(acct))
	if err != nil {
		return err
	}
	if ok && oldPassword != "" {
		resealed, err := receipts.ResealKey(sealed, []byte(oldPassword), []byte(newPassword))
		if err == nil {
			return kv.Set(custodyKey(acct), resealed)
		}
		if !errors.Is(err, receipts.ErrWrongPassword) {
			return fmt.Errorf("re-sealing custody key of %s: %w", acct, err)
		}
	}
	if ok {
		if pub, err := receipts.SealedPublicKey(sealed); err == nil {
			if err := retireKey(kv, acct, receipts.KeyID(pub)); err != nil {
				return err
			}
		}
	}
	return ProvisionCustody(kv, acct, newPassword)
}

// RegisterKey records a public key the recipient holds (for CODs made
// with `certmail sign` or another tool).
func RegisterKey(kv kv.Records, acct string, pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("public key: want %d bytes of Ed25519, have %d", ed25519.PublicKeySize, len(pub))
	}
	kid := receipts.KeyID(pub)
	if _, ok, err := kv.Get(pubKeyKey(acct, kid)); err != nil {
		return "", err
	} else if ok {
		return kid, nil
	}
	return kid, putKey(kv, acct, pub, receipts.CustodyRecipientHeld)
}

func putKey(kv kv.Records, acct string, pub ed25519.PublicKey, custody receipts.Custody) error {
	rec := KeyRecord{KeyID: receipts.KeyID(pub), Public: pub, Custody: custody, Created: time.Now().UTC()}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return kv.Set(pubKeyKey(acct, rec.KeyID), b)
}

func retireKey(kv kv.Records, acct, kid string) error {
	rec, err := lookupKey(kv, acct, kid)
	if err != nil || !rec.Retired.IsZero() {
		return err
	}
	rec.Retired = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return kv.Set(pubKeyKey(acct, kid), b)
}

func lookupKey(kv kv.Records, acct, kid string) (*KeyRecord, error) {
	b, ok, err := kv.Get(pubKeyKey(acct, kid))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s has no registered key %s", acct, kid)
	}
	var rec KeyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("key %s of %s: %w", kid, acct, err)
	}
	return &rec, nil
}

// Keys lists an account's public keys.
func Keys(kv kv.Records, acct string) ([]KeyRecord, error) {
	return scanKeyRecords(kv, pubKeyPrefix(acct))
}

// scanKeyRecords reads the key records stored under prefix.
func scanKeyRecords(kv kv.Records, prefix []byte) ([]KeyRecord, error) {
	var out []KeyRecord
	err := kv.Scan(prefix, func(k, v []byte) error {
		var rec KeyRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("key record %q: %w", k, err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// unsealCustody opens the account's gateway-held key with the password
// of an authenticated session.
func unsealCustody(kv kv.Records, acct, password string) (ed25519.PrivateKey, error) {
	sealed, ok, err := kv.Get(custodyKey(acct))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s has no gateway-held signing key", acct)
	}
	priv, err := receipts.UnsealKey(sealed, []byte(password))
	if err != nil {
		return nil, fmt.Errorf("opening the signing key of %s: %w", acct, err)
	}
	return priv, nil
}
