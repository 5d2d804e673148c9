package redisstore

import "strings"

// slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash tag
// (the text between the first '{' and the next '}', when not empty) or of
// the whole key, modulo 16384. The store groups a request's ops by slot
// because one script call can only touch keys of one slot.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc = crc<<8 ^ crc16tab[byte(crc>>8)^key[k]]
	}
	return crc % 16384
}

var crc16tab = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
