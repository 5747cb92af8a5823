package destination

import (
	"net"
	"strconv"
	"testing"
)

// FuzzParseInfo feeds INFO text to the version parser.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n",
		"redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n",
		"redis_version:7.4.1\r\n", "redis_version:8.0.0\r\n", "redis_version:5.0.14\r\n",
		"redis_version:\r\n", "redis_version:x.y\r\n", ":\n:",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		si := parseInfo(text)
		switch si.MaxRDB {
		case 0, 9, 10, 11, 12:
		default:
			t.Fatalf("MaxRDB %d for %q", si.MaxRDB, text)
		}
	})
}

// FuzzParseRedirect feeds error replies to the redirect parser: what it
// accepts has a valid slot and an address it formats back the same way.
func FuzzParseRedirect(f *testing.F) {
	for _, s := range []string{
		"-MOVED 3999 127.0.0.1:6381\r\n", "-ASK 3999 127.0.0.1:6381\r\n", "-MOVED 0 :7000\r\n",
		"-MOVED 16383 ::1:7000\r\n", "-MOVED 16384 h:1\r\n", "-MOVED 12 h\r\n", "-MOVED x h:1\r\n",
		"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", "-CLUSTERDOWN The cluster is down\r\n",
		"+MOVED 1 h:1\r\n", "-MOVED  h:1\r\n", "-ASK 1 h:65536\r\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		r, ok := ParseRedirect(reply)
		_, _ = IsTryAgain(reply), IsClusterDown(reply)
		if !ok {
			return
		}
		if int(r.Slot) >= 16384 || r.Addr == "" {
			t.Fatalf("%q: %+v", reply, r)
		}
		host, port, err := net.SplitHostPort(r.Addr)
		if err != nil {
			t.Fatalf("%q: address %q: %v", reply, r.Addr, err)
		}
		kind := "MOVED"
		if r.Ask {
			kind = "ASK"
		}
		again, ok := ParseRedirect([]byte("-" + kind + " " + strconv.Itoa(int(r.Slot)) + " " + host + ":" + port + "\r\n"))
		if !ok || again != r {
			t.Fatalf("%q: %+v formats back as %+v", reply, r, again)
		}
	})
}
