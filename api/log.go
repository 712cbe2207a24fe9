package api

import (
	"net/http"
	"strconv"

	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"

	"certmail/kv"
)

// The public side of the evidence log. Nothing here needs a token: a
// checkpoint, a proof or a leaf hash says nothing about any item, and
// verifiers (a court, an auditor, the other party) must be able to fetch
// them without an account.

// InclusionResponse proves that leaf Index is in the tree of Size leaves.
type InclusionResponse struct {
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leaf_hash"` // RFC 6962, base64
	Proof    [][]byte `json:"proof"`     // RFC 6962 audit path, base64
	// Checkpoint is the signed checkpoint of Size, when one was published.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// ConsistencyResponse proves that the tree of First leaves is a prefix of
// the tree of Second leaves.
type ConsistencyResponse struct {
	First      uint64   `json:"first"`
	Second     uint64   `json:"second"`
	Proof      [][]byte `json:"proof"`
	Checkpoint string   `json:"checkpoint,omitempty"` // of Second, if published
}

// LeavesResponse lists leaf hashes [Start, End).
type LeavesResponse struct {
	Start      uint64   `json:"start"`
	End        uint64   `json:"end"`
	LeafHashes [][]byte `json:"leaf_hashes"`
}

// KeysResponse are the gateway's public keys.
type KeysResponse struct {
	Gateway         string       `json:"gateway"`    // P, as records name it
	LogOrigin       string       `json:"log_origin"` // the checkpoints' origin line
	NoteVerifierKey string       `json:"note_verifier_key"`
	Keys            []GatewayKey `json:"keys"`
}

// GatewayKey is one record-signing key, as a JWK (its kid is the RFC 7638
// thumbprint records name) and as PEM for `certmail verify --gateway-key`.
type GatewayKey struct {
	Kid string       `json:"kid"`
	JWK evidence.JWK `json:"jwk"`
	PEM string       `json:"pem"`
}

// getCheckpoint serves the newest checkpoint, signing one first if the
// log grew since (a checkpoint "on demand"), or with ?size=N the stored
// checkpoint of that size. It is a C2SP signed note, served as text as
// transparency logs serve them.
func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) error {
	var cp []byte
	if q := r.URL.Query().Get("size"); q != "" {
		size, err := parseUint("size", q)
		if err != nil {
			return err
		}
		var found bool
		if err := s.view(func(kv kv.Records) error {
			var err error
			cp, found, err = evidence.CheckpointAt(kv, size)
			return err
		}); err != nil {
			return err
		}
		if !found {
			return errorf(http.StatusNotFound, "no checkpoint of size %d was published", size)
		}
	} else {
		var err error
		if cp, _, err = s.log.Publish(s.db); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp)
	return nil
}

// getInclusion serves ?index=&size=; without size, the proof is into the
// newest checkpoint, which comes with it.
func (s *Server) getInclusion(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("index") == "" {
		return errorf(http.StatusBadRequest, "index is required")
	}
	index, err := parseUint("index", q.Get("index"))
	if err != nil {
		return err
	}
	size, cp, err := s.sizeParam(q.Get("size"))
	if err != nil {
		return err
	}
	if index >= size {
		return errorf(http.StatusBadRequest, "index %d is not below size %d", index, size)
	}
	resp := InclusionResponse{Index: index, Size: size, Checkpoint: string(cp)}
	err = s.view(func(kv kv.Records) error {
		if err := s.checkSize(kv, size); err != nil {
			return err
		}
		leaves, err := evidence.LeafHashes(kv, index, index+1)
		if err != nil {
			return err
		}
		resp.LeafHash = leaves[0]
		if resp.Proof, err = evidence.InclusionProof(kv, index, size); err != nil {
			return err
		}
		if resp.Checkpoint == "" {
			stored, _, err := evidence.CheckpointAt(kv, size)
			resp.Checkpoint = string(stored)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if resp.Proof == nil {
		resp.Proof = [][]byte{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// getConsistency serves ?first=&second=; without second, the proof is up
// to the newest checkpoint.
func (s *Server) getConsistency(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("first") == "" {
		return errorf(http.StatusBadRequest, "first is required")
	}
	first, err := parseUint("first", q.Get("first"))
	if err != nil {
		return err
	}
	second, cp, err := s.sizeParam(q.Get("second"))
	if err != nil {
		return err
	}
	if first > second {
		return errorf(http.StatusBadRequest, "first %d is after second %d", first, second)
	}
	resp := ConsistencyResponse{First: first, Second: second, Checkpoint: string(cp)}
	err = s.view(func(kv kv.Records) error {
		if err := s.checkSize(kv, second); err != nil {
			return err
		}
		var err error
		if resp.Proof, err = evidence.ConsistencyProof(kv, first, second); err != nil {
			return err
		}
		if resp.Checkpoint == "" {
			stored, _, err := evidence.CheckpointAt(kv, second)
			resp.Checkpoint = string(stored)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if resp.Proof == nil {
		resp.Proof = [][]byte{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// getLeaves serves ?start=&end= (end exclusive; default: as many as one
// request may have, up to the log's size).
func (s *Server) getLeaves(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var start uint64
	if v := q.Get("start"); v != "" {
		var err error
		if start, err = parseUint("start", v); err != nil {
			return err
		}
	}
	resp := LeavesResponse{Start: start}
	err := s.view(func(kv kv.Records) error {
		size, err := evidence.Size(kv)
		if err != nil {
			return err
		}
		end := min(size, start+evidence.MaxLeafHashes)
		if v := q.Get("end"); v != "" {
			if end, err = parseUint("end", v); err != nil {
				return err
			}
		}
		switch {
		case start > end:
			return errorf(http.StatusBadRequest, "start %d is after end %d", start, end)
		case end > size:
			return errorf(http.StatusBadRequest, "end %d is beyond the log's size %d", end, size)
		case end-start > evidence.MaxLeafHashes:
			return errorf(http.StatusBadRequest, "at most %d leaves per request", evidence.MaxLeafHashes)
		}
		resp.End = end
		resp.LeafHashes, err = evidence.LeafHashes(kv, start, end)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) getKeys(w http.ResponseWriter, r *http.Request) error {
	signer := s.log.Signer()
	pub := signer.Public()
	jwk, err := evidence.NewJWK(pub)
	if err != nil {
		return err
	}
	pem, err := receipts.MarshalPublicKeyPEM(pub)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, KeysResponse{
		Gateway:         signer.Gateway(),
		LogOrigin:       s.log.Origin(),
		NoteVerifierKey: s.log.VerifierKey(),
		Keys:            []GatewayKey{{Kid: jwk.Kid, JWK: jwk, PEM: string(pem)}},
	})
	return nil
}

// sizeParam parses a tree size parameter; empty means the newest
// checkpoint's, which is returned with it.
func (s *Server) sizeParam(v string) (uint64, []byte, error) {
	if v != "" {
		size, err := parseUint("size", v)
		return size, nil, err
	}
	cp, head, err := s.log.Publish(s.db)
	if err != nil {
		return 0, nil, err
	}
	return head.Size, cp, nil
}

// checkSize refuses, as the client's error, a tree size the log has not
// reached.
func (s *Server) checkSize(kv kv.Records, size uint64) error {
	current, err := evidence.Size(kv)
	if err != nil {
		return err
	}
	if size > current {
		return errorf(http.StatusBadRequest, "size %d is beyond the log's size %d", size, current)
	}
	return nil
}

func (s *Server) view(fn func(kv kv.Records) error) error {
	return s.store.View(func(tx *mailbox.Tx) error { return fn(tx) })
}

func parseUint(name, v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "%s %q is not a non-negative integer", name, v)
	}
	return n, nil
}
