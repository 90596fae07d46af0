/* >>data fragment: inflate, gzip, IDX, MNIST, synthetic dataset (goes at NN_DATA_IMPL). */

#include <errno.h>

/* --- inflate (RFC 1951) ------------------------------------------------------
   Huffman codes decode through a 2^NN__FAST_BITS table indexed by the next
   input bits (deflate packs codes LSB-first, so the table is indexed by the
   bit-reversed code).  Codes longer than NN__FAST_BITS are rare and decode
   bit by bit from the canonical code's per-length counts.  The bit buffer is
   64 bits wide; it is refilled to >= 56 bits whenever it holds fewer than
   48, the most a length/distance pair needs (15 + 5 + 15 + 13 bits).
   Past the end of the input the refill feeds zero bytes and counts them; a
   symbol that consumed any of those bits makes the stream "truncated". */

#define NN__FAST_BITS 10
#define NN__MAX_CODE_BITS 15

typedef struct nn__huff {
    uint16_t fast[1 << NN__FAST_BITS]; /* (symbol << 4) | length; 0: slow path */
    uint16_t count[NN__MAX_CODE_BITS + 1]; /* codes of each length */
    uint16_t symbol[320];                  /* symbols sorted by (length, value) */
} nn__huff;

typedef struct nn__inflater {
    const unsigned char *in;
    size_t in_size, pos;   /* pos may pass in_size: zero bytes were fed then */
    uint64_t bits;
    unsigned nbits;
    unsigned char *out;
    size_t out_size, out_cap;
    size_t base;           /* offset of this gzip member in the input, for messages */
    nn__huff lit, dist;
} nn__inflater;

static const uint16_t nn__len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                          35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char nn__len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                                3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t nn__dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                           193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                           4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char nn__dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                                 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Byte offset of the next unread bit, for error messages. */
static size_t nn__inf_offset(const nn__inflater *z) {
    size_t p = z->pos - z->nbits / 8;
    return z->base + (p < z->in_size ? p : z->in_size);
}

/* Whether decoding has consumed any of the zero bits fed past the input's end. */
static int nn__inf_overrun(const nn__inflater *z) {
    return z->pos > z->in_size && (z->pos - z->in_size) * 8 > z->nbits;
}

static nn_status nn__inf_truncated(const nn__inflater *z) {
    return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated stream at byte %zu",
                     z->base + z->in_size);
}

/* Fill the bit buffer to at least 57 bits.  Returns 0 when bits beyond the end
   of the input have already been consumed (the stream is truncated). */
static int nn__refill_bits(const unsigned char *in, size_t in_size, size_t *pos,
                           uint64_t *bits, unsigned *nbits) {
    size_t p = *pos;
    uint64_t b = *bits;
    unsigned n = *nbits;
    while (n <= 56) {
        if (p < in_size) b |= (uint64_t)in[p] << n;
        p++;
        n += 8;
    }
    *pos = p;
    *bits = b;
    *nbits = n;
    /* The zero bytes fed so far sit at the top of the buffer: any missing
       from it were consumed. */
    return p <= in_size || (p - in_size) * 8 <= n;
}

static int nn__inf_refill(nn__inflater *z) {
    return nn__refill_bits(z->in, z->in_size, &z->pos, &z->bits, &z->nbits);
}

static unsigned nn__inf_take(nn__inflater *z, unsigned n) {
    unsigned v = (unsigned)(z->bits & ((1u << n) - 1u));
    z->bits >>= n;
    z->nbits -= n;
    return v;
}

/* Build a decoding table from code lengths.  Incomplete codes are refused
   unless allow_incomplete (then only "empty" or "one code of length 1", the
   cases RFC 1951 encoders legitimately produce). */
static nn_status nn__huff_build(nn__huff *h, const unsigned char *lens, int n,
                                int allow_incomplete, const char *what) {
    uint16_t offs[NN__MAX_CODE_BITS + 2];
    unsigned next_code[NN__MAX_CODE_BITS + 1];
    int i, len, left = 1, used = 0;
    unsigned code = 0;
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (i = 0; i < n; i++) h->count[lens[i]]++;
    h->count[0] = 0;
    for (len = 1; len <= NN__MAX_CODE_BITS; len++) {
        left <<= 1;
        left -= h->count[len];
        used += h->count[len];
        if (left < 0)
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: over-subscribed %s code", what);
    }
    if (left > 0 && !(allow_incomplete && (used == 0 || (used == 1 && h->count[1] == 1))))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: incomplete %s code", what);
    offs[1] = 0;
    for (len = 1; len <= NN__MAX_CODE_BITS; len++) {
        offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
        next_code[len] = code;
        code = (code + h->count[len]) << 1;
    }
    for (i = 0; i < n; i++) {
        len = lens[i];
        if (!len) continue;
        h->symbol[offs[len]++] = (uint16_t)i;
        if (len <= NN__FAST_BITS) {
            /* Reverse the len-bit code, then fill every slot whose low bits match. */
            unsigned c = next_code[len], r = 0, j;
            int b;
            for (b = 0; b < len; b++) r |= ((c >> b) & 1u) << (len - 1 - b);
            for (j = r; j < (1u << NN__FAST_BITS); j += 1u << len)
                h->fast[j] = (uint16_t)((i << 4) | len);
        }
        next_code[len]++;
    }
    return NN_OK;
}

/* Decode one symbol; the buffer must hold >= 15 bits.  -1 for a bit pattern
   that is no code (possible only with incomplete codes). */
static int nn__huff_decode(const nn__huff *h, uint64_t *bits, unsigned *nbits) {
    unsigned e = h->fast[*bits & ((1u << NN__FAST_BITS) - 1u)];
    int code = 0, first = 0, index = 0, len;
    if (e) {
        *bits >>= e & 15u;
        *nbits -= e & 15u;
        return (int)(e >> 4);
    }
    /* Canonical decoding, one bit at a time (codes come MSB-first). */
    for (len = 1; len <= NN__MAX_CODE_BITS; len++) {
        int count = h->count[len];
        code |= (int)((*bits >> (len - 1)) & 1u);
        if (code - first < count) {
            *bits >>= len;
            *nbits -= (unsigned)len;
            return h->symbol[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

/* Make room for `extra` more output bytes, doubling the buffer. */
static nn_status nn__inf_grow(nn__inflater *z, size_t extra) {
    size_t need, cap;
    unsigned char *p;
    if (extra > (size_t)-1 - z->out_size)
        return nn__error(NN_ERR_OOM, "nn_gunzip: output size overflow");
    need = z->out_size + extra;
    if (need <= z->out_cap) return NN_OK;
    cap = z->out_cap ? z->out_cap : 4096;
    while (cap < need) {
        if (cap > (size_t)-1 / 2) { cap = need; break; }
        cap *= 2;
    }
    p = (unsigned char *)NN_REALLOC(z->out, cap);
    if (!p) return nn__error(NN_ERR_OOM, "nn_gunzip: out of memory growing output to %zu bytes", cap);
    z->out = p;
    z->out_cap = cap;
    return NN_OK;
}

static nn_status nn__inf_stored(nn__inflater *z) {
    unsigned len, nlen;
    nn_status st;
    /* Drop the bits up to the byte boundary and hand whole bytes back. */
    nn__inf_take(z, z->nbits & 7u);
    z->pos -= z->nbits / 8;
    z->bits = 0;
    z->nbits = 0;
    if (z->pos > z->in_size || z->in_size - z->pos < 4) return nn__inf_truncated(z);
    len = (unsigned)z->in[z->pos] | (unsigned)z->in[z->pos + 1] << 8;
    nlen = (unsigned)z->in[z->pos + 2] | (unsigned)z->in[z->pos + 3] << 8;
    if (len != (~nlen & 0xffffu))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: stored block length check failed at byte %zu",
                         z->base + z->pos);
    z->pos += 4;
    if (z->in_size - z->pos < len) return nn__inf_truncated(z);
    if (len == 0) return NN_OK; /* z->out may still be NULL */
    if ((st = nn__inf_grow(z, len)) != NN_OK) return st;
    memcpy(z->out + z->out_size, z->in + z->pos, len);
    z->out_size += len;
    z->pos += len;
    return NN_OK;
}

static nn_status nn__inf_dynamic_tables(nn__inflater *z) {
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                            11, 4, 12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[286 + 30];
    unsigned nlit, ndist, ncode, i, n;
    nn_status st;
    if (!nn__inf_refill(z)) return nn__inf_truncated(z);
    nlit = nn__inf_take(z, 5) + 257;
    ndist = nn__inf_take(z, 5) + 1;
    ncode = nn__inf_take(z, 4) + 4;
    if (nlit > 286 || ndist > 30)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: bad block header (%u literal/length, %u "
                         "distance codes) at byte %zu", nlit, ndist, nn__inf_offset(z));
    memset(lens, 0, 19);
    for (i = 0; i < ncode; i++) {
        if (z->nbits < 3 && !nn__inf_refill(z)) return nn__inf_truncated(z);
        lens[order[i]] = (unsigned char)nn__inf_take(z, 3);
    }
    if ((st = nn__huff_build(&z->lit, lens, 19, 0, "code-length")) != NN_OK) return st;
    for (n = 0; n < nlit + ndist;) {
        int sym;
        unsigned rep, val = 0;
        if (!nn__inf_refill(z)) return nn__inf_truncated(z);
        sym = nn__huff_decode(&z->lit, &z->bits, &z->nbits);
        if (sym < 0)
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid code-length code at byte %zu",
                             nn__inf_offset(z));
        if (sym < 16) {
            lens[n++] = (unsigned char)sym;
            continue;
        }
        if (sym == 16) {
            if (n == 0)
                return nn__error(NN_ERR_FORMAT, "nn_gunzip: repeat with no previous length "
                                 "at byte %zu", nn__inf_offset(z));
            val = lens[n - 1];
            rep = 3 + nn__inf_take(z, 2);
        } else if (sym == 17) {
            rep = 3 + nn__inf_take(z, 3);
        } else {
            rep = 11 + nn__inf_take(z, 7);
        }
        if (rep > nlit + ndist - n)
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: code lengths overrun at byte %zu",
                             nn__inf_offset(z));
        memset(lens + n, (int)val, rep);
        n += rep;
    }
    if (lens[256] == 0)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: no end-of-block code at byte %zu",
                         nn__inf_offset(z));
    if ((st = nn__huff_build(&z->lit, lens, (int)nlit, 1, "literal/length")) != NN_OK) return st;
    return nn__huff_build(&z->dist, lens + nlit, (int)ndist, 1, "distance");
}

static nn_status nn__inf_fixed_tables(nn__inflater *z) {
    unsigned char lens[288];
    nn_status st;
    memset(lens, 8, 144);
    memset(lens + 144, 9, 112);
    memset(lens + 256, 7, 24);
    memset(lens + 280, 8, 8);
    if ((st = nn__huff_build(&z->lit, lens, 288, 0, "fixed literal/length")) != NN_OK) return st;
    memset(lens, 5, 30);
    /* Distance symbols 30 and 31 complete the fixed code; decoding rejects them. */
    memset(lens + 30, 5, 2);
    return nn__huff_build(&z->dist, lens, 32, 0, "fixed distance");
}

/* Decode one Huffman-coded block with the current tables.  The hot state
   lives in locals: stores to the output (unsigned char) may alias anything,
   so fields of *z would be reloaded after every byte written.  (Cold paths
   store them back; loading them back in bulk made gcc keep them in vector
   registers, 40% slower.) */
#define NN__INF_SAVE() (z->bits = bits, z->nbits = nbits, z->pos = pos, z->out = out, \
                        z->out_size = osize, z->out_cap = cap)
static nn_status nn__inf_codes(nn__inflater *z) {
    const unsigned char *in = z->in;
    const size_t in_size = z->in_size;
    const uint16_t *litfast = z->lit.fast, *distfast = z->dist.fast;
    uint64_t bits;
    unsigned nbits;
    size_t pos, osize, cap;
    unsigned char *out;
    nn_status st = NN_OK;
    bits = z->bits;
    nbits = z->nbits;
    pos = z->pos;
    out = z->out;
    osize = z->out_size;
    cap = z->out_cap;
    for (;;) {
        unsigned e, len, dist;
        int sym;
        /* 48 bits cover a length code, its extra bits, a distance code and
           its extra bits.  Fast refill: one 8-byte load, whole bytes kept
           (the bits above nbits are the next bytes, so re-ORing is harmless). */
        if (nbits < 48) {
            if (pos + 8 <= in_size) {
                const unsigned char *p = in + pos;
                uint64_t v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
                             (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
                             (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
                bits |= v << nbits;
                pos += (63 - nbits) >> 3;
                nbits |= 56;
            } else {
                if (!nn__refill_bits(in, in_size, &pos, &bits, &nbits))
                    return nn__inf_truncated(z);
            }
        }
        e = litfast[bits & ((1u << NN__FAST_BITS) - 1u)];
        if (e) {
            bits >>= e & 15u;
            nbits -= e & 15u;
            sym = (int)(e >> 4);
        } else {
            sym = nn__huff_decode(&z->lit, &bits, &nbits);
        }
        if (sym < 256) {
            if (sym < 0) {
                NN__INF_SAVE();
                return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid literal/length code at "
                                 "byte %zu", nn__inf_offset(z));
            }
            if (osize == cap) {
                z->out_size = osize;
                if ((st = nn__inf_grow(z, 1)) != NN_OK) return st;
                out = z->out;
                cap = z->out_cap;
            }
            out[osize++] = (unsigned char)sym;
            continue;
        }
        if (sym == 256) break;
        sym -= 257;
        if (sym >= 29) {
            NN__INF_SAVE();
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid length symbol %d at byte %zu",
                             sym + 257, nn__inf_offset(z));
        }
        e = nn__len_extra[sym];
        len = nn__len_base[sym] + (unsigned)(bits & ((1u << e) - 1u));
        bits >>= e;
        nbits -= e;
        e = distfast[bits & ((1u << NN__FAST_BITS) - 1u)];
        if (e) {
            bits >>= e & 15u;
            nbits -= e & 15u;
            sym = (int)(e >> 4);
        } else {
            sym = nn__huff_decode(&z->dist, &bits, &nbits);
        }
        if (sym < 0 || sym >= 30) {
            NN__INF_SAVE();
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid distance code at byte %zu",
                             nn__inf_offset(z));
        }
        e = nn__dist_extra[sym];
        dist = nn__dist_base[sym] + (unsigned)(bits & ((1u << e) - 1u));
        bits >>= e;
        nbits -= e;
        if (dist > osize) {
            NN__INF_SAVE();
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: distance %u too far back (only %zu "
                             "bytes written) at byte %zu", dist, osize, nn__inf_offset(z));
        }
        if (cap - osize < len) {
            z->out_size = osize;
            if ((st = nn__inf_grow(z, len)) != NN_OK) return st;
            out = z->out;
            cap = z->out_cap;
        }
        {
            unsigned char *d = out + osize;
            const unsigned char *s = d - dist;
            osize += len;
            if (dist >= len) {
                memcpy(d, s, len);
            } else if (dist == 1) {
                memset(d, *s, len);
            } else {
                while (len--) *d++ = *s++;
            }
        }
    }
    NN__INF_SAVE();
    return NN_OK;
}
#undef NN__INF_SAVE

/* Inflate the raw deflate stream at z->in[z->pos...], appending to z->out. */
static nn_status nn__inflate(nn__inflater *z) {
    unsigned final, type;
    nn_status st;
    z->bits = 0;
    z->nbits = 0;
    do {
        if (z->nbits < 3 && !nn__inf_refill(z)) return nn__inf_truncated(z);
        final = nn__inf_take(z, 1);
        type = nn__inf_take(z, 2);
        if (type == 0) {
            st = nn__inf_stored(z);
        } else if (type == 3) {
            st = nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid block type 3 at byte %zu",
                           nn__inf_offset(z));
        } else {
            st = type == 1 ? nn__inf_fixed_tables(z) : nn__inf_dynamic_tables(z);
            if (st == NN_OK) st = nn__inf_codes(z);
        }
        /* A symbol decoded from the zero padding can look invalid before the
           next refill notices the end: report the real cause. */
        if (st == NN_ERR_FORMAT && nn__inf_overrun(z)) return nn__inf_truncated(z);
        if (st != NN_OK) return st;
    } while (!final);
    /* Give back the whole unread bytes; the check catches consumed padding. */
    z->pos -= z->nbits / 8;
    z->bits = 0;
    z->nbits = 0;
    if (z->pos > z->in_size) return nn__inf_truncated(z);
    return NN_OK;
}

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), slicing by 8. */
static uint32_t nn__crc32(const unsigned char *p, size_t n) {
    uint32_t t[8][256], crc = 0xffffffffu;
    int i, k;
    for (i = 0; i < 256; i++) {
        uint32_t c = (uint32_t)i;
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        t[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xffu];
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu] ^ t[5][(lo >> 16) & 0xffu] ^
              t[4][lo >> 24] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    while (n--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xffu];
    return crc ^ 0xffffffffu;
}

static uint32_t nn__le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One gzip member starting at in[pos]: header, deflate data, trailer. */
static nn_status nn__gunzip_member(nn__inflater *z, size_t *pos) {
    const unsigned char *in = z->in;
    size_t n = z->in_size, p = *pos, start = z->out_size;
    unsigned flg;
    nn_status st;
    if (n - p < 10) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
    if (in[p] != 0x1f || in[p + 1] != 0x8b)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: not a gzip stream (magic %02x %02x at byte "
                         "%zu)", in[p], in[p + 1], p);
    if (in[p + 2] != 8)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: unknown compression method %u", in[p + 2]);
    flg = in[p + 3];
    if (flg & 0xe0u)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: reserved header flags 0x%02x set", flg);
    p += 10;
    if (flg & 4u) { /* FEXTRA: 2-byte length, then that many bytes */
        size_t xlen;
        if (n - p < 2) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        xlen = (size_t)in[p] | (size_t)in[p + 1] << 8;
        p += 2;
        if (n - p < xlen) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        p += xlen;
    }
    if (flg & 8u) { /* FNAME, zero-terminated */
        while (p < n && in[p]) p++;
        if (p == n) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        p++;
    }
    if (flg & 16u) { /* FCOMMENT, zero-terminated */
        while (p < n && in[p]) p++;
        if (p == n) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        p++;
    }
    if (flg & 2u) { /* FHCRC: low 16 bits of the CRC-32 of the header so far */
        if (n - p < 2) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        if ((nn__crc32(in + *pos, p - *pos) & 0xffffu) != ((unsigned)in[p] | (unsigned)in[p + 1] << 8))
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: header CRC mismatch");
        p += 2;
    }
    /* Inflate on the input after the header; offsets in messages stay global. */
    z->in = in + p;
    z->in_size = n - p;
    z->base = p;
    z->pos = 0;
    st = nn__inflate(z);
    p += z->pos;
    z->in = in;
    z->in_size = n;
    z->base = 0;
    if (st != NN_OK) return st;
    if (n - p < 8) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated stream at byte %zu "
                                    "(missing CRC/size trailer)", n);
    /* (z->out is NULL while nothing has been written: no pointer arithmetic on it.) */
    if ((z->out_size > start ? nn__crc32(z->out + start, z->out_size - start) : 0u) !=
        nn__le32(in + p))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: CRC mismatch (corrupt data)");
    if ((uint32_t)(z->out_size - start) != nn__le32(in + p + 4))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: size mismatch: trailer says %lu bytes, "
                         "decoded %zu", (unsigned long)nn__le32(in + p + 4), z->out_size - start);
    *pos = p + 8;
    return NN_OK;
}

NNDEF nn_status nn_gunzip(const unsigned char *in, size_t in_size,
                          unsigned char **out, size_t *out_size) {
    nn__inflater *z;
    size_t pos = 0, hint;
    nn_status st = NN_OK;
    if (!out || !out_size || (!in && in_size))
        return nn__error(NN_ERR_ARG, "nn_gunzip: NULL argument");
    *out = NULL;
    *out_size = 0;
    z = (nn__inflater *)nn__malloc(sizeof *z); /* ~6 KB of tables: keep off the stack */
    if (!z) return NN_ERR_OOM;
    memset(z, 0, sizeof *z);
    z->in = in;
    z->in_size = in_size;
    /* The trailer's ISIZE (size mod 2^32) sizes the buffer in one go; capped
       by deflate's best ratio (~1032:1) so a forged trailer cannot force a
       huge allocation. */
    if (in_size >= 18) {
        hint = nn__le32(in + in_size - 4);
        if (hint / 1032 <= in_size && (st = nn__inf_grow(z, hint)) != NN_OK) goto fail;
    }
    do {
        if ((st = nn__gunzip_member(z, &pos)) != NN_OK) goto fail;
        /* Concatenated members decode into one output (as gzip -d does); a
           lone 0x1f is the start of a truncated one. */
    } while (in_size - pos >= 1 && in[pos] == 0x1f && (in_size - pos == 1 || in[pos + 1] == 0x8b));
    if (pos != in_size) {
        st = nn__error(NN_ERR_FORMAT, "nn_gunzip: %zu bytes of trailing garbage after byte %zu",
                       in_size - pos, pos);
        goto fail;
    }
    if (z->out_cap > z->out_size + z->out_size / 8 + 64) {
        unsigned char *p = (unsigned char *)NN_REALLOC(z->out, z->out_size ? z->out_size : 1);
        if (p) z->out = p;
    }
    if (!z->out) { /* empty output: still hand back a buffer the caller can free */
        z->out = (unsigned char *)nn__malloc(1);
        if (!z->out) { st = NN_ERR_OOM; goto fail; }
    }
    *out = z->out;
    *out_size = z->out_size;
    nn__free(z);
    return NN_OK;
fail:
    nn__free(z->out);
    nn__free(z);
    return st;
}

/* --- IDX files ----------------------------------------------------------- */

static int nn__idx_elem_size(int type) {
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
    }
}

/* Read a whole file into a new buffer. */
static nn_status nn__read_file(const char *path, const char *who, unsigned char **buf,
                               size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL, *nb;
    size_t n = 0, cap = 0, got;
    *buf = NULL;
    *size = 0;
    if (!f) return nn__error(NN_ERR_IO, "%s: %s: cannot open (%s)", who, path, strerror(errno));
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : (size_t)1 << 16;
            if (ncap < cap) { nn__free(b); fclose(f); return nn__error(NN_ERR_OOM, "%s: %s: file too large", who, path); }
            nb = (unsigned char *)NN_REALLOC(b, ncap);
            if (!nb) {
                nn__free(b);
                fclose(f);
                return nn__error(NN_ERR_OOM, "%s: %s: out of memory reading file", who, path);
            }
            b = nb;
            cap = ncap;
        }
        got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        nn__free(b);
        fclose(f);
        return nn__error(NN_ERR_IO, "%s: %s: read error", who, path);
    }
    fclose(f);
    *buf = b;
    *size = n;
    return NN_OK;
}

/* Parse an IDX image in buf (taking ownership of buf, which must come from
   NN_MALLOC/NN_REALLOC: it becomes out->data or is freed).  name is for messages. */
static nn_status nn__idx_parse(const char *name, unsigned char *buf, size_t size, nn_idx *out) {
    size_t count = 1, bytes, header;
    int i, esize, type, ndim;
    nn_status st;
    memset(out, 0, sizeof *out);
    if (size >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        unsigned char *raw;
        size_t raw_size;
        st = nn_gunzip(buf, size, &raw, &raw_size);
        nn__free(buf);
        if (st != NN_OK) {
            char msg[sizeof nn__errbuf];
            memcpy(msg, nn__errbuf, sizeof msg);
            return nn__error(st, "nn_idx_read: %s: %s", name, msg);
        }
        buf = raw;
        size = raw_size;
    }
    if (size < 4) {
        nn__free(buf);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: truncated: %zu bytes, no IDX header",
                         name, size);
    }
    type = buf[2];
    ndim = buf[3];
    esize = nn__idx_elem_size(type);
    if (buf[0] != 0 || buf[1] != 0 || !esize || ndim < 1 || ndim > NN_MAX_DIMS) {
        uint32_t magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                         (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
        nn__free(buf);
        if (magic >> 16)
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: wrong magic 0x%08lx (not an IDX "
                             "file)", name, (unsigned long)magic);
        if (!esize)
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: wrong magic 0x%08lx (unknown "
                             "element type 0x%02x)", name, (unsigned long)magic, type);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: wrong magic 0x%08lx (%d dimensions; "
                         "1..%d supported)", name, (unsigned long)magic, ndim, NN_MAX_DIMS);
    }
    header = 4 + 4 * (size_t)ndim;
    if (size < header) {
        nn__free(buf);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: truncated: header needs %zu bytes, "
                         "file has %zu", name, header, size);
    }
    for (i = 0; i < ndim; i++) {
        const unsigned char *p = buf + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > 0x7fffffffu || (d && count > ((size_t)-1 / (size_t)esize) / d)) {
            nn__free(buf);
            memset(out, 0, sizeof *out);
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: dimensions too large (dim %d is "
                             "%lu)", name, i, (unsigned long)d);
        }
        out->dims[i] = (int)d;
        count *= d;
    }
    bytes = count * (size_t)esize;
    if (size - header != bytes) {
        nn__free(buf);
        memset(out, 0, sizeof *out);
        if (size - header < bytes)
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: truncated: expected %zu bytes of "
                             "data, found %zu", name, bytes, size - header);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: %zu bytes of trailing garbage after "
                         "%zu bytes of data", name, size - header - bytes, bytes);
    }
    memmove(buf, buf + header, bytes);
    if (esize > 1) { /* big-endian to host order */
        const uint16_t one = 1;
        unsigned char little;
        memcpy(&little, &one, 1);
        if (little) {
            size_t e;
            for (e = 0; e < count; e++) {
                unsigned char *p = buf + e * (size_t)esize;
                int a = 0, b = esize - 1;
                for (; a < b; a++, b--) {
                    unsigned char t = p[a];
                    p[a] = p[b];
                    p[b] = t;
                }
            }
        }
    }
    out->type = type;
    out->ndim = ndim;
    out->count = count;
    out->data = buf;
    return NN_OK;
}

NNDEF nn_status nn_idx_read(const char *path, nn_idx *out) {
    unsigned char *buf;
    size_t size;
    nn_status st;
    if (!out) return nn__error(NN_ERR_ARG, "nn_idx_read: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return nn__error(NN_ERR_ARG, "nn_idx_read: NULL path");
    if ((st = nn__read_file(path, "nn_idx_read", &buf, &size)) != NN_OK) return st;
    return nn__idx_parse(path, buf, size, out);
}

NNDEF void nn_idx_free(nn_idx *idx) {
    if (!idx) return;
    nn__free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* --- datasets ------------------------------------------------------------ */

/* <dir>/<name>.gz if it can be opened, else <dir>/<name>; a new string. */
static nn_status nn__mnist_path(const char *dir, const char *name, char **path) {
    size_t n = strlen(dir) + strlen(name) + 5;
    FILE *f;
    char *p = (char *)nn__malloc(n);
    *path = p;
    if (!p) return NN_ERR_OOM;
    sprintf(p, "%s/%s.gz", dir, name);
    if ((f = fopen(p, "rb")) != NULL) {
        fclose(f);
        return NN_OK;
    }
    sprintf(p, "%s/%s", dir, name);
    if ((f = fopen(p, "rb")) != NULL) {
        fclose(f);
        return NN_OK;
    }
    nn__error(NN_ERR_IO, "nn_mnist_load: cannot open %s.gz or %s (%s)", p, p, strerror(errno));
    nn__free(p);
    *path = NULL;
    return NN_ERR_IO;
}

NNDEF nn_status nn_mnist_load(const char *dir, int train, nn_dataset *out) {
    const char *prefix = train ? "train" : "t10k";
    char name[64], *ipath = NULL, *lpath = NULL;
    nn_idx im, lb;
    nn_status st;
    int i, maxlabel = 0;
    size_t hw;
    if (!out) return nn__error(NN_ERR_ARG, "nn_mnist_load: NULL output");
    memset(out, 0, sizeof *out);
    memset(&im, 0, sizeof im);
    memset(&lb, 0, sizeof lb);
    if (!dir) return nn__error(NN_ERR_ARG, "nn_mnist_load: NULL directory");
    sprintf(name, "%s-images-idx3-ubyte", prefix);
    if ((st = nn__mnist_path(dir, name, &ipath)) != NN_OK) goto done;
    sprintf(name, "%s-labels-idx1-ubyte", prefix);
    if ((st = nn__mnist_path(dir, name, &lpath)) != NN_OK) goto done;
    if ((st = nn_idx_read(ipath, &im)) != NN_OK) goto done;
    if ((st = nn_idx_read(lpath, &lb)) != NN_OK) goto done;
    if (im.type != 0x08 || im.ndim != 3 || im.dims[1] < 1 || im.dims[2] < 1) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s: expected unsigned bytes of shape "
                       "[n,H,W], got type 0x%02x with %d dimensions", ipath, im.type, im.ndim);
        goto done;
    }
    if (lb.type != 0x08 || lb.ndim != 1) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s: expected unsigned bytes of shape "
                       "[n], got type 0x%02x with %d dimensions", lpath, lb.type, lb.ndim);
        goto done;
    }
    if (lb.dims[0] != im.dims[0]) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s has %d images but %s has %d labels",
                       ipath, im.dims[0], lpath, lb.dims[0]);
        goto done;
    }
    hw = (size_t)im.dims[1] * (size_t)im.dims[2];
    if (hw > 0x7fffffff) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s: images of %dx%d are too large", ipath,
                       im.dims[1], im.dims[2]);
        goto done;
    }
    out->y = (int *)nn__calloc((size_t)lb.dims[0], sizeof(int));
    if (!out->y) { st = NN_ERR_OOM; goto done; }
    for (i = 0; i < lb.dims[0]; i++) {
        out->y[i] = lb.data[i];
        if (out->y[i] > maxlabel) maxlabel = out->y[i];
    }
    out->n = im.dims[0];
    out->sample_size = (int)hw;
    out->shape[0] = 1;
    out->shape[1] = im.dims[1];
    out->shape[2] = im.dims[2];
    /* At least 10 so MNIST always has its 10 classes; more for IDX sets with
       more (EMNIST). */
    out->nclasses = maxlabel + 1 > 10 ? maxlabel + 1 : 10;
    out->x = im.data; /* exactly n*H*W bytes, allocated by the reader */
    im.data = NULL;
    st = NN_OK;
done:
    nn_idx_free(&im);
    nn_idx_free(&lb);
    nn__free(ipath);
    nn__free(lpath);
    if (st != NN_OK) nn_dataset_free(out);
    return st;
}

/* A PCG32 stream private to one call, so the global RNG stays untouched. */
typedef struct nn__pcg {
    uint64_t state;
} nn__pcg;

static uint32_t nn__pcg_next(nn__pcg *r) {
    uint64_t old = r->state;
    uint32_t xs, rot;
    r->state = old * 6364136223846793005ULL + 0x14057b7ef767814fULL;
    xs = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    rot = (uint32_t)(old >> 59u);
    return (xs >> rot) | (xs << ((32u - rot) & 31u));
}

static float nn__pcg_uniform(nn__pcg *r) {
    return (float)(nn__pcg_next(r) >> 8) * (1.0f / 16777216.0f);
}

/* Uniform in [lo, hi). */
static float nn__pcg_range(nn__pcg *r, float lo, float hi) {
    return lo + (hi - lo) * nn__pcg_uniform(r);
}

/* Distance from (px,py) to the segment (ax,ay)-(bx,by). */
static float nn__seg_dist(float px, float py, float ax, float ay, float bx, float by) {
    float dx = bx - ax, dy = by - ay, ex = px - ax, ey = py - ay;
    float l2 = dx * dx + dy * dy, t = l2 > 0.0f ? (ex * dx + ey * dy) / l2 : 0.0f;
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    ex -= t * dx;
    ey -= t * dy;
    return sqrtf(ex * ex + ey * ey);
}

/* Class shapes as segments in a unit box [-1,1]^2 (x right, y down); a
   negative segment count marks a ring (circle of radius 0.75). */
static const float nn__synth_segs[10][5][4] = {
    {{-0.8f, 0.0f, 0.8f, 0.0f}},                                        /* 0: horizontal bar */
    {{0.0f, -0.8f, 0.0f, 0.8f}},                                        /* 1: vertical bar */
    {{-0.7f, -0.7f, 0.7f, 0.7f}},                                       /* 2: diagonal \ */
    {{-0.7f, 0.7f, 0.7f, -0.7f}},                                       /* 3: diagonal / */
    {{0}},                                                              /* 4: ring */
    {{-0.8f, 0.0f, 0.8f, 0.0f}, {0.0f, -0.8f, 0.0f, 0.8f}},             /* 5: plus */
    {{-0.7f, -0.7f, 0.7f, 0.7f}, {-0.7f, 0.7f, 0.7f, -0.7f}},           /* 6: X */
    {{-0.8f, -0.4f, 0.8f, -0.4f}, {-0.8f, 0.4f, 0.8f, 0.4f}},           /* 7: = */
    {{-0.6f, -0.8f, -0.6f, 0.7f}, {-0.6f, 0.7f, 0.7f, 0.7f}},           /* 8: L */
    {{0.0f, -0.8f, -0.75f, 0.65f}, {-0.75f, 0.65f, 0.75f, 0.65f},
     {0.75f, 0.65f, 0.0f, -0.8f}}                                       /* 9: triangle */
};
static const int nn__synth_nsegs[10] = {1, 1, 1, 1, -1, 2, 2, 2, 2, 3};

NNDEF nn_status nn_dataset_synthetic(int n, uint64_t seed, nn_dataset *out) {
    nn__pcg rng;
    int i, j;
    if (!out) return nn__error(NN_ERR_ARG, "nn_dataset_synthetic: NULL output");
    memset(out, 0, sizeof *out);
    if (n < 0) return nn__error(NN_ERR_ARG, "nn_dataset_synthetic: n = %d is negative", n);
    rng.state = 0;
    nn__pcg_next(&rng);
    rng.state += seed;
    nn__pcg_next(&rng);
    out->x = (unsigned char *)nn__calloc((size_t)n, 28 * 28);
    out->y = (int *)nn__calloc((size_t)n, sizeof(int));
    if (!out->x || !out->y) {
        nn_dataset_free(out);
        return NN_ERR_OOM;
    }
    out->n = n;
    out->sample_size = 28 * 28;
    out->shape[0] = 1;
    out->shape[1] = 28;
    out->shape[2] = 28;
    out->nclasses = 10;
    /* Balanced labels in a shuffled order (Fisher-Yates). */
    for (i = 0; i < n; i++) out->y[i] = i % 10;
    for (i = n - 1; i > 0; i--) {
        int k = (int)(((uint64_t)nn__pcg_next(&rng) * (uint64_t)(i + 1)) >> 32), t = out->y[i];
        out->y[i] = out->y[k];
        out->y[k] = t;
    }
    for (i = 0; i < n; i++) {
        int c = out->y[i], x, y, s;
        unsigned char *img = out->x + (size_t)i * 784;
        /* Random placement, size, aspect, rotation, stroke width and ink. */
        float cx = 13.5f + nn__pcg_range(&rng, -3.5f, 3.5f);
        float cy = 13.5f + nn__pcg_range(&rng, -3.5f, 3.5f);
        float scale = nn__pcg_range(&rng, 6.5f, 10.5f);
        float sx = scale * nn__pcg_range(&rng, 0.8f, 1.2f), sy = scale * nn__pcg_range(&rng, 0.8f, 1.2f);
        float ang = nn__pcg_range(&rng, -0.4f, 0.4f), ca = cosf(ang), sa = sinf(ang);
        float width = nn__pcg_range(&rng, 0.9f, 2.2f);
        float ink = nn__pcg_range(&rng, 150.0f, 255.0f);
        float seg[6][4];
        int nseg = nn__synth_nsegs[c];
        for (s = 0; s < nseg; s++)
            for (j = 0; j < 2; j++) {
                float ux = nn__synth_segs[c][s][2 * j] * sx + nn__pcg_range(&rng, -0.8f, 0.8f);
                float uy = nn__synth_segs[c][s][2 * j + 1] * sy + nn__pcg_range(&rng, -0.8f, 0.8f);
                seg[s][2 * j] = cx + ca * ux - sa * uy;
                seg[s][2 * j + 1] = cy + sa * ux + ca * uy;
            }
        /* A distractor: a short random stroke in 60% of the images. */
        if (nn__pcg_uniform(&rng) < 0.6f) {
            float ax = nn__pcg_range(&rng, 2.0f, 25.0f), ay = nn__pcg_range(&rng, 2.0f, 25.0f);
            float da = nn__pcg_range(&rng, 0.0f, 2.0f * NN_PI), dl = nn__pcg_range(&rng, 4.0f, 10.0f);
            s = nseg < 0 ? 0 : nseg;
            seg[s][0] = ax;
            seg[s][1] = ay;
            seg[s][2] = ax + dl * cosf(da);
            seg[s][3] = ay + dl * sinf(da);
            nseg = nseg < 0 ? -2 : nseg + 1;
        }
        for (y = 0; y < 28; y++)
            for (x = 0; x < 28; x++) {
                float px = (float)x, py = (float)y, d = 1e9f, v;
                if (nseg < 0) { /* ring, maybe plus the distractor in seg[0] */
                    float ux = (px - cx) * ca + (py - cy) * sa, uy = -(px - cx) * sa + (py - cy) * ca;
                    float r = sqrtf((ux / sx) * (ux / sx) + (uy / sy) * (uy / sy));
                    d = fabsf(r - 0.75f) * scale;
                }
                for (s = 0; s < (nseg < 0 ? -nseg - 1 : nseg); s++) {
                    float e = nn__seg_dist(px, py, seg[s][0], seg[s][1], seg[s][2], seg[s][3]);
                    if (e < d) d = e;
                }
                /* Anti-aliased stroke, then Gaussian-ish noise (sum of 3 uniforms). */
                v = width + 0.5f - d;
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                v = v * ink + 40.0f * (nn__pcg_uniform(&rng) + nn__pcg_uniform(&rng) +
                                       nn__pcg_uniform(&rng) - 1.5f);
                img[y * 28 + x] = (unsigned char)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v + 0.5f);
            }
    }
    return NN_OK;
}

NNDEF void nn_dataset_free(nn_dataset *ds) {
    if (!ds) return;
    nn__free(ds->x);
    nn__free(ds->y);
    memset(ds, 0, sizeof *ds);
}
