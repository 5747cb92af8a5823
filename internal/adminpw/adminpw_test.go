package adminpw

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw := s.Password()
	if b, err := hex.DecodeString(pw); err != nil || len(b) != randomBytes {
		t.Fatalf("password %q: want %d hex-encoded bytes", pw, randomBytes)
	}
	fi, err := os.Stat(s.Path())
	if err != nil || fi.Mode().Perm() != 0o600 || s.Path() != filepath.Join(dir, FileName) {
		t.Fatalf("file %s: %v %v", s.Path(), fi.Mode(), err)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", di.Mode(), err)
	}
	if data, _ := os.ReadFile(s.Path()); string(data) != pw+"\n" {
		t.Fatalf("file holds %q", data)
	}
	if temps, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(temps) != 0 {
		t.Fatalf("temporary files left: %v", temps)
	}

	again, err := Open(dir)
	if err != nil || again.Password() != pw {
		t.Fatalf("reopen: %q, %v; want %q", again.Password(), err, pw)
	}
	other, err := Open(t.TempDir())
	if err != nil || other.Password() == pw {
		t.Fatalf("another directory: %q, %v", other.Password(), err)
	}
}

func TestOpenReadsBack(t *testing.T) {
	for name, c := range map[string]struct{ data, want string }{
		"trailing newline": {"s3cret-pw\n", "s3cret-pw"},
		"crlf and spaces":  {"  s3cret-pw \r\n\n", "s3cret-pw"},
		"symbols":          {"p@ss:w/o#rd%", "p@ss:w/o#rd%"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir)
			if err != nil || s.Password() != c.want {
				t.Fatalf("Open = %q, %v; want %q", s.Password(), err, c.want)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v not tightened to 0600", fi.Mode())
			}
			if data, _ := os.ReadFile(path); string(data) != c.data {
				t.Fatalf("Open rewrote the file: %q", data)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		data string
		want error
	}{
		"empty":       {"", ErrEmpty},
		"whitespace":  {" \n\t\r\n", ErrEmpty},
		"binary":      {"ab\x00cd", ErrCorrupt},
		"two words":   {"abc def\n", ErrCorrupt},
		"two lines":   {"abc\ndef\n", ErrCorrupt},
		"non-ascii":   {"pässword", ErrCorrupt},
		"too long":    {strings.Repeat("a", MaxLen+1), ErrCorrupt},
		"much longer": {strings.Repeat("a", 10*MaxLen), ErrCorrupt},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(c.data), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, %v; want %v naming %s", s, err, c.want, path)
			}
			if data, _ := os.ReadFile(path); string(data) != c.data {
				t.Fatalf("Open replaced the file: %q", data)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		dir := t.TempDir()
		// A directory in the file's place cannot be read as a file, even
		// by root (permission bits would not stop root).
		if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(dir); err == nil || !strings.Contains(err.Error(), FileName) {
			t.Fatalf("Open = %v, %v", s, err)
		}
	})
	t.Run("dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(f); err == nil {
			t.Fatalf("Open = %v", s)
		}
	})
}

func TestOpenRemovesTemps(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "."+FileName+"-123.tmp")
	fresh := filepath.Join(dir, "."+FileName+"-456.tmp") // another writer's, maybe
	for _, f := range []string{stale, fresh} {
		if err := os.WriteFile(f, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temporary file removed: %v", err)
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := s.Password()
	var calls []string
	s.OnRotate(func() { calls = append(calls, "a:"+s.Password()) })
	s.OnRotate(func() { calls = append(calls, "b:"+s.Password()) })
	pw, err := s.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if pw == old || s.Password() != pw {
		t.Fatalf("Rotate = %q, Password = %q, old %q", pw, s.Password(), old)
	}
	if got := strings.Join(calls, ","); got != "a:"+pw+",b:"+pw {
		t.Fatalf("hooks saw %s", got)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rotated file: %v %v", fi, err)
	}
	if temps, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(temps) != 0 {
		t.Fatalf("temporary files left: %v", temps)
	}
	again, err := Open(dir)
	if err != nil || again.Password() != pw {
		t.Fatalf("reopen after Rotate: %q, %v; want %q", again.Password(), err, pw)
	}
}

// A Rotate that cannot write keeps the old password and runs no hook.
func TestRotateFails(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := s.Password()
	hooked := false
	s.OnRotate(func() { hooked = true })
	// Removing the directory makes the temporary file impossible to
	// create, for root too.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if pw, err := s.Rotate(); err == nil {
		t.Fatalf("Rotate = %q without a directory", pw)
	}
	if s.Password() != old || hooked {
		t.Fatalf("after a failed Rotate: password changed %v, hook ran %v", s.Password() != old, hooked)
	}
}

// Password runs concurrently with Rotate (go test -race), and every value
// it returns is one of the rotations'.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hooks atomic.Int64
	s.OnRotate(func() { hooks.Add(1) })
	var mu sync.Mutex
	seen := map[string]bool{s.Password(): true}
	const rotators, rotations, readers = 4, 10, 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readerWG sync.WaitGroup
	got := make(chan string, 1024)
	for range readers {
		readerWG.Go(func() {
			last := ""
			for {
				select {
				case <-stop:
					return
				default:
				}
				if pw := s.Password(); pw != last {
					last = pw
					select {
					case got <- pw:
					default:
					}
				}
			}
		})
	}
	for range rotators {
		wg.Go(func() {
			for range rotations {
				pw, err := s.Rotate()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[pw] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	readerWG.Wait()
	close(got)
	for pw := range got {
		if !seen[pw] {
			t.Fatalf("Password returned %q, never generated", pw)
		}
	}
	if len(seen) != rotators*rotations+1 || hooks.Load() != rotators*rotations {
		t.Fatalf("%d distinct passwords, %d hook runs", len(seen), hooks.Load())
	}
	again, err := Open(dir)
	if err != nil || again.Password() != s.Password() {
		t.Fatalf("file %q, memory %q, %v", again.Password(), s.Password(), err)
	}
}

// Two stores opening one empty directory at once end with one password.
func TestCreateRace(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	pws := make([]string, 4)
	for i := range pws {
		wg.Go(func() {
			s, err := Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			pws[i] = s.Password()
		})
	}
	wg.Wait()
	for _, pw := range pws[1:] {
		if pw != pws[0] {
			t.Fatalf("different passwords: %q", pws)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in, want string
		err      error
	}{
		{"abc", "abc", nil},
		{"\tabc \n", "abc", nil},
		{"", "", ErrEmpty},
		{"\n", "", ErrEmpty},
		{"a b", "", ErrCorrupt},
		{"a\x7f", "", ErrCorrupt},
		{strings.Repeat("x", MaxLen), strings.Repeat("x", MaxLen), nil},
	} {
		got, err := Parse([]byte(c.in))
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "\n", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
		" pw \r\n", "a b", "ab\x00", "p@ss%20", "ä", strings.Repeat("z", MaxLen+1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pw, err := Parse(data)
		if err != nil {
			if pw != "" || !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Parse(%q) = %q, %v", data, pw, err)
			}
			return
		}
		if pw == "" || len(pw) > MaxLen || strings.ContainsAny(pw, " \t\r\n") {
			t.Fatalf("Parse(%q) = %q", data, pw)
		}
		// What writeFile stores reads back the same.
		if again, err := Parse([]byte(pw + "\n")); err != nil || again != pw {
			t.Fatalf("round trip of %q: %q, %v", pw, again, err)
		}
	})
}
