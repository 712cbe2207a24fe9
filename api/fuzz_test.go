package api

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeSubmit feeds the submit decoder arbitrary bodies. It must
// never panic; what it accepts must respect its bounds and read back the
// same when encoded again, so that no two parsers could disagree about
// what was submitted.
func FuzzDecodeSubmit(f *testing.F) {
	f.Add([]byte(`{"message":"Subject: x\r\n\r\nbody\r\n","recipients":["alice"]}`), int64(1000))
	f.Add([]byte(`{"message_base64":"U3ViamVjdDogeA0KDQp4DQo=","recipients":["alice","bob@example.org"],"deadline":"72h","alternates":["carol"],"on_expiry":"deemed-delivery","reveal":"none","sender":"A <a@example.net>"}`), int64(100))
	f.Add([]byte(`{"message":"Subject: x\r\n\r\n","message_base64":"eA==","recipients":["a"]}`), int64(10))
	f.Fuzz(func(t *testing.T, body []byte, max int64) {
		if max <= 0 || max > 1<<20 {
			max = 1 << 20
		}
		s, err := DecodeSubmit(body, max)
		if err != nil {
			if s != nil {
				t.Fatal("a submission with an error")
			}
			return
		}
		if len(s.Raw) == 0 || int64(len(s.Raw)) > max {
			t.Fatalf("accepted a message of %d bytes (max %d)", len(s.Raw), max)
		}
		if len(s.Recipients) == 0 || len(s.Recipients) > maxRecipients {
			t.Fatalf("accepted %d recipients", len(s.Recipients))
		}
		// Encode what was understood and decode it again: the same.
		again, err := json.Marshal(SubmitRequest{MessageBase64: ptr(encodeStd(s.Raw)), Recipients: s.Recipients,
			Sender: s.Sender, Deadline: s.Spec.Deadline, Alternates: s.Spec.Alternates, OnExpiry: s.Spec.OnExpiry, Reveal: s.Spec.Reveal})
		if err != nil {
			t.Fatal(err)
		}
		s2, err := DecodeSubmit(again, max)
		if err != nil {
			t.Fatalf("re-encoded submission refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", s, s2)
		}
	})
}

func ptr(s string) *string { return &s }

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
