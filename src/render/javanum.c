#include "render/javanum.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* JDK 17's digit generation (sun.misc/jdk.internal.math FloatingDecimal, unchanged from JDK 1.4
 * to 18) in outline:
 *
 * - An integer value below 2^63 whose bits all sit left of the binary point is printed from its
 *   exact integer digits, less "insignificant" low digits: with 2^k the weight of the lowest
 *   mantissa bit (k = binExp - significant bits - 1), floor(log10(2^k)) digits are rounded off
 *   half-up. That is why 2^31 as a float prints 2.14748365E9.
 * - Everything else runs Steele & White's digit loop on B / S (the value scaled so the quotient
 *   is in [1, 10)) with M half an ulp on the same scale: digits are produced until the remainder
 *   is within M of either end, then the last digit is rounded up when the remainder is past half.
 *   The ulp is taken as symmetric (halved at exact powers of two), the decimal exponent comes
 *   from a floating-point estimate of log10 that may be one too high (a leading 0 is dropped),
 *   and values printed in E-notation always get a second digit. The loop runs in 32-bit, 64-bit
 *   or big-integer arithmetic depending on the sizes; Java's int and long wrap around, and the
 *   "end reached" test is strict in the first two but not in the third; both are reproduced
 *   rather than assumed harmless.
 * - Rounding up propagates carries and keeps the zeros it leaves ("1.2999" -> "1.3000" stays
 *   five digits, printed as such).
 *
 * The JDK 19+ algorithm (Raffaello Giulietti's, always shortest) differs from this for about 3
 * in 1000 random doubles, mostly integers between 1e16 and 1e19, subnormals, and a few values
 * such as 1e23. Checked against a Java 17 JVM on 1.3 million values (tests/data/gen_javanum.py
 * keeps 5000 of them). */

#define DIGITS_CAP 32

typedef struct fdec {
    char digits[DIGITS_CAP];
    int first, n;
    int dec_exp; /* value = 0.d1d2... * 10^dec_exp */
} fdec;

static const int64_t pow5_64[27] = {1LL,
                                    5LL,
                                    25LL,
                                    125LL,
                                    625LL,
                                    3125LL,
                                    15625LL,
                                    78125LL,
                                    390625LL,
                                    1953125LL,
                                    9765625LL,
                                    48828125LL,
                                    244140625LL,
                                    1220703125LL,
                                    6103515625LL,
                                    30517578125LL,
                                    152587890625LL,
                                    762939453125LL,
                                    3814697265625LL,
                                    19073486328125LL,
                                    95367431640625LL,
                                    476837158203125LL,
                                    2384185791015625LL,
                                    11920928955078125LL,
                                    59604644775390625LL,
                                    298023223876953125LL,
                                    1490116119384765625LL};

/* ceil(log2(5^i)), as the JDK approximates it to pick 32-bit, 64-bit or big arithmetic. */
static const int n5bits[27] = {0,  3,  5,  7,  10, 12, 14, 17, 19, 21, 24, 26, 28, 31,
                               33, 35, 38, 40, 42, 45, 47, 49, 52, 54, 56, 59, 61};

/* floor(log10(2^k)) for k < 64, the digits the integer path drops. */
static int insignificant_for_pow2(int k) {
    if (k <= 1 || k >= 64) return 0;
    static const int t[64] = {0,  0,  0,  0,  1,  1,  1,  2,  2,  2,  3,  3,  3,  3,  4,  4,
                              4,  5,  5,  5,  6,  6,  6,  6,  7,  7,  7,  8,  8,  8,  9,  9,
                              9,  9,  10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14,
                              14, 14, 15, 15, 15, 15, 16, 16, 16, 17, 17, 17, 18, 18, 18, 19};
    return t[k];
}

/* Java's int and long arithmetic: two's complement, wrapping, shift counts masked. */
static int32_t j32_mul(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a * (uint32_t)b);
}
static int32_t j32_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}
static int32_t j32_sub(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a - (uint32_t)b);
}
static int32_t j32_shl(int32_t a, int s) {
    return (int32_t)((uint32_t)a << (s & 31));
}
static int64_t j64_mul(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a * (uint64_t)b);
}
static int64_t j64_add(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
static int64_t j64_sub(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a - (uint64_t)b);
}
static int64_t j64_shl(int64_t a, int s) {
    return (int64_t)((uint64_t)a << (s & 63));
}

/* The integer path: lvalue's decimal digits without trailing zeros, after rounding off
 * `insignificant` low digits half-up. */
static void long_digits(fdec *f, int64_t lvalue, int insignificant) {
    int exp = 0;
    if (insignificant != 0) {
        int64_t p10 = pow5_64[insignificant] << insignificant;
        int64_t residue = lvalue % p10;
        lvalue /= p10;
        exp += insignificant;
        if (residue >= (p10 >> 1)) lvalue++;
    }
    int pos = DIGITS_CAP - 1;
    int c = (int)(lvalue % 10);
    lvalue /= 10;
    while (c == 0) {
        exp++;
        c = (int)(lvalue % 10);
        lvalue /= 10;
    }
    while (lvalue != 0) {
        f->digits[pos--] = (char)('0' + c);
        exp++;
        c = (int)(lvalue % 10);
        lvalue /= 10;
    }
    f->digits[pos] = (char)('0' + c);
    f->dec_exp = exp + 1;
    f->first = pos;
    f->n = DIGITS_CAP - pos;
}

static void round_up(fdec *f) {
    int i = f->first + f->n - 1;
    char q = f->digits[i];
    if (q == '9') {
        while (q == '9' && i > f->first) {
            f->digits[i] = '0';
            q = f->digits[--i];
        }
        if (q == '9') { /* carry out of the first digit: 10...0 */
            f->dec_exp += 1;
            f->digits[f->first] = '1';
            return;
        }
    }
    f->digits[i] = (char)(q + 1);
}

/* floor of the JDK's estimate of log10(value): linear in the mantissa around 1.5. Evaluated in
 * double precision as the JDK does (no fused multiply-add: baseline x86-64 has none, and the
 * separate statements keep the roundings of the Java expression). */
static int estimate_dec_exp(uint64_t fract_bits, int bin_exp) {
    uint64_t bits = ((uint64_t)1023 << 52) | (fract_bits & 0x000FFFFFFFFFFFFFULL);
    double d2;
    memcpy(&d2, &bits, sizeof d2);
    volatile double t = (d2 - 1.5) * 0.289529654;
    t = t + 0.176091259;
    volatile double u = (double)bin_exp * 0.301029995663981;
    double d = t + u;
    int r = (int)d; /* truncation toward zero; adjust to floor */
    if (d < 0 && (double)r != d) r--;
    return r;
}

/* ---- big integers, only as much as the digit loop needs -------------------------------------
 * Little-endian 32-bit limbs; 2^2400 bounds every value (B, S, M, 10S for any double). */

#define BIG_LIMBS 76

typedef struct big {
    uint32_t w[BIG_LIMBS];
    int n; /* limbs in use; no leading zero limbs */
} big;

static void big_trim(big *a) {
    while (a->n > 0 && a->w[a->n - 1] == 0) a->n--;
}

static void big_set_u64(big *a, uint64_t v) {
    a->w[0] = (uint32_t)v;
    a->w[1] = (uint32_t)(v >> 32);
    a->n = 2;
    big_trim(a);
}

static void big_mul_small(big *a, uint32_t m) {
    uint64_t carry = 0;
    for (int i = 0; i < a->n; i++) {
        uint64_t p = (uint64_t)a->w[i] * m + carry;
        a->w[i] = (uint32_t)p;
        carry = p >> 32;
    }
    if (carry && a->n < BIG_LIMBS) a->w[a->n++] = (uint32_t)carry;
}

static void big_mul_pow5(big *a, int e) {
    for (; e >= 13; e -= 13) big_mul_small(a, 1220703125u); /* 5^13 */
    if (e > 0) big_mul_small(a, (uint32_t)pow5_64[e]);
}

static void big_shl(big *a, int s) {
    if (a->n == 0 || s <= 0) return;
    int limbs = s / 32, bits = s % 32;
    int n = a->n + limbs + 1;
    if (n > BIG_LIMBS) n = BIG_LIMBS;
    for (int i = n - 1; i >= 0; i--) {
        int src = i - limbs;
        uint32_t hi = src >= 0 && src < a->n ? a->w[src] : 0;
        uint32_t lo = src - 1 >= 0 && src - 1 < a->n ? a->w[src - 1] : 0;
        a->w[i] = bits ? (hi << bits) | (lo >> (32 - bits)) : hi;
    }
    a->n = n;
    big_trim(a);
}

static int big_cmp(const big *a, const big *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->w[i] != b->w[i]) return a->w[i] < b->w[i] ? -1 : 1;
    return 0;
}

static void big_sub(big *a, const big *b) { /* a >= b */
    int64_t borrow = 0;
    for (int i = 0; i < a->n; i++) {
        int64_t d = (int64_t)a->w[i] - (i < b->n ? b->w[i] : 0) - borrow;
        borrow = d < 0;
        a->w[i] = (uint32_t)(d + (borrow ? ((int64_t)1 << 32) : 0));
    }
    big_trim(a);
}

static void big_add(big *out, const big *a, const big *b) {
    uint64_t carry = 0;
    int n = a->n > b->n ? a->n : b->n;
    for (int i = 0; i < n; i++) {
        uint64_t s = (uint64_t)(i < a->n ? a->w[i] : 0) + (i < b->n ? b->w[i] : 0) + carry;
        out->w[i] = (uint32_t)s;
        carry = s >> 32;
    }
    out->n = n;
    if (carry && n < BIG_LIMBS) out->w[out->n++] = (uint32_t)carry;
}

/* 5^e5 * 2^e2 * m */
static void big_pow52(big *a, uint64_t m, int e5, int e2) {
    big_set_u64(a, m);
    big_mul_pow5(a, e5);
    big_shl(a, e2);
}

/* q = b / s (small), b = 10 * (b mod s). */
static int big_quo_rem(big *b, const big *s) {
    int q = 0;
    while (big_cmp(b, s) >= 0 && q < 100) {
        big_sub(b, s);
        q++;
    }
    big_mul_small(b, 10);
    return q;
}

/* ---- the digit loop ------------------------------------------------------------------------ */

static void dtoa(fdec *f, int bin_exp, uint64_t fract_bits, int n_sig_bits) {
    const int exp_shift = 52;
    int tail_zeros = __builtin_ctzll(fract_bits);
    int n_fract_bits = exp_shift + 1 - tail_zeros;
    int n_tiny_bits = n_fract_bits - bin_exp - 1;
    if (n_tiny_bits < 0) n_tiny_bits = 0;

    if (bin_exp <= 62 && bin_exp >= -21 && n_tiny_bits < 27 &&
        n_fract_bits + n5bits[n_tiny_bits] < 64 && n_tiny_bits == 0) {
        int insignificant =
            bin_exp > n_sig_bits ? insignificant_for_pow2(bin_exp - n_sig_bits - 1) : 0;
        uint64_t v = bin_exp >= exp_shift ? fract_bits << (bin_exp - exp_shift)
                                          : fract_bits >> (exp_shift - bin_exp);
        long_digits(f, (int64_t)v, insignificant);
        return;
    }

    int dec_exp = estimate_dec_exp(fract_bits, bin_exp);
    int b5 = dec_exp < 0 ? -dec_exp : 0;
    int b2 = b5 + n_tiny_bits + bin_exp;
    int s5 = dec_exp > 0 ? dec_exp : 0;
    int s2 = s5 + n_tiny_bits;
    int m5 = b5;
    int m2 = b2 - n_sig_bits;

    fract_bits >>= tail_zeros;
    b2 -= n_fract_bits - 1;
    int common2 = b2 < s2 ? b2 : s2;
    b2 -= common2;
    s2 -= common2;
    m2 -= common2;
    if (n_fract_bits == 1) m2 -= 1; /* a power of two: the ulp below is half as wide */
    if (m2 < 0) {
        b2 -= m2;
        s2 -= m2;
        m2 = 0;
    }

    int nd = 0;
    bool low, high;
    int64_t low_diff = 0;
    int q;
    char *dg = f->digits;
    int b_bits = n_fract_bits + b2 + (b5 < 27 ? n5bits[b5] : b5 * 3);
    int ten_s_bits = s2 + 1 + (s5 + 1 < 27 ? n5bits[s5 + 1] : (s5 + 1) * 3);
    /* E-notation needs two digits, so the first one never ends the loop there. */
#define TWO_DIGITS(e) ((e) < -3 || (e) >= 8)

    if (b_bits < 32 && ten_s_bits < 32) {
        int32_t b = j32_shl(j32_mul((int32_t)fract_bits, (int32_t)pow5_64[b5]), b2);
        int32_t s = j32_shl((int32_t)pow5_64[s5], s2);
        int32_t m = j32_shl((int32_t)pow5_64[m5], m2);
        int32_t tens = j32_mul(s, 10);
        q = b / s;
        b = j32_mul(10, b % s);
        m = j32_mul(m, 10);
        low = b < m;
        high = j32_add(b, m) > tens;
        if (q == 0 && !high)
            dec_exp--;
        else
            dg[nd++] = (char)('0' + q);
        if (TWO_DIGITS(dec_exp)) high = low = false;
        while (!low && !high && nd < DIGITS_CAP) {
            q = b / s;
            b = j32_mul(10, b % s);
            m = j32_mul(m, 10);
            if (m > 0) {
                low = b < m;
                high = j32_add(b, m) > tens;
            } else { /* m wrapped: the JDK takes both ends as reached */
                low = high = true;
            }
            dg[nd++] = (char)('0' + q);
        }
        low_diff = j32_sub(j32_shl(b, 1), tens);
    } else if (b_bits < 64 && ten_s_bits < 64) {
        int64_t b = j64_shl(j64_mul((int64_t)fract_bits, pow5_64[b5]), b2);
        int64_t s = j64_shl(pow5_64[s5], s2);
        int64_t m = j64_shl(pow5_64[m5], m2);
        int64_t tens = j64_mul(s, 10);
        q = (int)(b / s);
        b = j64_mul(10, b % s);
        m = j64_mul(m, 10);
        low = b < m;
        high = j64_add(b, m) > tens;
        if (q == 0 && !high)
            dec_exp--;
        else
            dg[nd++] = (char)('0' + q);
        if (TWO_DIGITS(dec_exp)) high = low = false;
        while (!low && !high && nd < DIGITS_CAP) {
            q = (int)(b / s);
            b = j64_mul(10, b % s);
            m = j64_mul(m, 10);
            if (m > 0) {
                low = b < m;
                high = j64_add(b, m) > tens;
            } else {
                low = high = true;
            }
            dg[nd++] = (char)('0' + q);
        }
        low_diff = j64_sub(j64_shl(b, 1), tens);
    } else {
        /* The JDK normalises S by a power of two first, which scales every quantity alike and
         * so changes no comparison: left out. */
        big bb, s, m, tens, sum;
        big_pow52(&s, 1, s5, s2);
        big_pow52(&bb, fract_bits, b5, b2);
        big_pow52(&m, 1, m5 + 1, m2 + 1); /* 10 M */
        big_pow52(&tens, 1, s5 + 1, s2 + 1);
        q = big_quo_rem(&bb, &s);
        low = big_cmp(&bb, &m) < 0;
        big_add(&sum, &bb, &m);
        high = big_cmp(&tens, &sum) <= 0;
        if (q == 0 && !high)
            dec_exp--;
        else
            dg[nd++] = (char)('0' + q);
        if (TWO_DIGITS(dec_exp)) high = low = false;
        while (!low && !high && nd < DIGITS_CAP) {
            q = big_quo_rem(&bb, &s);
            big_mul_small(&m, 10);
            low = big_cmp(&bb, &m) < 0;
            big_add(&sum, &bb, &m);
            high = big_cmp(&tens, &sum) <= 0;
            dg[nd++] = (char)('0' + q);
        }
        if (high && low) {
            big_shl(&bb, 1);
            low_diff = big_cmp(&bb, &tens);
        }
    }
#undef TWO_DIGITS
    f->dec_exp = dec_exp + 1;
    f->first = 0;
    f->n = nd;
    if (high) {
        if (!low || low_diff > 0 || (low_diff == 0 && (dg[nd - 1] & 1))) round_up(f);
    }
}

/* Java's layout: plain for 10^-3 <= |v| < 10^7, else d.dddE[-]x; at least one fractional digit;
 * the digits are printed as they came, zeros from rounding included. */
static size_t layout(const fdec *f, bool neg, char *buf) {
    size_t i = 0;
    const char *d = f->digits + f->first;
    int n = f->n, e = f->dec_exp;
    if (neg) buf[i++] = '-';
    if (e > 0 && e < 8) {
        int lead = n < e ? n : e;
        memcpy(buf + i, d, (size_t)lead);
        i += (size_t)lead;
        if (lead < e) {
            for (int k = lead; k < e; k++) buf[i++] = '0';
            buf[i++] = '.';
            buf[i++] = '0';
        } else {
            buf[i++] = '.';
            if (lead < n) {
                memcpy(buf + i, d + lead, (size_t)(n - lead));
                i += (size_t)(n - lead);
            } else {
                buf[i++] = '0';
            }
        }
    } else if (e <= 0 && e > -3) {
        buf[i++] = '0';
        buf[i++] = '.';
        for (int k = e; k < 0; k++) buf[i++] = '0';
        memcpy(buf + i, d, (size_t)n);
        i += (size_t)n;
    } else {
        buf[i++] = d[0];
        buf[i++] = '.';
        if (n > 1) {
            memcpy(buf + i, d + 1, (size_t)(n - 1));
            i += (size_t)(n - 1);
        } else {
            buf[i++] = '0';
        }
        buf[i++] = 'E';
        int x = e - 1;
        if (e <= 0) {
            buf[i++] = '-';
            x = -e + 1;
        }
        if (x >= 100) buf[i++] = (char)('0' + x / 100);
        if (x >= 10) buf[i++] = (char)('0' + x / 10 % 10);
        buf[i++] = (char)('0' + x % 10);
    }
    buf[i] = '\0';
    return i;
}

static size_t special(const char *s, char *buf) {
    size_t n = strlen(s);
    memcpy(buf, s, n + 1);
    return n;
}

/* bin_exp unbiased; fract_bits with the leading one at bit 52. */
static size_t convert(bool neg, int bin_exp, uint64_t fract_bits, int n_sig_bits, char *buf) {
    fdec f;
    dtoa(&f, bin_exp, fract_bits, n_sig_bits);
    /* 20 digits at most in practice; the cap keeps a pathological input inside buf. */
    if (f.n > 20) f.n = 20;
    return layout(&f, neg, buf);
}

size_t kl_javanum_double(double v, char buf[KL_JAVANUM_LEN]) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 63;
    uint64_t fract = bits & 0x000FFFFFFFFFFFFFULL;
    int bin_exp = (int)((bits >> 52) & 0x7FF);
    if (bin_exp == 0x7FF) return special(fract ? "NaN" : neg ? "-Infinity" : "Infinity", buf);
    int n_sig;
    if (bin_exp == 0) {
        if (fract == 0) return special(neg ? "-0.0" : "0.0", buf);
        int lz = __builtin_clzll(fract);
        int shift = lz - 11;
        fract <<= shift;
        bin_exp = 1 - shift;
        n_sig = 64 - lz;
    } else {
        fract |= (uint64_t)1 << 52;
        n_sig = 53;
    }
    return convert(neg, bin_exp - 1023, fract, n_sig, buf);
}

size_t kl_javanum_float(float v, char buf[KL_JAVANUM_LEN]) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 31;
    uint32_t fract = bits & 0x007FFFFFu;
    int bin_exp = (int)((bits >> 23) & 0xFF);
    if (bin_exp == 0xFF) return special(fract ? "NaN" : neg ? "-Infinity" : "Infinity", buf);
    int n_sig;
    if (bin_exp == 0) {
        if (fract == 0) return special(neg ? "-0.0" : "0.0", buf);
        int lz = __builtin_clz(fract);
        int shift = lz - 8;
        fract <<= shift;
        bin_exp = 1 - shift;
        n_sig = 32 - lz;
    } else {
        fract |= 1u << 23;
        n_sig = 24;
    }
    return convert(neg, bin_exp - 127, (uint64_t)fract << 29, n_sig, buf);
}
