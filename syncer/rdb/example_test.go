package rdb_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/replicaof/replicaof/syncer/rdb"
)

func Example() {
	// A tiny RDB file: one list "l" with two elements, in RDB type 1.
	file := []byte("REDIS0009\x01\x01l\x02\x01a\x01b\xff")
	file = binary.LittleEndian.AppendUint64(file, rdb.CRC64(0, file))

	p := rdb.NewParser(bytes.NewReader(file), rdb.Options{})
	for {
		e, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		switch e := e.(type) {
		case *rdb.Key:
			payload, err := e.DumpPayload(nil)
			if err != nil && !errors.Is(err, rdb.ErrRawTooLarge) {
				fmt.Println(err)
				return
			}
			fmt.Printf("key %s (%v) dump %d bytes\n", e.Key, e.Kind(), len(payload))
			_ = e.Decode(func(c *rdb.Chunk) error {
				fmt.Printf("RPUSH %s %q\n", e.Key, c.Elems)
				return nil
			})
		case *rdb.End:
			fmt.Printf("end, checksum %x\n", e.Checksum)
		}
	}
	// Output:
	// key l (list) dump 16 bytes
	// RPUSH l ["a" "b"]
	// end, checksum e3db6b3a0b1324fa
}
