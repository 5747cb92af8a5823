// Package adminpw keeps the internal admin password of a replicaof
// deployment: the password of the proxy's "admin" user, with which another
// replicaof deployment replicates through this one's proxy (chaining).
//
// The password lives in one file, <state_dir>/admin-password (mode 0600,
// the directory 0700). Open generates it at first start (32 random bytes
// from crypto/rand, hex-encoded) and reads it back on every later start; an
// empty or unreadable file is an error, never silently replaced, so a
// deployment keeps the password its replicas know. Rotate replaces it: the
// new file is written to a temporary file, synced and renamed over the old
// one before the new password is used, and then the hooks registered with
// OnRotate run (serve closes the proxy's admin connections there).
//
//	pw, err := adminpw.Open(cfg.StateDir)
//	if err != nil {
//		return err
//	}
//	srv, err := proxy.New(proxy.Config{AdminPassword: pw.Password, …})
//	pw.OnRotate(func() { log.Info("admin connections closed", "n", srv.DropAdmin()) })
package adminpw
