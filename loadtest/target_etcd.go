package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// The etcd baseline is etcd's own lock recipe, as etcd users write it
// (go.etcd.io/etcd/client/v3/concurrency): each worker holds a Session (a
// lease of the lock TTL, kept alive by the client) and locks with
// concurrency.NewMutex(session, "/lt/lock/NAME").Lock, unlocks with Unlock.
// The fencing token is the lock key's create revision (what etcd's
// documentation recommends). Only lock-cycle: the recipe has no renew (the
// session renews itself) and no status.

// EtcdOptions tune the etcd target.
type EtcdOptions struct {
	Timeout time.Duration // per operation (default 10 s)
	TTL     time.Duration // session lease (default 10 s)
}

type etcdTarget struct {
	addr string
	c    *clientv3.Client
	opt  EtcdOptions
}

// NewEtcdTarget connects to etcd at etcd://HOST:PORT[,HOST:PORT…].
func NewEtcdTarget(etcdURL string, opt EtcdOptions) (Target, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.TTL <= 0 {
		opt.TTL = 10 * time.Second
	}
	var eps []string
	for _, h := range strings.Split(strings.TrimPrefix(etcdURL, "etcd://"), ",") {
		eps = append(eps, "http://"+h)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", etcdURL, err)
	}
	return &etcdTarget{addr: etcdURL, c: c, opt: opt}, nil
}

func (t *etcdTarget) Kind() string                { return "etcd" }
func (t *etcdTarget) Addr() string                { return t.addr }
func (t *etcdTarget) Users() int                  { return 1 }
func (t *etcdTarget) Close() error                { return t.c.Close() }
func (t *etcdTarget) Fencing() bool               { return true }
func (t *etcdTarget) Supports(sc string) bool     { return sc == "lock-cycle" }
func (t *etcdTarget) Conn(user int) (Conn, error) { return &etcdConn{t: t}, nil }

func (t *etcdTarget) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := t.c.Get(ctx, "/lt/ping")
	return err
}

type etcdConn struct {
	t    *etcdTarget
	sess *concurrency.Session
	held map[string]*concurrency.Mutex
}

func (c *etcdConn) session() (*concurrency.Session, error) {
	if c.sess != nil {
		select {
		case <-c.sess.Done():
		default:
			return c.sess, nil
		}
	}
	s, err := concurrency.NewSession(c.t.c, concurrency.WithTTL(int((c.t.opt.TTL+time.Second-1)/time.Second)))
	if err != nil {
		return nil, err
	}
	c.sess, c.held = s, map[string]*concurrency.Mutex{}
	return s, nil
}

func etcdStatus(err error) Status {
	if err == nil {
		return 200
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return StatusTransport
	}
	return 500
}

// Acquire locks name with the worker's session (TryLock: lock-cycle's
// names are the worker's own, a taken lock is a 409 as with octostore).
func (c *etcdConn) Acquire(name string, ttl time.Duration) (LockReply, Status) {
	s, err := c.session()
	if err != nil {
		return LockReply{}, etcdStatus(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.t.opt.Timeout)
	defer cancel()
	m := concurrency.NewMutex(s, "/lt/lock/"+name)
	if err := m.TryLock(ctx); err != nil {
		if errors.Is(err, concurrency.ErrLocked) {
			return LockReply{}, 409
		}
		return LockReply{}, etcdStatus(err)
	}
	c.held[name] = m
	rev := m.Header().Revision
	var lease LeaseID
	h := sha256.Sum256([]byte(m.Key()))
	copy(lease[:], h[:])
	binary.BigEndian.PutUint64(lease[8:], uint64(rev))
	return LockReply{Lease: lease, Token: rev}, 200
}

func (c *etcdConn) Release(name string, lease LeaseID) Status {
	m := c.held[name]
	if m == nil {
		return 404
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.t.opt.Timeout)
	defer cancel()
	if err := m.Unlock(ctx); err != nil {
		return etcdStatus(err)
	}
	delete(c.held, name)
	return 200
}

// The recipe has queues (Mutex.Lock waits in revision order), but the
// comparison runs lock-cycle only: the other operations are not the
// recipe's.
func (c *etcdConn) AcquireQueued(string, string, time.Duration, time.Duration) (LockReply, Status) {
	return LockReply{}, 501
}
func (c *etcdConn) AcquireSemaphore(string, string, int, time.Duration, time.Duration) (LockReply, Status) {
	return LockReply{}, 501
}
func (c *etcdConn) ReleaseSemaphore(string, LeaseID) Status                      { return 501 }
func (c *etcdConn) Renew(string, LeaseID, time.Duration) (LockReply, Status)     { return LockReply{}, 501 }
func (c *etcdConn) LockStatus(string) Status                                     { return 501 }
func (c *etcdConn) CheckLimit(string, int, time.Duration, string) (bool, Status) { return false, 501 }
func (c *etcdConn) EvalFlag(string, string) (bool, Status)                       { return false, 501 }
func (c *etcdConn) SetFlag(string, int) Status                                   { return 501 }
func (c *etcdConn) ReadConfig(string) Status                                     { return 501 }
func (c *etcdConn) WriteConfig(string, int64) Status                             { return 501 }

func (c *etcdConn) Close() {
	if c.sess != nil {
		c.sess.Close()
	}
}
