package certified

import (
	"fmt"
	"strings"

	"certmail/mailbox"
	"certmail/receipts/evidence"
)

// LogOrigin is the evidence log's checkpoint origin for gateway name P
// (a C2SP origin, also the checkpoints' note key name).
func LogOrigin(gateway string) string { return gateway + logOriginSuffix }

const logOriginSuffix = "/certmail/evidence"

// LogIdentity returns the gateway name the store's evidence log is kept
// under: records and checkpoints are signed under it, so it is fixed when
// the log is created and stored with it, whatever hostname is configured
// later. A store that has none stored takes the name its newest
// checkpoint was published under (a store made before the name was
// stored), or else configured. With claim (serve), a log under which
// nothing was signed yet takes configured: a store made by `certmail user
// add` under the machine's name gets the name serve is configured with.
func LogIdentity(store *mailbox.Store, configured string, claim bool) (string, error) {
	var name string
	err := store.Update(func(tx *mailbox.Tx) error {
		stored, found, err := evidence.StoredIdentity(tx)
		if err != nil {
			return err
		}
		if found {
			name = stored
			if name == configured || !claim {
				return nil
			}
			signed, err := evidence.Signed(tx)
			if err != nil || signed {
				return err
			}
			name = configured
			return evidence.SetIdentity(tx, name)
		}
		origin, found, err := evidence.LatestOrigin(tx)
		if err != nil {
			return err
		}
		name = configured
		if found {
			var ok bool
			if name, ok = strings.CutSuffix(origin, logOriginSuffix); !ok || name == "" {
				return fmt.Errorf("the evidence log's latest checkpoint has origin %q, not NAME%s", origin, logOriginSuffix)
			}
		}
		return evidence.SetIdentity(tx, name)
	})
	if err != nil {
		return "", fmt.Errorf("evidence log identity: %w", err)
	}
	return name, nil
}
