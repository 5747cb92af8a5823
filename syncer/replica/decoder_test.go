package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/resp"
)

// wireDir holds the raw replication transcripts (testdata/wire/README.md).
const wireDir = "../../testdata/wire"

type wireCommand struct {
	At          int      `json:"at"`
	Len         int      `json:"len"`
	OffsetAfter int64    `json:"offset_after"`
	Argv        []string `json:"argv"`
}

type transcript struct {
	Name             string
	Bin              []byte
	PsyncReply       string            `json:"psync_reply"`
	ReplID           string            `json:"replid"`
	FullOffset       int64             `json:"fullresync_offset"`
	ContinueFrom     *int64            `json:"continue_from"`
	Framing          string            `json:"rdb_framing"`
	RDBStart         int               `json:"rdb_start"`
	RDBEnd           int               `json:"rdb_end"`
	RDBLen           int64             `json:"rdb_len"`
	StreamStart      int               `json:"stream_start"`
	Commands         []wireCommand     `json:"commands"`
	FinalOffset      int64             `json:"final_offset"`
	OffsetMatches    bool              `json:"offset_matches_master"`
	MasterInfo       map[string]string `json:"master_info_before_close"`
	ContinueReplID   string
	ResumePosition   Position
	ExpectedCommands []wireCommand // without PING and REPLCONF
}

func loadTranscripts(t testing.TB) []*transcript {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(wireDir, "*.bin"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no wire transcripts in %s (err %v)", wireDir, err)
	}
	var out []*transcript
	for _, p := range paths {
		js, err := os.ReadFile(strings.TrimSuffix(p, ".bin") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		tr := &transcript{Name: filepath.Base(p)}
		if err := json.Unmarshal(js, tr); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if tr.Bin, err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
		if tr.ContinueFrom != nil {
			f := strings.Fields(tr.PsyncReply)
			tr.ContinueReplID = f[1]
			tr.ResumePosition = Position{ReplID: tr.ContinueReplID, Offset: *tr.ContinueFrom}
		}
		for _, c := range tr.Commands {
			if n := strings.ToLower(c.Argv[0]); n != "ping" && n != "replconf" {
				tr.ExpectedCommands = append(tr.ExpectedCommands, c)
			}
		}
		out = append(out, tr)
	}
	return out
}

// escapeArg renders an argument the way the transcripts' argv does.
func escapeArg(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '\\':
			sb.WriteString(`\\`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// decoded is everything a decoder yields, copied.
type decoded struct {
	kinds    []eventKind // without evRDBData and evCommands repeats
	replID   string
	start    int64
	size     int64
	rdb      []byte
	cmds     []wireCommand // At/Len unset
	offset   int64         // of the last batch
	getacks  int
	batches  int
	rdbEnded bool
}

// decodeChunks runs a decoder over chunks, in order, as the link's pump
// does.
func decodeChunks(d *decoder, chunks [][]byte) (*decoded, error) {
	out := &decoded{offset: -1, size: -2}
	note := func(k eventKind) {
		if len(out.kinds) == 0 || out.kinds[len(out.kinds)-1] != k {
			out.kinds = append(out.kinds, k)
		}
	}
	for _, c := range chunks {
		for {
			n, ev, err := d.decode(c)
			c = c[n:]
			if err != nil {
				return out, err
			}
			if ev.kind == evNone {
				if len(c) != 0 {
					return out, fmt.Errorf("evNone with %d bytes left", len(c))
				}
				break
			}
			note(ev.kind)
			switch ev.kind {
			case evFullResync, evContinue:
				out.replID, out.start = d.replID, d.start
				if ev.kind == evContinue {
					out.offset = d.start
				}
			case evRDBStart:
				out.size = d.size
			case evRDBData:
				out.rdb = append(out.rdb, ev.data...)
			case evRDBEnd:
				out.rdbEnded = true
				out.offset = d.start
			case evCommands:
				out.batches++
				for _, cmd := range ev.batch.Cmds {
					wc := wireCommand{OffsetAfter: cmd.Offset}
					for _, a := range cmd.Args {
						wc.Argv = append(wc.Argv, escapeArg(a))
					}
					out.cmds = append(out.cmds, wc)
				}
				out.offset = ev.batch.Offset
				if ev.batch.GetAck {
					out.getacks++
				}
			}
		}
	}
	// A pending evRDBEnd needs no input.
	if d.state == dsRDBEnd {
		if _, ev, _ := d.decode(nil); ev.kind == evRDBEnd {
			out.rdbEnded = true
			out.offset = d.start
			note(evRDBEnd)
		}
	}
	return out, nil
}

func checkTranscript(t *testing.T, tr *transcript, got *decoded) {
	t.Helper()
	if !tr.OffsetMatches {
		t.Fatalf("%s: fixture says its offset does not match the master", tr.Name)
	}
	if tr.ContinueFrom != nil {
		if got.replID != tr.ContinueReplID || got.start != *tr.ContinueFrom {
			t.Fatalf("continue: got replid %q start %d, want %q %d", got.replID, got.start, tr.ContinueReplID, *tr.ContinueFrom)
		}
		if got.rdbEnded || len(got.rdb) != 0 {
			t.Fatalf("continue: unexpected snapshot")
		}
	} else {
		if got.replID != tr.ReplID || got.start != tr.FullOffset {
			t.Fatalf("fullresync: got %q %d, want %q %d", got.replID, got.start, tr.ReplID, tr.FullOffset)
		}
		wantSize := tr.RDBLen
		if tr.Framing == "eof" {
			wantSize = -1
		}
		if got.size != wantSize {
			t.Fatalf("size %d, want %d", got.size, wantSize)
		}
		if !bytes.Equal(got.rdb, tr.Bin[tr.RDBStart:tr.RDBEnd]) {
			t.Fatalf("rdb payload: got %d bytes, want %d (%q...)", len(got.rdb), tr.RDBEnd-tr.RDBStart, got.rdb[max(0, len(got.rdb)-50):])
		}
		if !got.rdbEnded {
			t.Fatalf("no end of snapshot")
		}
	}
	if len(got.cmds) != len(tr.ExpectedCommands) {
		t.Fatalf("got %d commands, want %d", len(got.cmds), len(tr.ExpectedCommands))
	}
	for i, w := range tr.ExpectedCommands {
		g := got.cmds[i]
		if g.OffsetAfter != w.OffsetAfter || strings.Join(g.Argv, " ") != strings.Join(w.Argv, " ") {
			t.Fatalf("command %d: got %v @%d, want %v @%d", i, g.Argv, g.OffsetAfter, w.Argv, w.OffsetAfter)
		}
	}
	if got.offset != tr.FinalOffset || fmt.Sprint(got.offset) != tr.MasterInfo["master_repl_offset"] {
		t.Fatalf("final offset %d, want %d (master_repl_offset %s)", got.offset, tr.FinalOffset, tr.MasterInfo["master_repl_offset"])
	}
}

func TestTranscripts(t *testing.T) {
	for _, tr := range loadTranscripts(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Run("whole", func(t *testing.T) {
				got, err := decodeChunks(newDecoder(tr.ResumePosition, resp.Limits{}), [][]byte{tr.Bin})
				if err != nil {
					t.Fatal(err)
				}
				checkTranscript(t, tr, got)
				if strings.Contains(tr.Name, "diskless") && !strings.Contains(tr.Name, "delay") && got.getacks == 0 {
					t.Fatalf("no GETACK seen")
				}
			})
			t.Run("every-split", func(t *testing.T) {
				for i := 0; i <= len(tr.Bin); i++ {
					got, err := decodeChunks(newDecoder(tr.ResumePosition, resp.Limits{}), [][]byte{tr.Bin[:i], tr.Bin[i:]})
					if err != nil {
						t.Fatalf("split at %d: %v", i, err)
					}
					checkTranscript(t, tr, got)
				}
			})
			t.Run("one-byte", func(t *testing.T) {
				got, err := decodeChunks(newDecoder(tr.ResumePosition, resp.Limits{}), splitEvery(tr.Bin, 1))
				if err != nil {
					t.Fatal(err)
				}
				checkTranscript(t, tr, got)
			})
			t.Run("random", func(t *testing.T) {
				rng := rand.New(rand.NewSource(1))
				for range 50 {
					got, err := decodeChunks(newDecoder(tr.ResumePosition, resp.Limits{}), splitRandom(rng, tr.Bin))
					if err != nil {
						t.Fatal(err)
					}
					checkTranscript(t, tr, got)
				}
			})
		})
	}
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, b[:k:k])
		b = b[k:]
	}
	return out
}

func splitRandom(rng *rand.Rand, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		k := min(1+rng.Intn(100), len(b))
		out = append(out, b[:k:k])
		b = b[k:]
	}
	return out
}

func TestDecoderReplies(t *testing.T) {
	mark := strings.Repeat("a", 40)
	cases := []struct {
		name    string
		resume  Position
		in      string
		kinds   []eventKind
		replID  string
		start   int64
		size    int64
		rdb     string
		wantErr string
	}{
		{name: "keepalives before reply and header", in: "\n\n+FULLRESYNC 0123 7\r\n\n\r\n$3\r\nabc*1\r\n$4\r\nPING\r\n",
			kinds: []eventKind{evFullResync, evRDBStart, evRDBData, evRDBEnd, evCommands}, replID: "0123", start: 7, size: 3, rdb: "abc"},
		{name: "empty payload", in: "+FULLRESYNC id 0\r\n$0\r\n",
			kinds: []eventKind{evFullResync, evRDBStart, evRDBEnd}, replID: "id", size: 0},
		{name: "eof mark", in: "+FULLRESYNC id 0\r\n$EOF:" + mark + "\r\nREDIS0011xyz" + mark + "*1\r\n$1\r\nX\r\n",
			kinds: []eventKind{evFullResync, evRDBStart, evRDBData, evRDBEnd, evCommands}, replID: "id", size: -1, rdb: "REDIS0011xyz"},
		{name: "continue keeps id", resume: Position{"old", 99}, in: "+CONTINUE\r\n*1\r\n$1\r\nX\r\n",
			kinds: []eventKind{evContinue, evCommands}, replID: "old", start: 99},
		{name: "continue new id", resume: Position{"old", 99}, in: "+CONTINUE new\r\n",
			kinds: []eventKind{evContinue}, replID: "new", start: 99},
		{name: "loading", in: "-LOADING Redis is loading the dataset in memory\r\n", wantErr: "LOADING"},
		{name: "nomasterlink", in: "\n-NOMASTERLINK Can't SYNC while not connected with my master\r\n", wantErr: "NOMASTERLINK"},
		{name: "garbage reply", in: "+OK\r\n", wantErr: "unexpected reply"},
		{name: "bad mark", in: "+FULLRESYNC id 0\r\n$EOF:abc\r\n", wantErr: "bad $EOF"},
		{name: "bad length", in: "+FULLRESYNC id 0\r\n$-5\r\n", wantErr: "bad payload length"},
		{name: "inline in stream", in: "+CONTINUE\r\nPING\r\n", wantErr: "expected '*'"},
		{name: "bulk without crlf", in: "+CONTINUE\r\n*1\r\n$1\r\nXY\r\n", wantErr: "not terminated"},
		{name: "long line", in: "\n" + strings.Repeat("x", 70000), wantErr: "too long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := 0; i <= len(c.in); i += 1 + len(c.in)/1000 {
				got, err := decodeChunks(newDecoder(c.resume, resp.Limits{}), [][]byte{[]byte(c.in[:i]), []byte(c.in[i:])})
				if c.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), c.wantErr) {
						t.Fatalf("split %d: err %v, want %q", i, err, c.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("split %d: %v", i, err)
				}
				if fmt.Sprint(got.kinds) != fmt.Sprint(c.kinds) || got.replID != c.replID || got.start != c.start || string(got.rdb) != c.rdb {
					t.Fatalf("split %d: got %v %q %d %q", i, got.kinds, got.replID, got.start, got.rdb)
				}
				if c.size != 0 && got.size != c.size {
					t.Fatalf("size %d", got.size)
				}
			}
		})
	}
}

func TestDecoderErrorSticks(t *testing.T) {
	d := newDecoder(Position{}, resp.Limits{})
	_, _, err1 := d.decode([]byte("+WHAT\r\n"))
	_, _, err2 := d.decode([]byte("+FULLRESYNC id 0\r\n"))
	if err1 == nil || err1 != err2 {
		t.Fatalf("errors %v, %v", err1, err2)
	}
	var pe *ParseError
	if !errors.As(err1, &pe) || errclass.Classify(err1) != errclass.Retry {
		t.Fatalf("%T %v", err1, errclass.Classify(err1))
	}
}
