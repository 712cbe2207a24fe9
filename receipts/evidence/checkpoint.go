package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"certmail/kv"
)

// TreeHead is what a checkpoint commits to.
type TreeHead struct {
	Origin string
	Size   uint64
	Root   []byte
}

// maxCheckpointSize bounds the note we are willing to parse; a checkpoint
// is a few lines and a signature or two.
const maxCheckpointSize = 16 << 10

// VerifierKey is the C2SP signed-note verifier key ("<name>+<hash>+<key>")
// for checkpoints that the Ed25519 key pub signs under name.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", fmt.Errorf("note verifier key for %q: %w", name, err)
	}
	if _, err := note.NewVerifier(vkey); err != nil {
		return "", fmt.Errorf("note verifier key for %q: %w", name, err)
	}
	return vkey, nil
}

// newNoteSigner turns the gateway's existing Ed25519 key into a note
// signer. The note package only builds signers from its own encoding,
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>", whose key hash is the
// one in the matching verifier key, so we take it from there.
func newNoteSigner(name string, key ed25519.PrivateKey) (note.Signer, error) {
	vkey, err := VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	hash := strings.Split(vkey, "+")[1]
	seed := append([]byte{1}, key.Seed()...) // 1: the note algorithm id of Ed25519
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(seed)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("note signer for %q: %w", name, err)
	}
	return s, nil
}

// checkpointText is the C2SP tlog-checkpoint body: origin, decimal size,
// base64 root, each on its own line.
func checkpointText(origin string, size uint64, root []byte) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root))
}

// Checkpoint signs a checkpoint of the log as it is now, stores it, and
// returns the signed note. A checkpoint of the current size that is
// already stored is returned as it is, so calling this often costs
// nothing while the log does not grow. It writes, so it belongs in a
// write transaction.
func (l *Log) Checkpoint(kv kv.Records) ([]byte, error) {
	size, root, err := readHead(kv)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if stored, found, err := CheckpointAt(kv, size); err != nil || found {
		return stored, err
	}
	signed, err := note.Sign(&note.Note{Text: checkpointText(l.origin, size, root)}, l.note)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: signing: %w", err)
	}
	if err := kv.Set(checkpointKey(size), signed); err != nil {
		return nil, fmt.Errorf("checkpoint: storing: %w", err)
	}
	if err := kv.Set([]byte(keyLatestCheckpoint), binary.BigEndian.AppendUint64(nil, size)); err != nil {
		return nil, fmt.Errorf("checkpoint: storing: %w", err)
	}
	return signed, nil
}

// CheckpointAt returns the stored checkpoint of the given size, if one was
// published. With ConsistencyProof, any two can be shown consistent.
func CheckpointAt(kv kv.Records, size uint64) ([]byte, bool, error) {
	v, found, err := kv.Get(checkpointKey(size))
	if err != nil {
		return nil, false, fmt.Errorf("reading checkpoint %d: %w", size, err)
	}
	return v, found, nil
}

// LatestCheckpoint returns the newest stored checkpoint.
func LatestCheckpoint(kv kv.Records) ([]byte, bool, error) {
	v, found, err := kv.Get([]byte(keyLatestCheckpoint))
	if err != nil || !found {
		return nil, false, err
	}
	if len(v) != 8 {
		return nil, false, fmt.Errorf("latest checkpoint pointer has %d bytes, want 8", len(v))
	}
	size := binary.BigEndian.Uint64(v)
	cp, found, err := CheckpointAt(kv, size)
	if err == nil && !found {
		err = fmt.Errorf("latest checkpoint %d is missing", size)
	}
	return cp, found, err
}

// ParseCheckpoint verifies a signed checkpoint with the note verifier key
// vkey and returns what it commits to. The origin must be the key's name,
// as C2SP recommends, so a key for one log cannot vouch for another.
// Extension lines after the root are allowed and ignored.
func ParseCheckpoint(signed []byte, vkey string) (TreeHead, error) {
	if len(signed) > maxCheckpointSize {
		return TreeHead{}, fmt.Errorf("checkpoint has %d bytes, more than %d", len(signed), maxCheckpointSize)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return TreeHead{}, fmt.Errorf("checkpoint verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return TreeHead{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	th, err := parseCheckpointText(n.Text)
	if err != nil {
		return TreeHead{}, err
	}
	if th.Origin != v.Name() {
		return TreeHead{}, fmt.Errorf("checkpoint origin %q is not the verifier key's name %q", th.Origin, v.Name())
	}
	return th, nil
}

func parseCheckpointText(text string) (TreeHead, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return TreeHead{}, errors.New("checkpoint: want origin, size and root lines")
	}
	origin, sizeLine, rootLine := lines[0], lines[1], lines[2]
	if origin == "" {
		return TreeHead{}, errors.New("checkpoint: empty origin")
	}
	size, err := strconv.ParseUint(sizeLine, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != sizeLine {
		return TreeHead{}, fmt.Errorf("checkpoint: size %q is not a decimal number", sizeLine)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(rootLine)
	if err != nil {
		return TreeHead{}, fmt.Errorf("checkpoint: root: %w", err)
	}
	if len(root) != hasher.Size() {
		return TreeHead{}, fmt.Errorf("checkpoint: root has %d bytes, want %d", len(root), hasher.Size())
	}
	if base64.StdEncoding.EncodeToString(root) != rootLine {
		return TreeHead{}, fmt.Errorf("checkpoint: root %q is not canonical base64", rootLine)
	}
	return TreeHead{Origin: origin, Size: size, Root: bytes.Clone(root)}, nil
}
