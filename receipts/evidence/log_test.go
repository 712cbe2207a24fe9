package evidence

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"certmail/receipts"

	"certmail/kv"
)

func TestAppendChainsRecordsPerItem(t *testing.T) {
	_, kv, items := buildLog(t)
	for _, it := range items {
		entries, err := Records(kv, it.label)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(it.events) {
			t.Fatalf("%s: %d records, want %d", it.label, len(entries), len(it.events))
		}
		prev := ""
		for i, e := range entries {
			r, err := e.Record()
			if err != nil {
				t.Fatal(err)
			}
			if r.Seq != uint64(i) || r.Prev != prev || r.Label != it.label || r.Hash != it.hash || r.Type != it.events[i].Type {
				t.Errorf("%s record %d: got seq %d prev %q label %q type %s", it.label, i, r.Seq, r.Prev, r.Label, r.Type)
			}
			if i > 0 && e.Index <= entries[i-1].Index {
				t.Errorf("%s: leaf indexes not increasing: %d after %d", it.label, e.Index, entries[i-1].Index)
			}
			prev = RecordDigest(e.JWS)
		}
	}
}

func TestRecordPayloadIsCanonicalAndUTC(t *testing.T) {
	l := newTestLog(t)
	kv := newKV(t)
	paris := time.FixedZone("CET", 3600)
	ev := NewSubmissionAcceptance("L-tz", [32]byte{1}, receipts.CommitmentUnsalted, "", "bob", time.Date(2025, 3, 8, 10, 0, 0, 0, paris))
	ev.Time = time.Date(2025, 3, 1, 10, 0, 0, 5, paris)
	e, err := l.Append(kv, ev)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := payloadWithoutVerification(e.JWS)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"data":{"deadline":"2025-03-08T09:00:00Z","recipient":"bob"},"gateway":"mx.example.org",` +
		`"hash":"sha256:0100000000000000000000000000000000000000000000000000000000000000","label":"L-tz",` +
		`"prev":"","seq":0,"time":"2025-03-01T09:00:00.000000005Z","type":"SubmissionAcceptance","v":1}`
	if string(payload) != want {
		t.Errorf("payload\n got %s\nwant %s", payload, want)
	}
}

func TestAppendRefusesIncoherentChains(t *testing.T) {
	deadline := time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)
	h := [32]byte{7}
	cod := makeCOD(t, "bob", "cod", "L", h, CustodyRecipientHeld)
	post := NewSubmissionAcceptance("L", h, receipts.CommitmentUnsalted, "", "bob", deadline)
	salted := NewSubmissionAcceptance("L", h, receipts.CommitmentSalted, "", "bob", deadline)
	salt := strings.Repeat("5a", receipts.SaltSize)
	acc := NewConsignmentAcceptance("L", h, cod, "bob", "")
	cases := []struct {
		name   string
		events []Event
		want   string
	}{
		{"no COP first", []Event{NewConsignmentNotification("L", h, "bob")}, "starts with"},
		{"second COP", []Event{post, post}, "starts with"},
		{"other hash", []Event{post, NewConsignmentNotification("L", [32]byte{8}, "bob")}, "hash differs"},
		{"stranger signs", []Event{post, NewConsignmentAcceptance("L", h, cod, "mallory", "")}, `signer "mallory"`},
		{"ROD without COD", []Event{post, NewContentHandover("L", h, cod, "bob", "")}, "names no COD"},
		{"ROD other signer", []Event{post, NewOperatorForward("L", h, "op", "desk", ""),
			NewConsignmentAcceptance("L", h, cod, "bob", ""), NewContentHandover("L", h, cod, "desk", "")}, "but the COD was signed by"},
		{"after release", []Event{post, NewConsignmentAcceptance("L", h, cod, "bob", ""),
			NewContentHandover("L", h, cod, "bob", ""), NewForwarded("L", h, "bob", "desk", "", "")}, "already settled"},
		{"missing field", []Event{NewSubmissionAcceptance("L", h, receipts.CommitmentUnsalted, "", "", deadline)}, "lacks recipient"},
		{"unknown type", []Event{{Type: "Teleported", Label: "L", Hash: h}}, "unknown record type"},
		{"NUL in label", []Event{NewSubmissionAcceptance("L\x00x", h, receipts.CommitmentUnsalted, "", "bob", deadline)}, "NUL"},
		{"bad custody", []Event{post, NewConsignmentAcceptance("L", h, cod, "bob", "somebody")}, "unknown custody"},
		// The salt r of H(L,r,M) goes out with M and only then.
		{"salted ROD without salt", []Event{salted, acc, NewContentHandover("L", h, cod, "bob", "")}, "does not release the salt"},
		{"salt on unsalted item", []Event{post, acc, NewContentHandover("L", h, cod, "bob", salt)}, "H(L,M) is unsalted"},
		{"salt before release", []Event{salted, {Type: ConsignmentNotification, Label: "L", Hash: h,
			Data: EventData{Recipient: "bob", Salt: salt}}}, "released only with the message"},
		{"malformed salt", []Event{salted, acc, NewContentHandover("L", h, cod, "bob", strings.ToUpper(salt))}, "lower case"},
		{"commitment off the COP", []Event{salted, {Type: ConsignmentNotification, Label: "L", Hash: h,
			Data: EventData{Recipient: "bob", Commitment: receipts.CommitmentSalted}}}, "only the SubmissionAcceptance"},
		{"commitment spelled 1", []Event{{Type: SubmissionAcceptance, Label: "L", Hash: h,
			Data: EventData{Recipient: "bob", Deadline: deadline, Commitment: receipts.CommitmentUnsalted}}}, "want 2 or none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t)
			kv := newKV(t)
			var err error
			for _, ev := range tc.events {
				if _, err = l.Append(kv, ev); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestAppendFailureLeavesLogUnchanged: a refused event must not leave a
// half-written leaf behind, even in a KV whose transaction the caller
// would still commit.
func TestAppendFailureLeavesLogUnchanged(t *testing.T) {
	l, kv, _ := buildLog(t)
	size, root, _ := Root(kv)
	if _, err := l.Append(kv, NewConsignmentNotification("L-none", [32]byte{}, "bob")); err == nil {
		t.Fatal("append without COP succeeded")
	}
	size2, root2, _ := Root(kv)
	if size2 != size || !bytes.Equal(root, root2) {
		t.Fatalf("log changed: size %d -> %d", size, size2)
	}
}

// independentRoot builds the root of the first size leaves from the leaf
// bytes alone, without the stored nodes.
func independentRoot(t *testing.T, kv kv.Records, size uint64) []byte {
	t.Helper()
	r := rangeFactory.NewEmptyRange(0)
	for i := range size {
		jws, err := readLeaf(kv, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Append(LeafHash(jws), nil); err != nil {
			t.Fatal(err)
		}
	}
	if size == 0 {
		return hasher.EmptyRoot()
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestInclusionProofs(t *testing.T) {
	_, kv, _ := buildLog(t)
	n, root, err := Root(kv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, independentRoot(t, kv, n)) {
		t.Fatal("stored root differs from the root of the leaves")
	}
	for size := uint64(1); size <= n; size++ {
		root, err := RootAt(kv, size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root, independentRoot(t, kv, size)) {
			t.Fatalf("RootAt(%d) differs from the root of the leaves", size)
		}
		for index := range size {
			p, err := InclusionProof(kv, index, size)
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := readLeaf(kv, index)
			if err := proof.VerifyInclusion(hasher, index, size, LeafHash(jws), p, root); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", index, size, err)
			}
		}
	}
	if _, err := InclusionProof(kv, 0, n+1); err == nil {
		t.Error("proof for a size beyond the log succeeded")
	}
	if _, err := InclusionProof(kv, n, n); err == nil {
		t.Error("proof for an index beyond the size succeeded")
	}
}

func TestConsistencyProofs(t *testing.T) {
	_, kv, _ := buildLog(t)
	n, _ := Size(kv)
	for size2 := uint64(0); size2 <= n; size2++ {
		root2, _ := RootAt(kv, size2)
		for size1 := uint64(0); size1 <= size2; size1++ {
			root1, _ := RootAt(kv, size1)
			p, err := ConsistencyProof(kv, size1, size2)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(hasher, size1, size2, p, root1, root2); err != nil {
				t.Fatalf("consistency %d -> %d: %v", size1, size2, err)
			}
		}
	}
	if _, err := ConsistencyProof(kv, 3, 2); err == nil {
		t.Error("consistency proof from a larger size succeeded")
	}
}

// TestStoredNodesAreCompleteSubtrees: only complete subtrees are kept, one
// per node, so the store grows about 2 nodes per record.
func TestStoredNodesAreCompleteSubtrees(t *testing.T) {
	_, kv, _ := buildLog(t)
	n, _ := Size(kv)
	count := 0
	err := kv.Scan([]byte(prefixNode), func(k, v []byte) error {
		count++
		id := compact.NewNodeID(uint(k[len(prefixNode)]), 0)
		id.Index = beUint64(k[len(prefixNode)+1:])
		if _, end := id.Coverage(); end > n {
			t.Errorf("stored node %v covers leaves beyond %d", id, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count >= int(2*n) {
		t.Errorf("%d nodes stored for %d leaves", count, n)
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// TestLogIsSafeToShare runs appends from one Log into separate stores at
// once, for the race detector: a Log must carry no mutable state.
func TestLogIsSafeToShare(t *testing.T) {
	l := newTestLog(t)
	l.now = time.Now
	done := make(chan error)
	for w := range 4 {
		go func() {
			kv := newKV(t)
			h := sha256.Sum256([]byte{byte(w)})
			_, err := l.Append(kv, NewSubmissionAcceptance("L", h, receipts.CommitmentUnsalted, "", "bob", time.Now()))
			if err == nil {
				_, err = l.Checkpoint(kv)
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestParsePayloadIsExact(t *testing.T) {
	good := `{"data":{"recipient":"bob"},"gateway":"g","hash":"sha256:0100000000000000000000000000000000000000000000000000000000000000",` +
		`"label":"L","prev":"sha256:0100000000000000000000000000000000000000000000000000000000000000","seq":1,` +
		`"time":"2025-03-01T09:00:00Z","type":"ConsignmentNotification","v":1}`
	if _, err := parsePayload([]byte(good)); err != nil {
		t.Fatalf("good payload: %v", err)
	}
	bad := map[string]string{
		"case-folded name": strings.Replace(good, `"label"`, `"Label"`, 1),
		"unknown field":    strings.Replace(good, `"v":1`, `"v":1,"x":1`, 1),
		"unknown data":     strings.Replace(good, `{"recipient"`, `{"magic":"1","recipient"`, 1),
		"not canonical":    strings.Replace(good, `{"data"`, `{ "data"`, 1),
		"duplicate key":    strings.Replace(good, `"v":1`, `"v":1,"v":1`, 1),
		"version":          strings.Replace(good, `"v":1`, `"v":2`, 1),
		"seq 1 no prev":    strings.Replace(good, `"prev":"sha256:0100000000000000000000000000000000000000000000000000000000000000"`, `"prev":""`, 1),
		"missing field":    strings.Replace(good, `"data":{"recipient":"bob"},`, `"data":{},`, 1),
		"bad time":         strings.Replace(good, `2025-03-01T09:00:00Z`, `yesterday`, 1),
	}
	for name, p := range bad {
		if _, err := parsePayload([]byte(p)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAppendRefusesUnwritableTimes(t *testing.T) {
	l := newTestLog(t)
	ev := NewSubmissionAcceptance("L", [32]byte{}, receipts.CommitmentUnsalted, "", "bob", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := l.Append(newKV(t), ev); err == nil {
		t.Error("deadline in year 10000 accepted")
	}
}

func TestCODWhitespaceIsDropped(t *testing.T) {
	cod := makeCOD(t, "bob", "cod", "L", [32]byte{}, CustodyRecipientHeld)
	ev := NewConsignmentAcceptance("L", [32]byte{}, cod+"\r\n", "bob", "")
	if ev.Data.COD != cod || CODHash(cod+"\n") != CODHash(cod) {
		t.Error("whitespace around a COD is kept")
	}
}
