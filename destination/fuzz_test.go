package destination

import "testing"

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
