package redisx

import "strings"

// SlotCount is the number of hash slots in a Redis Cluster.
const SlotCount = 16384

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key modulo 16384, or of
// its hash tag when it has one. As in Redis, the tag is what lies between the first '{' and the
// first '}' after it, and only when that is not empty: "{user1000}.following" hashes "user1000",
// "foo{{bar}}" hashes "{bar", while "foo{}{bar}" and "foo{bar" hash the whole key. Keys are
// bytes; Slot does not interpret UTF-8.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key) % SlotCount)
}

// crc16Table is the table of CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection),
// the checksum Redis Cluster hashes keys with.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}
