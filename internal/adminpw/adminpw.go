package adminpw

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// FileName is the password file's name inside the state directory.
const FileName = "admin-password"

// MaxLen bounds the password Open accepts from the file, in bytes; the
// generated ones have 64.
const MaxLen = 1024

// randomBytes is how much randomness a generated password carries.
const randomBytes = 32

// tempPattern names the temporary files of atomic writes; Open removes
// leftovers of a crash (older than staleAfter).
const tempPattern = "." + FileName + "-*.tmp"

// Errors of a password file that exists but cannot be used. Open wraps
// them with the file's path.
var (
	ErrEmpty   = errors.New("adminpw: password file is empty")
	ErrCorrupt = errors.New("adminpw: password file is corrupt")
)

// Store holds the admin password of one state directory. Password is safe
// for concurrent use with everything else, Rotate and OnRotate too.
type Store struct {
	path string
	pw   atomic.Pointer[string]

	rotateMu sync.Mutex // one Rotate at a time, hooks included

	hooksMu sync.Mutex
	hooks   []func()
}

// Open returns the store of dir's password file, creating dir (mode 0700)
// and the file (mode 0600, a new random password) when they do not exist.
// An existing file is read back, surrounding whitespace trimmed; when it
// cannot be read, is empty, or holds anything but one word of printable
// ASCII up to MaxLen bytes, Open fails and leaves it as it is. A file
// readable by others than its owner is made 0600.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("adminpw: %w", err)
	}
	s := &Store{path: filepath.Join(dir, FileName)}
	removeTemps(dir)
	pw, err := readFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		pw, err = s.create()
	}
	if err != nil {
		return nil, err
	}
	s.pw.Store(&pw)
	return s, nil
}

// Path is the password file.
func (s *Store) Path() string { return s.path }

// Password returns the current password. The proxy calls it on every
// AUTH admin; it does not allocate or lock.
func (s *Store) Password() string { return *s.pw.Load() }

// OnRotate registers f to run after each Rotate that put a new password
// in use, once Password returns it; hooks run in registration order on
// Rotate's goroutine. f must not call Rotate.
func (s *Store) OnRotate(f func()) {
	s.hooksMu.Lock()
	s.hooks = append(s.hooks, f)
	s.hooksMu.Unlock()
}

// Rotate replaces the password with a new random one and returns it. The
// new password is on disk (renamed over the old file, directory synced)
// before Password returns it; then the OnRotate hooks run, and Rotate
// returns once they have. When the new file cannot be written the old
// password stays, in the file and in memory; when only the directory sync
// fails, the new password is in use (hooks run) and Rotate returns an
// error saying so, without it (Password has it). Concurrent calls run one
// after the other.
func (s *Store) Rotate() (string, error) {
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	pw := generate()
	err := writeFile(s.path, pw, false)
	var unsynced *unsyncedError
	if err != nil && !errors.As(err, &unsynced) {
		return "", err
	}
	// The file holds pw now (even when its directory could not be
	// synced): memory follows it, and so do the connections.
	s.pw.Store(&pw)
	s.hooksMu.Lock()
	hooks := append([]func(){}, s.hooks...)
	s.hooksMu.Unlock()
	for _, f := range hooks {
		f()
	}
	if err != nil {
		return "", err
	}
	return pw, nil
}

// unsyncedError is writeFile's error when the new file is in place but
// its directory could not be synced.
type unsyncedError struct{ err error }

func (e *unsyncedError) Error() string { return e.err.Error() }
func (e *unsyncedError) Unwrap() error { return e.err }

// create writes a first password. Should another process create the file
// meanwhile, its password wins and is read back.
func (s *Store) create() (string, error) {
	pw := generate()
	err := writeFile(s.path, pw, true)
	if errors.Is(err, fs.ErrExist) {
		return readFile(s.path)
	}
	if err != nil {
		return "", err
	}
	return pw, nil
}

// generate returns randomBytes from crypto/rand, hex-encoded.
func generate() string {
	var b [randomBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics if the OS cannot give randomness)
	return hex.EncodeToString(b[:])
}

// readFile reads and checks the password file; an error wraps
// fs.ErrNotExist when there is none.
func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("adminpw: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("adminpw: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("adminpw: %s is not a regular file", path)
	}
	// Surrounding whitespace is allowed (an editor's newline), so read a
	// little more than MaxLen before calling the file too long.
	data, err := io.ReadAll(io.LimitReader(f, 2*MaxLen+1))
	if err != nil {
		return "", fmt.Errorf("adminpw: read %s: %w", path, err)
	}
	pw, err := Parse(data)
	if err != nil {
		return "", fmt.Errorf("%w: %s (fix or delete it; deleting it makes a new password that replicas must be given)", err, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return "", fmt.Errorf("adminpw: %s is readable by others and chmod failed: %w", path, err)
		}
	}
	return pw, nil
}

// Parse checks a password file's contents and returns the password:
// surrounding whitespace trimmed, then 1 to MaxLen bytes of printable
// ASCII other than space. It fails with ErrEmpty or ErrCorrupt.
func Parse(data []byte) (string, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "", ErrEmpty
	}
	if len(data) > MaxLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrCorrupt, MaxLen)
	}
	for i, c := range data {
		if c <= ' ' || c > '~' {
			return "", fmt.Errorf("%w: byte %d is %q (want one word of printable ASCII)", ErrCorrupt, i, c)
		}
	}
	return string(data), nil
}

// writeFile puts pw (and a newline) into path atomically: a temporary file
// in the same directory, fsync, rename (or, with exclusive, a hard link
// that fails with fs.ErrExist when path exists), fsync of the directory.
func writeFile(path, pw string, exclusive bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern) // mode 0600
	if err != nil {
		return fmt.Errorf("adminpw: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	_, err = f.WriteString(pw + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("adminpw: write %s: %w", tmp, err)
	}
	if exclusive {
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, fs.ErrPermission) {
			// A file system without hard links: rename instead,
			// which still never leaves a partial file.
			err = os.Rename(tmp, path)
		}
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("adminpw: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return &unsyncedError{fmt.Errorf("adminpw: the new password is in %s, but syncing %s failed (a crash may bring the old one back): %w", path, dir, err)}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// staleAfter is how old a temporary file must be for removeTemps: a
// younger one may be another Open's or Rotate's, still being written.
const staleAfter = time.Minute

// removeTemps deletes temporary files a crash left behind; failures are
// harmless (the files are 0600 in a 0700 directory).
func removeTemps(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, tempPattern))
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && time.Since(fi.ModTime()) > staleAfter {
			os.Remove(n)
		}
	}
}
