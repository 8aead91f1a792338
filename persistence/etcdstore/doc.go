// Package etcdstore keeps octostore's state in etcd (cluster mode).
package etcdstore
