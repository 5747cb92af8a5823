package rdb

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// fixtureDir holds the RDB fixtures of every server version, with their
// expected contents (testdata/README.md says how they were made).
const fixtureDir = "../../testdata/rdb"

// fixtures lists fixture files; a missing fixture directory fails the test.
func fixtures(t testing.TB, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(fixtureDir, pattern))
	if err != nil || len(m) == 0 {
		t.Fatalf("no fixtures %q in %s (err %v): the fixtures live in testdata/rdb of the repository", pattern, fixtureDir, err)
	}
	return m
}

type expectedFile struct {
	Server struct {
		RDBVersion      int `json:"rdb_version"`
		RDBVersionEmpty int `json:"rdb_version_empty"`
	} `json:"server"`
	Functions []struct {
		LibraryName string `json:"library_name"`
		Code        string `json:"code"`
	} `json:"functions"`
	RDB struct {
		Aux               map[string]string `json:"aux"`
		Opcodes           []string          `json:"opcodes"`
		FunctionLibraries int               `json:"function_libraries"`
		CRC64TrailerHexLE string            `json:"crc64_trailer_hex_le"`
	} `json:"rdb"`
	DBs map[string]map[string]expectedKey `json:"dbs"`
}

type expectedKey struct {
	Type            string           `json:"type"`
	RDBType         int              `json:"rdb_type"`
	TTLPresent      bool             `json:"ttl_ms_present"`
	ExpireAtMs      int64            `json:"expire_at_ms"`
	Value           json.RawMessage  `json:"value"`
	ValueLen        int              `json:"value_len"`
	ValueSHA256     string           `json:"value_sha256"`
	DumpB64         string           `json:"dump_b64"`
	FieldExpireAtMs map[string]int64 `json:"field_expire_at_ms"`
}

func loadExpected(t testing.TB, rdbPath string) *expectedFile {
	t.Helper()
	b, err := os.ReadFile(strings.TrimSuffix(rdbPath, ".rdb") + ".expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e expectedFile
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// gotKey is a decoded key in the expected.json canonical form.
type gotKey struct {
	Type       string
	RDBType    int
	ExpireAtMs int64
	Value      any
	ValueLen   int
	SHA256     string
	FieldTTL   map[string]int64
	Dump       []byte
}

type streamOut struct {
	Entries  [][]any          `json:"entries"`
	Length   uint64           `json:"length"`
	LastID   string           `json:"last_generated_id"`
	Groups   []map[string]any `json:"groups"`
	MaxDel   string           `json:"max_deleted_entry_id,omitempty"`
	Added    *uint64          `json:"entries_added,omitempty"`
	FirstID  string           `json:"recorded_first_entry_id,omitempty"`
	hasV2    bool
	consumer map[string]any
	group    map[string]any
	pelOwner map[string]string
	pel      []StreamPending
}

// decodeKey reads a key's value with Decode into canonical form.
func decodeKey(k *Key) (*gotKey, error) {
	g := &gotKey{Type: k.Kind().String(), RDBType: int(k.Type), ExpireAtMs: k.ExpireAtMs}
	var str []byte
	var list []string
	var pairs [][2]string
	var zs []zpair
	ttl := map[string]int64{}
	st := &streamOut{Entries: [][]any{}, Groups: []map[string]any{}}
	var pels [][]StreamPending
	var owners []map[string]string
	err := k.Decode(func(c *Chunk) error {
		switch c.Kind {
		case KindString:
			if int64(len(str)) != c.Offset {
				return fmt.Errorf("string piece at %d, have %d", c.Offset, len(str))
			}
			str = append(str, c.Data...)
		case KindList, KindSet:
			for _, e := range c.Elems {
				list = append(list, string(e))
			}
		case KindZSet:
			for i, e := range c.Elems {
				zs = append(zs, zpair{string(e), c.Scores[i]})
			}
		case KindHash:
			if len(c.Elems)%2 != 0 {
				return errors.New("odd hash chunk")
			}
			for i := 0; i < len(c.Elems); i += 2 {
				pairs = append(pairs, [2]string{string(c.Elems[i]), string(c.Elems[i+1])})
				if c.FieldExpireAtMs != nil && c.FieldExpireAtMs[i/2] != 0 {
					ttl[string(c.Elems[i])] = c.FieldExpireAtMs[i/2]
				}
			}
		case KindStream:
			switch c.StreamPart {
			case StreamEntries:
				for _, e := range c.Entries {
					f := []any{}
					for _, x := range e.Fields {
						f = append(f, string(x))
					}
					st.Entries = append(st.Entries, []any{e.ID.String(), f})
				}
			case StreamMetaPart:
				m := c.Meta
				st.Length, st.LastID, st.hasV2 = m.Length, m.LastID.String(), m.HasV2
				if m.HasV2 {
					st.MaxDel, st.FirstID = m.MaxDeletedID.String(), m.FirstID.String()
					n := m.EntriesAdded
					st.Added = &n
				}
			case StreamGroupPart:
				gr := map[string]any{
					"name":              string(c.Group.Name),
					"last_delivered_id": c.Group.LastID.String(),
					"consumers":         []any{},
				}
				if st.hasV2 {
					if c.Group.EntriesRead < 0 {
						gr["entries_read"] = nil
					} else {
						gr["entries_read"] = float64(c.Group.EntriesRead)
					}
				}
				st.Groups = append(st.Groups, gr)
				pels = append(pels, nil)
				owners = append(owners, map[string]string{})
			case StreamPEL:
				pels[len(pels)-1] = append(pels[len(pels)-1], c.Pending...)
			case StreamConsumerPart:
				gr := st.Groups[len(st.Groups)-1]
				gr["consumers"] = append(gr["consumers"].([]any), map[string]any{"name": string(c.Consumer.Name), "pending": []any{}})
			case StreamConsumerPEL:
				gr := st.Groups[len(st.Groups)-1]
				cs := gr["consumers"].([]any)
				cm := cs[len(cs)-1].(map[string]any)
				for _, id := range c.ConsumerPending {
					cm["pending"] = append(cm["pending"].([]any), id.String())
					owners[len(owners)-1][id.String()] = string(c.Consumer.Name)
				}
			}
		default:
			return fmt.Errorf("unexpected kind %v", c.Kind)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch k.Kind() {
	case KindString:
		if len(str) > 64<<10 {
			sum := sha256.Sum256(str)
			g.ValueLen, g.SHA256 = len(str), hex.EncodeToString(sum[:])
		} else {
			g.Value = base64.StdEncoding.EncodeToString(str)
		}
	case KindList:
		g.Value = list
	case KindSet:
		sort.Strings(list)
		g.Value = list
	case KindZSet:
		sort.Slice(zs, func(i, j int) bool { return zs[i].m < zs[j].m })
		g.Value = zs
	case KindHash:
		sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
		g.Value = pairs
		if len(ttl) > 0 {
			g.FieldTTL = ttl
		}
	case KindStream:
		for i, gr := range st.Groups {
			pel := []any{}
			for _, pe := range pels[i] {
				pel = append(pel, []any{pe.ID.String(), owners[i][pe.ID.String()], float64(pe.DeliveryCount)})
			}
			gr["pel"] = pel
		}
		g.Value = st
	}
	return g, nil
}

type zpair struct {
	m string
	s float64
}

// compareKey checks a decoded key against expected.json.
func compareKey(t *testing.T, name string, got *gotKey, want expectedKey) {
	t.Helper()
	if got.Type != want.Type || got.RDBType != want.RDBType {
		t.Errorf("%s: type %s/%d, want %s/%d", name, got.Type, got.RDBType, want.Type, want.RDBType)
		return
	}
	wantExp := int64(-1)
	if want.TTLPresent {
		wantExp = want.ExpireAtMs
	}
	if got.ExpireAtMs != wantExp {
		t.Errorf("%s: expire %d, want %d", name, got.ExpireAtMs, wantExp)
	}
	if !reflect.DeepEqual(got.FieldTTL, want.FieldExpireAtMs) {
		t.Errorf("%s: field TTLs %v, want %v", name, got.FieldTTL, want.FieldExpireAtMs)
	}
	if want.ValueSHA256 != "" {
		if got.ValueLen != want.ValueLen || got.SHA256 != want.ValueSHA256 {
			t.Errorf("%s: big string len %d sha %s, want %d %s", name, got.ValueLen, got.SHA256, want.ValueLen, want.ValueSHA256)
		}
		return
	}
	switch v := got.Value.(type) {
	case []zpair:
		var w [][2]string
		if err := json.Unmarshal(want.Value, &w); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sort.Slice(w, func(i, j int) bool { return w[i][0] < w[j][0] })
		if len(w) != len(v) {
			t.Errorf("%s: %d members, want %d", name, len(v), len(w))
			return
		}
		for i := range w {
			ws, err := strconv.ParseFloat(w[i][1], 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if v[i].m != w[i][0] || (v[i].s != ws && !(math.IsNaN(ws) && math.IsNaN(v[i].s))) {
				t.Errorf("%s: member %d = %q %v, want %q %v", name, i, v[i].m, v[i].s, w[i][0], ws)
			}
		}
	default:
		gb, err := json.Marshal(got.Value)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		_ = json.Unmarshal(gb, &g)
		if err := json.Unmarshal(want.Value, &w); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: value\n got %s\nwant %s", name, trunc(gb), trunc(want.Value))
		}
	}
	if want.DumpB64 != "" && got.Dump != nil {
		wd, _ := base64.StdEncoding.DecodeString(want.DumpB64)
		if !bytes.Equal(got.Dump, wd) {
			t.Errorf("%s: dump payload\n got %x\nwant %x", name, got.Dump, wd)
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "..."
	}
	return string(b)
}

// mode says how a test run reads values.
type mode int

const (
	modeDecode    mode = iota // Decode only
	modeRawDecode             // Raw (checked against dump_b64), then Decode from the capture
	modeTinyRaw               // MaxRawPayload tiny: Raw fails, Decode replays
)

type parsed struct {
	version int
	aux     map[string]string
	opcodes []string
	funcs   []string
	end     *End
	keys    map[string]map[string]*gotKey
}

// parseAll reads a whole file.
func parseAll(r io.Reader, opts Options, m mode) (*parsed, error) {
	p := NewParser(r, opts)
	out := &parsed{aux: map[string]string{}, keys: map[string]map[string]*gotKey{}}
	for {
		e, err := p.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out.version = p.Version()
		switch e := e.(type) {
		case *Aux:
			out.aux[string(e.Key)] = string(e.Value)
			out.opcodes = append(out.opcodes, "AUX "+string(e.Key))
		case *Function:
			out.funcs = append(out.funcs, string(e.Code))
			out.opcodes = append(out.opcodes, "FUNCTION2")
		case *SelectDB:
			out.opcodes = append(out.opcodes, fmt.Sprintf("SELECTDB %d", e.DB))
		case *ResizeDB:
			out.opcodes = append(out.opcodes, fmt.Sprintf("RESIZEDB %d %d", e.DBSize, e.ExpiresSize))
		case *End:
			c := *e
			out.end = &c
		case *Key:
			var dump []byte
			switch m {
			case modeRawDecode:
				if dump, err = e.DumpPayload(nil); err != nil {
					return out, fmt.Errorf("%s: raw: %w", e.Key, err)
				}
			case modeTinyRaw:
				raw, err := e.Raw()
				if !errors.Is(err, ErrRawTooLarge) && (err != nil || len(raw) > opts.MaxRawPayload) {
					return out, fmt.Errorf("%s: raw with tiny limit: %d bytes, %v", e.Key, len(raw), err)
				}
				if _, err := e.Raw(); err == nil {
					// fits: Decode replays the capture
				} else if !errors.Is(err, ErrRawTooLarge) {
					return out, fmt.Errorf("%s: second raw: %v", e.Key, err)
				}
			}
			g, err := decodeKey(e)
			if err != nil {
				return out, fmt.Errorf("%s: decode: %w", e.Key, err)
			}
			g.Dump = dump
			db := strconv.FormatUint(e.DB, 10)
			if out.keys[db] == nil {
				out.keys[db] = map[string]*gotKey{}
			}
			out.keys[db][string(e.Key)] = g
		}
	}
}

func TestFixtures(t *testing.T) {
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"direct", func(r io.Reader) io.Reader { return r }},
		{"onebyte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
	}
	modes := []struct {
		name string
		m    mode
		opts Options
	}{
		{"decode", modeDecode, Options{}},
		{"raw+decode", modeRawDecode, Options{}},
		{"tinyraw+smallchunks", modeTinyRaw, Options{MaxRawPayload: 3, ChunkElems: 7, ChunkBytes: 100}},
	}
	for _, path := range fixtures(t, "*-alltypes.rdb") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := loadExpected(t, path)
		name := strings.TrimSuffix(filepath.Base(path), "-alltypes.rdb")
		for _, rd := range readers {
			for _, md := range modes {
				t.Run(name+"/"+rd.name+"/"+md.name, func(t *testing.T) {
					got, err := parseAll(rd.wrap(bytes.NewReader(data)), md.opts, md.m)
					if err != nil {
						t.Fatal(err)
					}
					dumps, withDump := checkFile(t, got, want)
					if md.m == modeRawDecode && (dumps != withDump || dumps == 0) {
						t.Errorf("compared %d dump payloads, want %d", dumps, withDump)
					}
				})
			}
		}
	}
}

// checkFile compares a parsed file with expected.json and returns how many
// dump payloads were compared and how many keys carry one.
func checkFile(t *testing.T, got *parsed, want *expectedFile) (dumps, withDump int) {
	t.Helper()
	if got.version != want.Server.RDBVersion {
		t.Errorf("version %d, want %d", got.version, want.Server.RDBVersion)
	}
	if !reflect.DeepEqual(got.aux, want.RDB.Aux) {
		t.Errorf("aux %v, want %v", got.aux, want.RDB.Aux)
	}
	if !reflect.DeepEqual(got.opcodes, want.RDB.Opcodes) {
		t.Errorf("opcodes %v, want %v", got.opcodes, want.RDB.Opcodes)
	}
	if len(got.funcs) != want.RDB.FunctionLibraries || len(got.funcs) != len(want.Functions) {
		t.Errorf("%d functions, want %d", len(got.funcs), want.RDB.FunctionLibraries)
	} else {
		for i, f := range want.Functions {
			if got.funcs[i] != f.Code || !strings.HasPrefix(got.funcs[i], "#!lua name="+f.LibraryName) {
				t.Errorf("function %d = %q, want library %s %q", i, got.funcs[i], f.LibraryName, f.Code)
			}
		}
	}
	if got.end == nil {
		t.Fatal("no End entry")
		return
	}
	trailer := hex.EncodeToString(binary.LittleEndian.AppendUint64(nil, got.end.Checksum))
	if trailer != want.RDB.CRC64TrailerHexLE {
		t.Errorf("trailer %s, want %s", trailer, want.RDB.CRC64TrailerHexLE)
	}
	for db, keys := range want.DBs {
		if len(got.keys[db]) != len(keys) {
			t.Errorf("db %s: %d keys, want %d", db, len(got.keys[db]), len(keys))
		}
		for k, wk := range keys {
			gk := got.keys[db][k]
			if gk == nil {
				t.Errorf("db %s: missing key %q", db, k)
				continue
			}
			if wk.DumpB64 != "" {
				withDump++
				if gk.Dump != nil {
					dumps++
				}
			}
			compareKey(t, db+"/"+k, gk, wk)
		}
	}
	for db := range got.keys {
		if _, ok := want.DBs[db]; !ok {
			t.Errorf("unexpected db %s", db)
		}
	}
	return dumps, withDump
}

func TestEmptyFixtures(t *testing.T) {
	for _, path := range fixtures(t, "*-empty.rdb") {
		name := strings.TrimSuffix(filepath.Base(path), "-empty.rdb")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := loadExpected(t, strings.Replace(path, "-empty.rdb", "-alltypes.rdb", 1))
			got, err := parseAll(iotest.HalfReader(bytes.NewReader(data)), Options{}, modeDecode)
			if err != nil {
				t.Fatal(err)
			}
			if got.version != want.Server.RDBVersionEmpty {
				t.Errorf("version %d, want %d", got.version, want.Server.RDBVersionEmpty)
			}
			if got.end == nil || len(got.keys) != 0 {
				t.Errorf("end %v, keys %v", got.end, got.keys)
			}
		})
	}
}

// TestSkipAll reads only entries: Next skips every value.
func TestSkipAll(t *testing.T) {
	for _, path := range fixtures(t, "*-alltypes.rdb") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := loadExpected(t, path)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p := NewParser(iotest.OneByteReader(f), Options{})
			keys := 0
			for {
				e, err := p.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := e.(*Key); ok {
					keys++
				}
			}
			n := 0
			for _, ks := range want.DBs {
				n += len(ks)
			}
			if keys != n {
				t.Errorf("%d keys, want %d", keys, n)
			}
			if _, err := p.Next(); err != io.EOF {
				t.Errorf("after End: %v, want io.EOF", err)
			}
		})
	}
}
