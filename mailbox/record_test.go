package mailbox

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func sameMessage(t *testing.T, got, want *Message) {
	t.Helper()
	if got.UID != want.UID || got.ModSeq != want.ModSeq || got.Size != want.Size || got.Blob != want.Blob ||
		len(got.Flags) != len(want.Flags) || len(got.Flags) > 0 && !reflect.DeepEqual(got.Flags, want.Flags) ||
		!got.InternalDate.Equal(want.InternalDate) || got.InternalDate.Format(time.RFC3339) != want.InternalDate.Format(time.RFC3339) ||
		!got.SeenAt.Equal(want.SeenAt) || got.SeenAt.IsZero() != want.SeenAt.IsZero() || got.Saved != want.Saved {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestMessageRecordRoundTrip(t *testing.T) {
	zone := time.FixedZone("", -7*3600-30*60)
	for _, m := range []*Message{
		{UID: 1, ModSeq: 1, Size: 1234, InternalDate: time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC), Blob: 7},
		{UID: 1<<32 - 1, Flags: []string{`\Seen`, "$Label1", "ünïcode"}, Size: 1 << 40,
			InternalDate: time.Date(1999, 12, 31, 23, 59, 59, 0, zone), SeenAt: time.Now().UTC(), Blob: 1<<64 - 1, ModSeq: 1<<63 - 1,
			Saved: time.Now().Unix()},
		{UID: 3, ModSeq: 1, Flags: []string{}, InternalDate: time.Unix(0, 0).UTC()},
	} {
		var got Message
		if err := decodeMessage(encodeMessage(m), &got); err != nil {
			t.Fatal(err)
		}
		sameMessage(t, &got, m)
		// What a JSON record of the same message decodes to is the same.
		js, _ := json.Marshal(m)
		var old Message
		if err := decodeMessage(js, &old); err != nil {
			t.Fatal(err)
		}
		sameMessage(t, &old, &got)
	}
}

// Records written before MODSEQs (version 1, no MODSEQ) read as MODSEQ 1,
// the lowest a client can be told (RFC 7162 3.1.1).
func TestVersion1RecordsReadAsModSeq1(t *testing.T) {
	m := &Message{UID: 7, ModSeq: 300, Flags: []string{`\Seen`}, Size: 10, InternalDate: time.Unix(1e9, 0).UTC(), Blob: 4}
	v2 := encodeV2(m)
	_, n := binary.Uvarint(v2[1:])
	v1 := append([]byte{messageRecordV1}, v2[1+n:]...)
	var got Message
	if err := decodeMessage(v1, &got); err != nil {
		t.Fatal(err)
	}
	want := *m
	want.ModSeq = legacyModSeq
	sameMessage(t, &got, &want)
}

// encodeV2 is a version 2 record of m (no save date), as written before
// SAVEDATE.
func encodeV2(m *Message) []byte {
	v3 := encodeMessage(m)
	_, n := binary.Varint(v3[len(v3)-1:]) // Saved 0 is one byte
	if m.Saved != 0 || n != 1 {
		panic("encodeV2: a record with a save date")
	}
	return append([]byte{messageRecordV2}, v3[1:len(v3)-1]...)
}

// Version 2 records (before save dates) read with Saved 0, so that
// SaveDate answers the internal date (RFC 8514 SAVEDATE for old messages).
func TestVersion2RecordsReadWithoutSaveDate(t *testing.T) {
	m := &Message{UID: 7, ModSeq: 300, Flags: []string{`\Seen`}, Size: 10, InternalDate: time.Unix(1e9, 0).In(time.FixedZone("", 3600)), Blob: 4}
	var got Message
	if err := decodeMessage(encodeV2(m), &got); err != nil {
		t.Fatal(err)
	}
	sameMessage(t, &got, m)
	if !got.SaveDate().Equal(m.InternalDate) || got.SaveDate().Location() != time.UTC {
		t.Errorf("SaveDate of a v2 record = %v, want the internal date %v in UTC", got.SaveDate(), m.InternalDate)
	}
	m.Saved = 2e9
	if err := decodeMessage(encodeMessage(m), &got); err != nil || !got.SaveDate().Equal(time.Unix(2e9, 0)) {
		t.Errorf("SaveDate = %v, %v; want %v", got.SaveDate(), err, time.Unix(2e9, 0))
	}
}

func TestMessageRecordRejectsGarbage(t *testing.T) {
	good := encodeMessage(&Message{UID: 9, Flags: []string{`\Seen`}, Size: 10, InternalDate: time.Now(), Blob: 4})
	for _, b := range [][]byte{nil, {}, {9}, good[:len(good)-1], append(append([]byte{}, good...), 0), {'{'}} {
		var m Message
		if err := decodeMessage(b, &m); err == nil {
			t.Errorf("decodeMessage(%q) accepted", b)
		}
	}
}

// A store written before binary records (JSON message records) reads
// as before, and a changed record is written in the new form.
func TestJSONMessageRecordsStillRead(t *testing.T) {
	s := openTestStore(t)
	if err := s.CreateAccount("old", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	var res *AppendResult
	if err := s.Update(func(tx *Tx) error {
		var err error
		if res, err = tx.Append("old", "INBOX", []byte("Subject: x\r\n\r\nbody\r\n"), AppendOptions{Flags: []string{"$Old"}}); err != nil {
			return err
		}
		m, err := tx.Message("old", res.MailboxID, res.UID)
		if err != nil {
			return err
		}
		return tx.setJSON(messageKey("old", res.MailboxID, res.UID), m) // as the old code did
	}); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages("old", res.MailboxID)
	if err != nil || len(msgs) != 1 || !msgs[0].HasFlag("$Old") {
		t.Fatalf("messages: %+v %v", msgs, err)
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("old", res.MailboxID, []uint32{res.UID}, FlagsAdd, []string{FlagSeen})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		return tx.txn.GetFunc(messageKey("old", res.MailboxID, res.UID), func(b []byte) error {
			if b[0] != messageRecordV3 {
				t.Errorf("record not rewritten in the binary form: %q", b)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Expunge("old", res.MailboxID, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(&Message{UID: 9, Flags: []string{`\Seen`, "$x"}, Size: 10, InternalDate: time.Unix(1e9, 0), Blob: 4}))
	f.Add(encodeMessage(&Message{UID: 9, Size: 10, InternalDate: time.Unix(1e9, 0), Blob: 4, Saved: 2e9}))
	f.Add(encodeV2(&Message{UID: 9, Flags: []string{"$y"}, Size: 10, InternalDate: time.Unix(1e9, 0), Blob: 4}))
	f.Add([]byte(`{"u":1,"f":["\\Seen"],"s":5,"d":"2024-03-01T08:00:00Z","b":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if decodeMessage(b, &m) != nil || b[0] == '{' {
			return
		}
		// What decodes re-encodes to the same bytes.
		if got := encodeMessage(&m); string(got) != string(b) {
			var again Message
			if err := decodeMessage(got, &again); err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
		}
	})
}
