package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client/clienttest"
)

func collect(t *testing.T, stream string) ([]Event, error) {
	t.Helper()
	var evs []Event
	err := readEvents(strings.NewReader(stream), func(ev Event) bool { evs = append(evs, ev); return true })
	return evs, err
}

func TestReadEvents(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		want    []Event // compared on ID, Seq, Type, Name, Holder, FencingToken and Data
		wantErr error
	}{
		{
			name:    "one event",
			stream:  "id: 1\nevent: lock.acquired\ndata: {\"seq\":1,\"type\":\"lock.acquired\",\"kind\":\"lock\",\"name\":\"db\",\"holder\":\"alice\",\"fencing_token\":3}\n\n",
			want:    []Event{{ID: "1", Seq: 1, Type: "lock.acquired", Kind: "lock", Name: "db", Holder: "alice", FencingToken: 3}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "heartbeats and comments are skipped",
			stream:  ": ping\n\n: ping\n\nid: 2\nevent: flag.set\ndata: {\"seq\":2,\"type\":\"flag.set\",\"kind\":\"flag\",\"name\":\"f\"}\n\n: ping\n\n",
			want:    []Event{{ID: "2", Seq: 2, Type: "flag.set", Kind: "flag", Name: "f"}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "multi-line data joined with newline",
			stream:  "event: note\ndata: {\"seq\":5,\ndata: \"name\":\"x\"}\n\n",
			want:    []Event{{Seq: 5, Type: "note", Name: "x"}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "CRLF and CR line endings, no space after colon",
			stream:  "id:7\r\nevent:lock.released\r\ndata:{\"seq\":7,\"name\":\"a\"}\r\n\r\nid:8\revent:lock.expired\rdata:{\"seq\":8,\"name\":\"b\"}\r\r",
			want:    []Event{{ID: "7", Seq: 7, Type: "lock.released", Name: "a"}, {ID: "8", Seq: 8, Type: "lock.expired", Name: "b"}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "id persists, JSON type wins over event line",
			stream:  "id: 9\nevent: x\ndata: {\"type\":\"config.written\",\"version\":4}\n\ndata: {\"type\":\"config.deleted\"}\n\n",
			want:    []Event{{ID: "9", Type: "config.written", Version: 4}, {ID: "9", Type: "config.deleted"}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "non-JSON data kept raw",
			stream:  "data: hello\n\n",
			want:    []Event{{Type: "message", Data: json.RawMessage("hello")}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "incomplete trailing event is dropped",
			stream:  "data: {\"seq\":1}\n\ndata: {\"seq\":2}",
			want:    []Event{{Seq: 1, Type: "message"}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "lagged ends the stream",
			stream:  "id: 1\nevent: lagged\ndata: {\"type\":\"lagged\"}\n\nid: 2\ndata: {\"seq\":2}\n\n",
			want:    []Event{{ID: "1", Type: "lagged"}},
			wantErr: ErrLagged,
		},
		{
			name:    "revoked ends the stream, keeping the last id",
			stream:  "id: e-4\nevent: flag.set\ndata: {\"seq\":4,\"type\":\"flag.set\"}\n\nevent: revoked\ndata: {\"seq\":4,\"type\":\"revoked\"}\n\nid: e-5\ndata: {\"seq\":5}\n\n",
			want:    []Event{{ID: "e-4", Seq: 4, Type: "flag.set"}, {ID: "e-4", Seq: 4, Type: "revoked"}},
			wantErr: ErrRevoked,
		},
		{
			name:    "event without data is not dispatched",
			stream:  "event: lock.acquired\n\ndata: {\"seq\":3}\n\n",
			want:    []Event{{Seq: 3, Type: "message"}},
			wantErr: io.ErrUnexpectedEOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, tt.stream)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if w.Data == nil {
					w.Data = g.Data
				}
				g.Time, w.Time = time.Time{}, time.Time{}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("event %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestReadEventsBadJSON(t *testing.T) {
	_, err := collect(t, "data: {\"seq\":\"nope\"}\n\n")
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want a decode error", err)
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add("id: 1\nevent: lock.acquired\ndata: {\"seq\":1}\n\n: ping\n\n")
	f.Add("data: a\r\ndata: b\r\r\n\n")
	f.Add("event: lagged\ndata: {\"type\":\"lagged\"}\n\n")
	f.Add("event: revoked\ndata: {\"type\":\"revoked\"}\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		n := 0
		readEvents(strings.NewReader(s), func(Event) bool { n++; return n < 1000 })
	})
}

func TestEventsAndWatchLockAgainstFake(t *testing.T) {
	srv := clienttest.New(map[string]string{"tokA": "alice", "tokB": "bob"})
	defer srv.Close()
	alice := newTestClient(t, srv.URL, checked(t)...)
	bob, _ := New(srv.URL, "tokB", checked(t)...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	all, err := alice.Events(ctx, EventFilter{Kind: "lock", Prefix: "job-"})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	if _, err := bob.Acquire(ctx, "job-1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	watch, err := alice.WatchLock(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	ev := <-watch.C
	if ev.Type != EventLockState || ev.Holder != "bob" || ev.FencingToken != 1 {
		t.Fatalf("first watch event = %+v", ev)
	}
	ev = <-all.C
	if ev.Type != EventLockAcquired || ev.Name != "job-1" || ev.Holder != "bob" || ev.LeaseID != "" {
		t.Fatalf("event = %+v (lease id must not leak to non-holders)", ev)
	}
	if _, err := alice.Acquire(ctx, "other", 5*time.Second); err != nil { // filtered out by prefix
		t.Fatal(err)
	}
	srv.ExpireLock("job-1")
	if ev = <-watch.C; ev.Type != EventLockExpired {
		t.Fatalf("watch event = %+v", ev)
	}
	if ev = <-all.C; ev.Type != EventLockExpired || ev.Name != "job-1" {
		t.Fatalf("event = %+v", ev)
	}
	watch.Close()
	if _, ok := <-watch.C; ok {
		t.Fatal("C still open after Close")
	}
	if watch.Err() != nil {
		t.Fatalf("Err after Close = %v", watch.Err())
	}

	// The stream refuses bad credentials with the typed error.
	stranger, _ := New(srv.URL, "nope", checked(t)...)
	if _, err := stranger.Events(ctx, EventFilter{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
}

func TestEventStreamEndsWhenServerCloses(t *testing.T) {
	srv := clienttest.New(map[string]string{"tokA": "alice"})
	c := newTestClient(t, srv.URL)
	s, err := c.Events(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	for range s.C {
	}
	if !errors.Is(s.Err(), io.ErrUnexpectedEOF) {
		t.Fatalf("Err = %v", s.Err())
	}
}
