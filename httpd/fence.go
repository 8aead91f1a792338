package httpd

import (
	"context"
	"strconv"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Fence checks: GET /locks/{name}/fence?token=N and
// GET /semaphores/{name}/fence?token=N, for the storage a holder writes to
// (Chubby's sequencer check). Any authenticated caller may ask: it is the
// storage that does, not the holder. 200 {"valid":true,"fencing_token",
// "holder"} while N is the token of a current, unexpired grant; otherwise a
// *actors.StaleTokenError, answered 409 with the last token granted
// (errors.go).

var errFenceToken = invalid("token must be a fencing token: an integer from 0 to 18446744073709551615")

// fenceToken reads ?token= (digits only: no sign, no spaces).
func fenceToken(ctx *fasthttp.RequestCtx) (uint64, error) {
	q := ctx.QueryArgs()
	raw := q.Peek("token")
	if len(raw) == 0 || len(q.PeekMulti("token")) != 1 {
		return 0, errFenceToken
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, errFenceToken
		}
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, errFenceToken
	}
	return v, nil
}

func (s *Server) lockFence(ctx *fasthttp.RequestCtx, rq *request, _ *Principal) error {
	return s.fence(ctx, rq, s.locks.Fence)
}

func (s *Server) semaphoreFence(ctx *fasthttp.RequestCtx, rq *request, _ *Principal) error {
	return s.fence(ctx, rq, s.sems.Fence)
}

// fence answers a fence check of the {name} in the path with the token in
// ?token= (fenceToken), asked of check: a lock's or a semaphore's.
func (s *Server) fence(ctx *fasthttp.RequestCtx, rq *request,
	check func(ctx context.Context, name string, token uint64) (actors.FenceResult, error)) error {
	name, err := lockName(ctx)
	if err != nil {
		return err
	}
	token, err := fenceToken(ctx)
	if err != nil {
		return err
	}
	res, err := check(rq.ctx(), name, token)
	if err != nil {
		return err
	}
	return writeOK(ctx, appendFenceValid(res, s.auth.Login(res.Holder)))
}

// appendFenceValid renders a valid check; holder is the login of r.Holder.
func appendFenceValid(r actors.FenceResult, holder string) []byte {
	b := append(make([]byte, 0, 96), `{"valid":true,"fencing_token":`...)
	b = strconv.AppendUint(b, r.Token, 10)
	b = append(b, `,"holder":`...)
	b = appendString(b, holder)
	return append(b, '}')
}
