package client

import (
	"context"
	"errors"
	"net"
	"testing"
)

// A refused connection is a transport error, not context.Canceled.
func TestEventsConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := New("http://"+addr, "tok")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Events(context.Background(), EventFilter{})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("err = %T %v, want *TransportError", err, err)
	}
}
