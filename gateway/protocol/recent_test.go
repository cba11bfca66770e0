package protocol

import "testing"

// TestRecent: a handled id is known with its reply once answered; at
// most recentIDs are kept, the oldest forgotten first.
func TestRecent(t *testing.T) {
	var r recent
	if known, _ := r.check(1); known {
		t.Fatal("check(1) on a fresh memory = known")
	}
	if known, reply := r.check(1); !known || reply != nil {
		t.Errorf("check(1) before its answer = %v, %v; want known, no reply", known, reply)
	}
	ack := &Message{Type: TypeAck, Re: 1}
	r.answer(1, ack)
	if known, reply := r.check(1); !known || reply != ack {
		t.Errorf("check(1) after its answer = %v, %v; want known, the ack", known, reply)
	}
	for id := uint64(2); id <= recentIDs+1; id++ {
		r.check(id)
	}
	if len(r.entries) > recentIDs {
		t.Errorf("%d ids remembered, want at most %d", len(r.entries), recentIDs)
	}
	if known, _ := r.check(1); known {
		t.Error("id 1 still remembered after recentIDs newer ones")
	}
	if known, _ := r.check(recentIDs + 1); !known {
		t.Error("the newest id was forgotten")
	}
}
