/* mpconnect._speedups: the usual event's JSON line, built in one pass.
 *
 * event_line(event, token, latest, key_mode) takes an mpconnect.Event whose fields are
 * all of the common, valid kind (plain str/int/bool/None properties, an integer time in
 * range, an ordinary distinct_id and an object_id or a well-formed insert_id) and returns
 * (line, key): the bytes orjson.dumps(event.to_mixpanel(token, latest)) gives, and the
 * duplicate key DuplicateCounter.key gives for it. For anything else it returns None and
 * the engine takes the Python path (Event.to_mixpanel), which checks, converts and
 * names the field of a bad value. So this module decides nothing: it only skips the
 * Python work for records that path would pass unchanged; the tests hold the two equal.
 *
 * The $insert_id is BLAKE2b-128 of "<object_id>\x1f<name>" (RFC 7693), as
 * mpconnect.record_values.make_insert_id computes it with hashlib.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ BLAKE2b-128 */

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
#endif
}

#define G(a, b, c, d, x, y)            \
    do {                               \
        v[a] = v[a] + v[b] + (x);      \
        v[d] = rotr64(v[d] ^ v[a], 32); \
        v[c] = v[c] + v[d];            \
        v[b] = rotr64(v[b] ^ v[c], 24); \
        v[a] = v[a] + v[b] + (y);      \
        v[d] = rotr64(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];            \
        v[b] = rotr64(v[b] ^ v[c], 63); \
    } while (0)

static void blake2b_compress(uint64_t h[8], const uint8_t block[128], uint64_t counter, int last)
{
    uint64_t v[16], m[16];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= counter; /* inputs here are far under 2**64 bytes: the high word stays 0 */
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = blake2b_sigma[r];
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* The 16-byte digest of the concatenation of two byte strings (unkeyed BLAKE2b). */
static void blake2b_128(const uint8_t *a, Py_ssize_t alen, const uint8_t *b, Py_ssize_t blen,
                        uint8_t out[16])
{
    uint64_t h[8];
    uint8_t block[128];
    Py_ssize_t filled = 0;
    uint64_t counter = 0;
    memcpy(h, blake2b_iv, sizeof h);
    h[0] ^= 0x01010000ULL ^ 16; /* fanout 1, depth 1, no key, 16-byte digest */
    const uint8_t *parts[2] = {a, b};
    Py_ssize_t lens[2] = {alen, blen};
    for (int p = 0; p < 2; p++) {
        const uint8_t *src = parts[p];
        Py_ssize_t left = lens[p];
        while (left > 0) {
            if (filled == 128) {
                /* a full block is compressed only once more input follows it */
                counter += 128;
                blake2b_compress(h, block, counter, 0);
                filled = 0;
            }
            Py_ssize_t take = 128 - filled < left ? 128 - filled : left;
            memcpy(block + filled, src, (size_t)take);
            filled += take;
            src += take;
            left -= take;
        }
    }
    memset(block + filled, 0, (size_t)(128 - filled));
    counter += (uint64_t)filled;
    blake2b_compress(h, block, counter, 1);
    for (int i = 0; i < 16; i++) out[i] = (uint8_t)(h[i / 8] >> (8 * (i % 8)));
}

/* ------------------------------------------------------------------ output buffer */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char inline_space[2048];
} Out;

static void out_init(Out *out)
{
    out->data = out->inline_space;
    out->len = 0;
    out->cap = (Py_ssize_t)sizeof out->inline_space;
}

static void out_free(Out *out)
{
    if (out->data != out->inline_space) PyMem_Free(out->data);
}

static int out_reserve(Out *out, Py_ssize_t more)
{
    if (out->len + more <= out->cap) return 0;
    Py_ssize_t cap = out->cap;
    while (cap < out->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) return -1;
        cap *= 2;
    }
    char *grown = PyMem_Malloc((size_t)cap);
    if (grown == NULL) return -1;
    memcpy(grown, out->data, (size_t)out->len);
    out_free(out);
    out->data = grown;
    out->cap = cap;
    return 0;
}

static inline int out_raw(Out *out, const char *text, Py_ssize_t len)
{
    if (out_reserve(out, len) < 0) return -1;
    memcpy(out->data + out->len, text, (size_t)len);
    out->len += len;
    return 0;
}

#define OUT_LITERAL(out, text) out_raw((out), (text), (Py_ssize_t)(sizeof(text) - 1))

/* Bytes a JSON string escapes: the control characters, '"' and '\\'. */
static const uint8_t escaped[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* Whether none of eight bytes needs escaping: no byte under 0x20, no '"', no '\\'
 * (each test is the exact "some byte is zero / under n" bit trick). */
static inline int chunk_is_plain(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    uint64_t found = ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) |
                     ((backslash - ones) & ~backslash);
    return (found & highs) == 0;
}

/* A str as a JSON string, escaped as orjson escapes it: ", \ and control characters
 * (\b \t \n \f \r, others as \u00xx); everything else as UTF-8. -1 for a str with
 * no UTF-8 form (a lone surrogate), which orjson refuses too. */
static int out_string(Out *out, PyObject *text)
{
    const char *bytes;
    Py_ssize_t size;
    if (PyUnicode_IS_ASCII(text)) {
        bytes = (const char *)PyUnicode_DATA(text);
        size = PyUnicode_GET_LENGTH(text);
    }
    else {
        bytes = PyUnicode_AsUTF8AndSize(text, &size);
        if (bytes == NULL) return -1;
    }
    /* at worst 6 bytes per byte (\u00xx), and the quotes */
    if (size > (PY_SSIZE_T_MAX - 2) / 6 || out_reserve(out, 6 * size + 2) < 0) return -1;
    char *w = out->data + out->len;
    *w++ = '"';
    Py_ssize_t run = 0, i = 0;
    while (i < size) {
        /* eight bytes at a time while none needs escaping, then byte by byte */
        uint64_t chunk;
        while (i + 8 <= size && (memcpy(&chunk, bytes + i, 8), chunk_is_plain(chunk))) i += 8;
        Py_ssize_t stop = i + 8 < size ? i + 8 : size;
        for (; i < stop; i++) {
            unsigned char c = (unsigned char)bytes[i];
            if (!escaped[c]) continue;
            memcpy(w, bytes + run, (size_t)(i - run));
            w += i - run;
            run = i + 1;
            *w++ = '\\';
            switch (c) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '\b': *w++ = 'b'; break;
            case '\t': *w++ = 't'; break;
            case '\n': *w++ = 'n'; break;
            case '\f': *w++ = 'f'; break;
            case '\r': *w++ = 'r'; break;
            default:
                *w++ = 'u';
                *w++ = '0';
                *w++ = '0';
                *w++ = "0123456789abcdef"[c >> 4];
                *w++ = "0123456789abcdef"[c & 15];
            }
        }
    }
    memcpy(w, bytes + run, (size_t)(size - run));
    w += size - run;
    *w++ = '"';
    out->len = w - out->data;
    return 0;
}

static int out_unsigned(Out *out, unsigned long long value, int negative)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    if (out_reserve(out, n + 1) < 0) return -1;
    if (negative) out->data[out->len++] = '-';
    while (n) out->data[out->len++] = digits[--n];
    return 0;
}

/* An exact int within orjson's range (-2**63 .. 2**64-1); -1 otherwise. */
static int out_int(Out *out, PyObject *number)
{
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (overflow == 0) {
        if (value < 0) return out_unsigned(out, 0ULL - (unsigned long long)value, 1);
        return out_unsigned(out, (unsigned long long)value, 0);
    }
    if (overflow < 0) return -1;
    unsigned long long big = PyLong_AsUnsignedLongLong(number);
    if (big == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    return out_unsigned(out, big, 0);
}

/* ------------------------------------------------------------------ the checks */

static PyObject *str_name, *str_distinct_id, *str_time, *str_object_id, *str_properties,
    *str_insert_id, *str_unattributed;

#define MAX_OWN_PROPERTIES 250 /* mpconnect.record_values.MAX_OWN_PROPERTIES */
#define MIN_EVENT_TIME 31536000LL /* mpconnect.record_values.MIN_EVENT_TIME */

/* Placeholder ids that an explicit insert_id of [A-Za-z0-9-]{1,36} could be, compared in
 * lower case (mpconnect.record_values.PLACEHOLDER_DISTINCT_IDS; a test holds them equal). */
static const char *const insert_id_placeholders[] = {
    "00000000-0000-0000-0000-000000000000", "anon", "anonymous", "nil", "none", "null", "na",
    "undefined", "unknown", "0", "-1", "true", "false", "lmy47d", NULL,
};

static int is_reserved_key(PyObject *key)
{
    if (!PyUnicode_IS_ASCII(key)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    const char *k = (const char *)PyUnicode_DATA(key);
    switch (n) {
    case 4: return memcmp(k, "time", 4) == 0;
    case 5: return memcmp(k, "token", 5) == 0;
    case 10: return memcmp(k, "$insert_id", 10) == 0;
    case 11: return memcmp(k, "distinct_id", 11) == 0;
    default: return 0;
    }
}

/* A non-empty name that is not all white space (Event.to_mixpanel's rule). */
static int name_is_plain(PyObject *name)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    int kind = PyUnicode_KIND(name);
    const void *data = PyUnicode_DATA(name);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) return 1;
    }
    return 0;
}

/* The distinct_id the Python path passes through unchanged: longer than every
 * placeholder, not starting with "0", no white space at either end. */
static int distinct_id_is_plain(PyObject *id)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(id);
    if (n <= 9) return 0;
    int kind = PyUnicode_KIND(id);
    const void *data = PyUnicode_DATA(id);
    Py_UCS4 first = PyUnicode_READ(kind, data, 0);
    Py_UCS4 last = PyUnicode_READ(kind, data, n - 1);
    return first != '0' && !Py_UNICODE_ISSPACE(first) && !Py_UNICODE_ISSPACE(last);
}

/* An explicit insert_id Mixpanel takes: 1 to 36 ASCII letters, digits or '-', and no
 * placeholder. Writes it into out36 and returns its length, or 0. */
static Py_ssize_t explicit_insert_id(PyObject *id, char out36[36])
{
    if (!PyUnicode_IS_ASCII(id)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(id);
    if (n < 1 || n > 36) return 0;
    const char *text = (const char *)PyUnicode_DATA(id);
    char lower[37];
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = text[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-';
        if (!ok) return 0;
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    lower[n] = 0;
    for (int p = 0; insert_id_placeholders[p] != NULL; p++) {
        if (strcmp(lower, insert_id_placeholders[p]) == 0) return 0;
    }
    memcpy(out36, text, (size_t)n);
    return n;
}

/* Writes the made $insert_id (a UUID-shaped hex BLAKE2b-128) into out36; -1 when an id
 * has no UTF-8 form (the Python path hashes it with "surrogatepass"). */
static int made_insert_id(PyObject *object_id, PyObject *name, char out36[36])
{
    Py_ssize_t id_len, name_len;
    const char *id_bytes = PyUnicode_AsUTF8AndSize(object_id, &id_len);
    if (id_bytes == NULL) return -1;
    const char *name_bytes = PyUnicode_AsUTF8AndSize(name, &name_len);
    if (name_bytes == NULL) return -1;
    /* "<object_id>\x1f<name>": the separator is hashed with the id */
    uint8_t small[256];
    uint8_t *joined = small;
    if (id_len + 1 > (Py_ssize_t)sizeof small) {
        joined = PyMem_Malloc((size_t)id_len + 1);
        if (joined == NULL) return -1;
    }
    memcpy(joined, id_bytes, (size_t)id_len);
    joined[id_len] = 0x1f;
    uint8_t digest[16];
    blake2b_128(joined, id_len + 1, (const uint8_t *)name_bytes, name_len, digest);
    if (joined != small) PyMem_Free(joined);
    static const char hex[] = "0123456789abcdef";
    int w = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out36[w++] = '-';
        out36[w++] = hex[digest[i] >> 4];
        out36[w++] = hex[digest[i] & 15];
    }
    return 0;
}

static int out_value(Out *out, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type) return out_string(out, value);
    if (type == &PyLong_Type) return out_int(out, value);
    if (value == Py_True) return OUT_LITERAL(out, "true");
    if (value == Py_False) return OUT_LITERAL(out, "false");
    if (value == Py_None) return OUT_LITERAL(out, "null");
    return -1;
}

/* The properties object without its closing brace: -1 off the common case. */
static int out_properties(Out *out, PyObject *properties)
{
    if (!PyDict_CheckExact(properties) || PyDict_GET_SIZE(properties) > MAX_OWN_PROPERTIES)
        return -1;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(properties, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || is_reserved_key(key)) return -1;
        if (out_string(out, key) < 0 || OUT_LITERAL(out, ":") < 0) return -1;
        if (out_value(out, value) < 0 || OUT_LITERAL(out, ",") < 0) return -1;
    }
    return 0;
}

static PyObject *dedup_key(int key_mode, PyObject *name, PyObject *when, PyObject *distinct_id,
                           const char *insert_id, Py_ssize_t insert_id_len)
{
    if (key_mode == 0) Py_RETURN_NONE;
    PyObject *id = PyUnicode_FromStringAndSize(insert_id, insert_id_len);
    if (id == NULL) return NULL;
    PyObject *hashed;
    if (key_mode == 1) {
        hashed = id;
        Py_INCREF(hashed);
    }
    else {
        PyObject *rest = PyTuple_Pack(3, when, distinct_id, id);
        hashed = rest == NULL ? NULL : PyTuple_Pack(2, name, rest);
        Py_XDECREF(rest);
    }
    Py_DECREF(id);
    if (hashed == NULL) return NULL;
    Py_hash_t hash = PyObject_Hash(hashed);
    Py_DECREF(hashed);
    if (hash == -1) return NULL;
    return PyLong_FromSsize_t(hash);
}

/* Fills out and the insert id, or returns -1 (off the common case; no error set). */
static int build_line(Out *out, PyObject *token, long long latest, PyObject *const fields[],
                      const char insert_id[36], Py_ssize_t insert_id_len)
{
    PyObject *name = fields[0], *distinct_id = fields[1], *when = fields[2];
    PyObject *properties = fields[4];
    if (!PyUnicode_CheckExact(name) || !name_is_plain(name)) return -1;
    if (!PyUnicode_CheckExact(distinct_id) || !distinct_id_is_plain(distinct_id)) return -1;
    if (!PyLong_CheckExact(when)) return -1;
    int overflow = 0;
    long long seconds = PyLong_AsLongLongAndOverflow(when, &overflow);
    if (overflow || (seconds == -1 && PyErr_Occurred())) return -1;
    if (seconds < MIN_EVENT_TIME || seconds > latest) return -1;
    if (OUT_LITERAL(out, "{\"event\":") < 0 || out_string(out, name) < 0) return -1;
    if (OUT_LITERAL(out, ",\"properties\":{") < 0 || out_properties(out, properties) < 0)
        return -1;
    if (OUT_LITERAL(out, "\"distinct_id\":") < 0 || out_string(out, distinct_id) < 0) return -1;
    if (OUT_LITERAL(out, ",\"time\":") < 0 || out_int(out, when) < 0) return -1;
    if (OUT_LITERAL(out, ",\"token\":") < 0 || out_string(out, token) < 0) return -1;
    if (OUT_LITERAL(out, ",\"$insert_id\":\"") < 0) return -1;
    if (out_raw(out, insert_id, insert_id_len) < 0 || OUT_LITERAL(out, "\"}}") < 0) return -1;
    return 0;
}

/* The event's line into out and its duplicate key into *key: 1 when taken, 0 when the
 * Python path must take it (no error set), -1 on an error (memory). */
static PyObject **const field_names[7] = {&str_name,      &str_distinct_id, &str_time,
                                          &str_object_id, &str_properties,  &str_insert_id,
                                          &str_unattributed};

/* The Event class whose fields are read straight from its slots (it is a slots
 * dataclass: each field a member descriptor at a fixed offset), and those offsets. */
static PyObject *slot_type = NULL;
static Py_ssize_t slot_offsets[7];

static void bind_slots(PyObject *type)
{
    if (slot_type != NULL || !PyType_Check(type)) return;
    Py_ssize_t offsets[7];
    for (int i = 0; i < 7; i++) {
        PyObject *descr = PyObject_GetAttr(type, *field_names[i]);
        if (descr == NULL) {
            PyErr_Clear();
            return;
        }
        int is_slot = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                      ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (is_slot) offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!is_slot) return;
    }
    memcpy(slot_offsets, offsets, sizeof offsets);
    Py_INCREF(type);
    slot_type = type;
}

/* The event's line into out and its duplicate key into *key: 1 when taken, 0 when the
 * Python path must take it (no error set), -1 on an error (memory). */
static int take_event(PyObject *event, PyObject *token, long long latest, int key_mode, Out *out,
                      PyObject **key)
{
    PyObject *fields[7] = {NULL};
    int taken = 0;
    char insert_id[36];
    Py_ssize_t insert_id_len;
    int direct = (PyObject *)Py_TYPE(event) == slot_type;
    for (int i = 0; i < 7; i++) {
        if (direct) {
            fields[i] = *(PyObject **)((char *)event + slot_offsets[i]);
            if (fields[i] == NULL) goto done; /* an unset field: the Python path says so */
            Py_INCREF(fields[i]);
            continue;
        }
        fields[i] = PyObject_GetAttr(event, *field_names[i]);
        if (fields[i] == NULL) {
            PyErr_Clear();
            goto done;
        }
    }
    if (fields[6] != Py_False) goto done; /* unattributed: the Python path decides */
    if (fields[5] == Py_None) {
        if (!PyUnicode_CheckExact(fields[3]) || !PyUnicode_CheckExact(fields[0])) goto done;
        if (made_insert_id(fields[3], fields[0], insert_id) < 0) {
            PyErr_Clear();
            goto done;
        }
        insert_id_len = 36;
    }
    else {
        if (!PyUnicode_CheckExact(fields[5])) goto done;
        insert_id_len = explicit_insert_id(fields[5], insert_id);
        if (insert_id_len == 0) goto done;
    }
    if (build_line(out, token, latest, fields, insert_id, insert_id_len) < 0) {
        PyErr_Clear();
        goto done;
    }
    *key = dedup_key(key_mode, fields[0], fields[2], fields[1], insert_id, insert_id_len);
    taken = *key == NULL ? -1 : 1;
done:
    for (int i = 0; i < 7; i++) Py_XDECREF(fields[i]);
    return taken;
}

/* The (latest, key_mode) both entry points take as args[2] and args[3]; -1 on an error. */
static int limits(PyObject *const *args, long long *latest, int *key_mode)
{
    *latest = PyLong_AsLongLong(args[2]);
    if (*latest == -1 && PyErr_Occurred()) return -1;
    long mode = PyLong_AsLong(args[3]);
    if (mode == -1 && PyErr_Occurred()) return -1;
    *key_mode = (int)mode;
    return 0;
}

PyDoc_STRVAR(event_line_doc,
             "event_line(event, token, latest, key_mode)\n--\n\n"
             "The usual event's JSON line and duplicate key, or None off the common case.\n\n"
             "(line, key): line is orjson.dumps(event.to_mixpanel(token, latest)); key is\n"
             "None (key_mode 0), hash of the $insert_id (1) or of (event, (time,\n"
             "distinct_id, $insert_id)) (2), as DuplicateCounter.key computes it.");

static PyObject *event_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "event_line takes 4 arguments");
        return NULL;
    }
    long long latest;
    int key_mode;
    if (limits(args, &latest, &key_mode) < 0) return NULL;
    if (!PyUnicode_CheckExact(args[1])) Py_RETURN_NONE;
    Out out;
    out_init(&out);
    PyObject *key = NULL, *result = NULL;
    int taken = take_event(args[0], args[1], latest, key_mode, &out, &key);
    if (taken == 0) {
        result = Py_None;
        Py_INCREF(result);
    }
    else if (taken == 1) {
        PyObject *line = PyBytes_FromStringAndSize(out.data, out.len);
        result = line == NULL ? NULL : PyTuple_Pack(2, line, key);
        Py_XDECREF(line);
    }
    Py_XDECREF(key);
    out_free(&out);
    return result;
}

/* fill_batch's outcomes (mpconnect.event_lines names them) */
enum { FILL_FULL = 0, FILL_LEFTOVER = 1, FILL_EXHAUSTED = 2, FILL_RAISED = 3 };

static PyObject *fill_result(Py_ssize_t read, Py_ssize_t added, int status, PyObject *item)
{
    PyObject *result = Py_BuildValue("(nniO)", read, added, status, item ? item : Py_None);
    Py_XDECREF(item);
    return result;
}

PyDoc_STRVAR(fill_batch_doc,
             "fill_batch(records, token, latest, key_mode, parts, keys, max_records, room,\n"
             "           max_record_bytes, event_type)\n--\n\n"
             "Append the lines (and keys) of the records the iterator yields to parts (and\n"
             "keys) until the batch holds max_records lines, the next line would not fit\n"
             "in room bytes, a record is not the usual event, or the iterator ends.\n\n"
             "Returns (read, added_bytes, status, item): status 0 the batch is full; 1 item\n"
             "is a record read but not taken (the Python path takes it); 2 the iterator\n"
             "ended; 3 item is the exception the iterator raised.");

static PyObject *fill_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "fill_batch takes 10 arguments");
        return NULL;
    }
    PyObject *records = args[0], *token = args[1], *parts = args[4], *keys = args[5];
    PyObject *event_type = args[9];
    long long latest;
    int key_mode;
    if (limits(args, &latest, &key_mode) < 0) return NULL;
    Py_ssize_t max_records = PyLong_AsSsize_t(args[6]);
    if (max_records == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t room = PyLong_AsSsize_t(args[7]);
    if (room == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t max_record_bytes = PyLong_AsSsize_t(args[8]);
    if (max_record_bytes == -1 && PyErr_Occurred()) return NULL;
    if (!PyIter_Check(records) || !PyList_CheckExact(parts) ||
        (keys != Py_None && !PyList_CheckExact(keys)) || !PyType_Check(event_type) ||
        !PyUnicode_CheckExact(token)) {
        PyErr_SetString(PyExc_TypeError, "fill_batch: an iterator, a str token and lists");
        return NULL;
    }
    bind_slots(event_type);
    Py_ssize_t read = 0, added = 0;
    Out out;
    out_init(&out);
    for (;;) {
        if (PyList_GET_SIZE(parts) >= max_records) {
            out_free(&out);
            return fill_result(read, added, FILL_FULL, NULL);
        }
        PyObject *record = PyIter_Next(records);
        if (record == NULL) {
            out_free(&out);
            if (!PyErr_Occurred()) return fill_result(read, added, FILL_EXHAUSTED, NULL);
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            if (traceback != NULL && value != NULL) PyException_SetTraceback(value, traceback);
            Py_XDECREF(type);
            Py_XDECREF(traceback);
            if (value == NULL) return NULL;
            return fill_result(read, added, FILL_RAISED, value);
        }
        read++;
        if ((PyObject *)Py_TYPE(record) != event_type) {
            out_free(&out);
            return fill_result(read, added, FILL_LEFTOVER, record);
        }
        PyObject *key = NULL;
        out.len = 0;
        int taken = take_event(record, token, latest, key_mode, &out, &key);
        if (taken < 0) {
            Py_DECREF(record);
            out_free(&out);
            return NULL;
        }
        Py_ssize_t size = out.len;
        if (taken == 0 || size >= max_record_bytes ||
            (PyList_GET_SIZE(parts) > 0 && size + 1 > room - added)) {
            Py_XDECREF(key);
            out_free(&out);
            return fill_result(read, added, FILL_LEFTOVER, record);
        }
        Py_DECREF(record);
        PyObject *line = PyBytes_FromStringAndSize(out.data, size);
        int failed = line == NULL || PyList_Append(parts, line) < 0 ||
                     (keys != Py_None && PyList_Append(keys, key) < 0);
        Py_XDECREF(line);
        Py_XDECREF(key);
        if (failed) {
            out_free(&out);
            return NULL;
        }
        added += size + 1;
    }
}

PyDoc_STRVAR(insert_id_doc,
             "make_insert_id(object_id, event_name)\n--\n\n"
             "mpconnect.record_values.make_insert_id for two str with a UTF-8 form.");

static PyObject *make_insert_id(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "make_insert_id takes two str");
        return NULL;
    }
    char id[36];
    if (made_insert_id(args[0], args[1], id) < 0) return NULL;
    return PyUnicode_FromStringAndSize(id, 36);
}

static PyMethodDef methods[] = {
    {"event_line", (PyCFunction)(void (*)(void))event_line, METH_FASTCALL, event_line_doc},
    {"fill_batch", (PyCFunction)(void (*)(void))fill_batch, METH_FASTCALL, fill_batch_doc},
    {"make_insert_id", (PyCFunction)(void (*)(void))make_insert_id, METH_FASTCALL,
     insert_id_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "mpconnect._speedups",
    "The usual event's JSON line in C (see mpconnect.event_lines).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
#define INTERN(var, text)                                   \
    if ((var = PyUnicode_InternFromString(text)) == NULL) { \
        Py_DECREF(module);                                  \
        return NULL;                                        \
    }
    INTERN(str_name, "name");
    INTERN(str_distinct_id, "distinct_id");
    INTERN(str_time, "time");
    INTERN(str_object_id, "object_id");
    INTERN(str_properties, "properties");
    INTERN(str_insert_id, "insert_id");
    INTERN(str_unattributed, "unattributed");
    Py_ssize_t count = 0;
    while (insert_id_placeholders[count] != NULL) count++;
    PyObject *placeholders = PyTuple_New(count);
    if (placeholders == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PyUnicode_FromString(insert_id_placeholders[i]);
        if (text == NULL) {
            Py_DECREF(placeholders);
            Py_DECREF(module);
            return NULL;
        }
        PyTuple_SET_ITEM(placeholders, i, text);
    }
    if (PyModule_AddObject(module, "INSERT_ID_PLACEHOLDERS", placeholders) < 0) {
        Py_DECREF(placeholders);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
