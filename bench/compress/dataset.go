package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The dataset: JSON-like records, the kind of value gzip meets in
// practice — the same field names in every record, text drawn from a
// small vocabulary, numbers, dates — rather than constant padding (which
// compresses to nothing) or random bytes (which do not compress at all).

var words = []string{
	"the", "a", "and", "of", "to", "in", "for", "with", "on", "at", "from", "by",
	"please", "leave", "parcel", "near", "door", "call", "before", "delivery",
	"after", "office", "hours", "gift", "wrap", "note", "thank", "you", "order",
	"again", "fast", "slow", "back", "front", "side", "gate", "garden", "floor",
	"lamp", "chair", "table", "shelf", "cup", "plate", "bowl", "kettle", "towel",
	"blanket", "pillow", "mirror", "clock", "basket", "candle", "rug", "vase",
	"red", "blue", "green", "black", "white", "grey", "oak", "steel", "glass",
	"cotton", "linen", "wool", "small", "large", "round", "square", "tall",
	"quiet", "bright", "soft", "warm", "classic", "modern", "rustic", "simple",
	"set", "pack", "pair", "box", "new", "spare", "extra", "replacement",
	"customer", "asked", "about", "size", "colour", "return", "exchange", "refund",
	"damaged", "missing", "late", "early", "weekend", "monday", "friday", "morning",
	"evening", "neighbour", "reception", "building", "apartment", "street",
}

var (
	adjectives = []string{"small", "large", "round", "square", "tall", "quiet", "bright", "soft", "warm", "classic", "modern", "rustic", "simple"}
	materials  = []string{"red", "blue", "green", "black", "white", "grey", "oak", "steel", "glass", "cotton", "linen", "wool"}
	products   = []string{"lamp", "chair", "table", "shelf", "cup", "plate", "bowl", "kettle", "towel", "blanket", "pillow", "mirror", "clock", "basket", "candle", "rug", "vase"}
	kinds      = []string{"order", "return", "quote", "subscription"}
	statuses   = []string{"new", "paid", "packed", "shipped", "delivered", "cancelled"}
	firsts     = []string{"Maria", "John", "Aiko", "Lena", "Omar", "Chloe", "Ravi", "Ines", "Tomas", "Sara", "Pedro", "Nina"}
	lasts      = []string{"Lopez", "Smith", "Tanaka", "Muller", "Haddad", "Martin", "Patel", "Silva", "Novak", "Rossi", "Berg", "Kowalski"}
	cities     = []string{"Porto", "Lyon", "Osaka", "Leeds", "Gdansk", "Bergen", "Turin", "Austin", "Pune", "Ghent"}
	tiers      = []string{"basic", "silver", "gold"}
	tags       = []string{"gift", "express", "fragile", "bulk", "promo", "repeat", "b2b", "eco"}
	dateStart  = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// records generates the dataset deterministically from a seed.
type records struct {
	r    *rand.Rand
	size int // average value length
	n    int // records generated
}

func newRecords(seed uint64, size int) *records {
	return &records{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), size: size}
}

func (g *records) pick(list []string) string { return list[g.r.IntN(len(list))] }

// next appends the next key and value to the given buffers. Values are
// between half and one and a half times the average size (plus one item).
func (g *records) next(key, val []byte) ([]byte, []byte) {
	id := g.n
	g.n++
	key = append(append(key, "rec:"...), strconv.Itoa(id)...)
	target := g.size/2 + g.r.IntN(g.size+1)

	v := append(val, `{"id":`...)
	v = strconv.AppendInt(v, int64(id), 10)
	v = append(v, `,"kind":"`...)
	v = append(v, g.pick(kinds)...)
	v = append(v, `","status":"`...)
	v = append(v, g.pick(statuses)...)
	v = append(v, `","created":"`...)
	v = time.Unix(dateStart+g.r.Int64N(2*365*86400), 0).UTC().AppendFormat(v, time.RFC3339)
	first, last := g.pick(firsts), g.pick(lasts)
	v = append(v, `","customer":{"id":`...)
	v = strconv.AppendInt(v, g.r.Int64N(1_000_000), 10)
	v = append(v, `,"name":"`...)
	v = append(append(append(v, first...), ' '), last...)
	v = append(v, `","email":"`...)
	v = append(append(append(v, first...), '.'), last...)
	v = append(v, `@example.com","city":"`...)
	v = append(v, g.pick(cities)...)
	v = append(v, `","tier":"`...)
	v = append(v, g.pick(tiers)...)
	v = append(v, `"},"items":[`...)
	var total int64
	start := len(val)
	for i := 0; i == 0 || len(v)-start < target-120; i++ {
		if i > 0 {
			v = append(v, ',')
		}
		qty, cents := 1+g.r.Int64N(4), 199+g.r.Int64N(20000)
		total += qty * cents
		v = append(v, `{"sku":"SKU-`...)
		v = strconv.AppendInt(v, 100000+g.r.Int64N(900000), 10)
		v = append(v, `","title":"`...)
		v = append(append(v, g.pick(adjectives)...), ' ')
		v = append(append(v, g.pick(materials)...), ' ')
		v = append(v, g.pick(products)...)
		v = append(v, `","qty":`...)
		v = strconv.AppendInt(v, qty, 10)
		v = append(v, `,"price":`...)
		v = appendCents(v, cents)
		v = append(v, '}')
	}
	v = append(v, `],"total":`...)
	v = appendCents(v, total)
	v = append(v, `,"note":"`...)
	for i := 0; i == 0 || len(v)-start < target-40 && i < 200; i++ {
		if i > 0 {
			v = append(v, ' ')
		}
		v = append(v, g.pick(words)...)
	}
	v = append(v, `","tags":["`...)
	v = append(v, g.pick(tags)...)
	v = append(v, `","`...)
	v = append(v, g.pick(tags)...)
	v = append(v, `"]}`...)
	return key, v
}

func appendCents(b []byte, c int64) []byte {
	b = strconv.AppendInt(b, c/100, 10)
	b = append(b, '.')
	if c%100 < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, c%100, 10)
}

// loadStats is what load wrote.
type loadStats struct {
	keys, bytes int64 // keys and the bytes of their names and values
}

// load writes records into c until their keys and values add up to size
// bytes, in pipelines of batch SETs.
func load(ctx context.Context, c *redis.Client, size int64, valueSize, batch int) (loadStats, error) {
	g := newRecords(1, valueSize)
	var st loadStats
	pipe := c.Pipeline()
	var key, val []byte
	for st.bytes < size {
		key, val = g.next(key[:0], val[:0])
		pipe.Set(ctx, string(key), string(val), 0)
		st.keys++
		st.bytes += int64(len(key) + len(val))
		if pipe.Len() >= batch {
			if _, err := pipe.Exec(ctx); err != nil {
				return st, err
			}
		}
	}
	_, err := pipe.Exec(ctx)
	return st, err
}
