package loadtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// NoopHandler is the ceiling octostore is measured against: a fasthttp
// handler that answers every API route with a fixed, well-formed body of
// about the same size as octostore's, without authentication, state or
// storage. Acquires hand out fresh leases whose fencing token is encoded in
// the lease id, so lock scenarios run against it too (it is no lock service:
// the safety checker flags lock-contended runs against it, as it should).
func NoopHandler() fasthttp.RequestHandler {
	var seq atomic.Uint64
	const stamp = `"2030-01-01T00:00:00Z"`
	return func(ctx *fasthttp.RequestCtx) {
		path := ctx.Path()
		method := ctx.Method()
		ctx.SetContentType("application/json")
		var buf [320]byte
		b := buf[:0]
		switch {
		case bytes.Equal(path, []byte("/health")):
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.SetBodyString("OK")
			return
		// Listings: it keeps nothing, so a run's cleanup finds nothing.
		case bytes.Equal(path, []byte("/locks")):
			b = append(b, `{"locks":[],"total":0}`...)
		case bytes.Equal(path, []byte("/limits")):
			b = append(b, `{"limits":[],"total":0}`...)
		case bytes.Equal(path, []byte("/flags")):
			b = append(b, `{"flags":[],"total":0}`...)
		case bytes.Equal(path, []byte("/config")):
			b = append(b, `{"configs":[],"total":0}`...)
		case bytes.HasPrefix(path, []byte("/locks/")):
			name, action := splitAction(path[len("/locks/"):])
			switch string(action) {
			case "acquire", "renew":
				var id LeaseID
				var tok uint64
				if string(action) == "acquire" {
					tok = seq.Add(1)
					binary.BigEndian.PutUint64(id[8:], tok)
				} else {
					id, _ = ParseLeaseID(jsonField(ctx.PostBody(), keyLeaseID))
					tok = binary.BigEndian.Uint64(id[8:])
				}
				var s [36]byte
				encodeLease(s[:], id)
				b = append(b, `{"status":"`...)
				if string(action) == "acquire" {
					b = append(b, "acquired"...)
				} else {
					b = append(b, "held"...)
				}
				b = append(b, `","name":"`...)
				b = append(b, name...)
				b = append(b, `","lease_id":"`...)
				b = append(b, s[:]...)
				b = append(b, `","fencing_token":`...)
				b = strconv.AppendUint(b, tok, 10)
				b = append(b, `,"expires_at":`+stamp+`,"holder":"noop"}`...)
			case "release":
				b = append(b, `{"status":"released","message":"Lock released"}`...)
			default:
				b = append(b, `{"status":"available","name":"`...)
				b = append(b, name...)
				b = append(b, `","message":"Lock not currently held"}`...)
			}
		case bytes.HasPrefix(path, []byte("/limits/")):
			b = append(b, `{"allowed":true,"remaining":99,"reset_at":`+stamp+`}`...)
			ctx.Response.Header.Set("RateLimit-Limit", "100")
			ctx.Response.Header.Set("RateLimit-Remaining", "99")
			ctx.Response.Header.Set("RateLimit-Reset", "1")
		case bytes.HasPrefix(path, []byte("/flags/")):
			b = append(b, `{"name":"`...)
			b = append(b, path[len("/flags/"):]...)
			if string(method) == "PUT" {
				b = append(b, `","enabled":true,"percentage":50,"created_at":`+stamp+`,"updated_at":`+stamp+`}`...)
			} else {
				b = append(b, `","enabled":true,"reason":"SPLIT"}`...)
			}
		case bytes.HasPrefix(path, []byte("/config/")):
			b = append(b, `{"key":"`...)
			b = append(b, path[len("/config/"):]...)
			b = append(b, `","value":{"n":0},"version":1,"created_at":`+stamp+`,"updated_at":`+stamp+`}`...)
		default:
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			b = append(b, `{"error":"not found"}`...)
		}
		ctx.SetBody(b)
	}
}

// splitAction splits "NAME/acquire" into NAME and "acquire" (action empty
// for "NAME").
func splitAction(p []byte) (name, action []byte) {
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, nil
}

// ServeNoop runs the no-op server on addr until ctx ends, printing
// "listening on http://HOST:PORT" to out once it accepts connections.
func ServeNoop(ctx context.Context, addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{
		Handler:               NoopHandler(),
		Name:                  "octostore-noop",
		NoDefaultServerHeader: true,
		NoDefaultDate:         false,
		ReadTimeout:           time.Minute,
		IdleTimeout:           time.Minute,
	}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		_ = srv.Shutdown()
		<-errc
		return nil
	}
}
