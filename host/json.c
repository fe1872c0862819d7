/* json.c: recursive-descent JSON parser into an arena of nodes.
 *
 * Strict RFC 8259 (no comments, no trailing commas), depth-limited so that a
 * hostile header cannot overflow the stack. */
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define JSON_MAX_DEPTH 64

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
} chunk;


typedef struct parser {
    const char *s;
    size_t len, pos;
    const char *what;
    chunk *chunks;
    fn_status status;
} parser;

static void *arena_alloc(parser *p, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    chunk *c = p->chunks;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof(chunk) + cap);
        if (!c) {
            p->status = fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory parsing JSON", p->what);
            return NULL;
        }
        c->next = p->chunks;
        c->used = 0;
        c->cap = cap;
        p->chunks = c;
    }
    void *r = c->data + c->used;
    c->used += n;
    return r;
}

static void *syntax(parser *p, const char *problem)
{
    if (p->status == FN_OK)
        p->status = fn_fail(FN_ERR_FORMAT, "%s: invalid JSON: %s at byte %zu", p->what, problem, p->pos);
    return NULL;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int hex4(parser *p, unsigned *out)
{
    if (p->pos + 4 > p->len)
        return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    p->pos += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* At an opening quote; returns the unescaped string in the arena. */
static const char *parse_string(parser *p)
{
    p->pos++; /* '"' */
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= p->len)
        return syntax(p, "unterminated string");
    /* Unescaped text is never longer than the escaped text. */
    char *out = arena_alloc(p, end - start + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c < 0x20)
            return syntax(p, "control character in string");
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        char e = p->s[p->pos++];
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(p, &cp))
                return syntax(p, "bad \\u escape");
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (p->pos + 2 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return syntax(p, "unpaired surrogate");
                p->pos += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return syntax(p, "unpaired surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                return syntax(p, "unpaired surrogate");
            }
            if (cp == 0)
                return syntax(p, "NUL in string");
            o += put_utf8(out + o, cp);
            break;
        }
        default:
            return syntax(p, "bad escape");
        }
    }
    out[o] = '\0';
    p->pos = end + 1;
    return out;
}

static json *parse_value(parser *p, int depth);

static json *new_node(parser *p, json_type t)
{
    json *j = arena_alloc(p, sizeof *j);
    if (j) {
        memset(j, 0, sizeof *j);
        j->type = t;
    }
    return j;
}

static json *parse_container(parser *p, int depth, int is_object)
{
    json *node = new_node(p, is_object ? JSON_OBJECT : JSON_ARRAY);
    if (!node)
        return NULL;
    char close = is_object ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return node;
    }
    json **tail = &node->child;
    for (;;) {
        const char *key = NULL;
        skip_ws(p);
        if (is_object) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return syntax(p, "expected a string key");
            if (!(key = parse_string(p)))
                return NULL;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return syntax(p, "expected ':'");
            p->pos++;
        }
        json *v = parse_value(p, depth + 1);
        if (!v)
            return NULL;
        v->key = key;
        *tail = v;
        tail = &v->next;
        node->count++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return node;
        }
        return syntax(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static json *parse_number(parser *p)
{
    size_t start = p->pos;
    const char *s = p->s;
    int integral = 1;
    if (p->pos < p->len && s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len || !isdigit((unsigned char)s[p->pos]))
        return syntax(p, "bad number");
    if (s[p->pos] == '0' && p->pos + 1 < p->len && isdigit((unsigned char)s[p->pos + 1]))
        return syntax(p, "leading zero in number");
    while (p->pos < p->len && isdigit((unsigned char)s[p->pos]))
        p->pos++;
    if (p->pos < p->len && s[p->pos] == '.') {
        integral = 0;
        p->pos++;
        if (p->pos >= p->len || !isdigit((unsigned char)s[p->pos]))
            return syntax(p, "bad number");
        while (p->pos < p->len && isdigit((unsigned char)s[p->pos]))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        integral = 0;
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || !isdigit((unsigned char)s[p->pos]))
            return syntax(p, "bad number");
        while (p->pos < p->len && isdigit((unsigned char)s[p->pos]))
            p->pos++;
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf)
        return syntax(p, "number too long");
    memcpy(buf, s + start, n);
    buf[n] = '\0';
    json *j = new_node(p, JSON_NUMBER);
    if (j) {
        j->number = strtod(buf, NULL);
        j->integral = integral;
    }
    return j;
}

static int match_word(parser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->pos + n <= p->len && memcmp(p->s + p->pos, w, n) == 0) {
        p->pos += n;
        return 1;
    }
    return 0;
}

static json *parse_value(parser *p, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return syntax(p, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->len)
        return syntax(p, "unexpected end");
    char c = p->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, depth, c == '{');
    if (c == '"') {
        const char *str = parse_string(p);
        json *j = str ? new_node(p, JSON_STRING) : NULL;
        if (j)
            j->string = str;
        return j;
    }
    if (c == '-' || isdigit((unsigned char)c))
        return parse_number(p);
    json *j = NULL;
    if (match_word(p, "true")) {
        if ((j = new_node(p, JSON_BOOL)))
            j->number = 1;
    } else if (match_word(p, "false")) {
        j = new_node(p, JSON_BOOL);
    } else if (match_word(p, "null")) {
        j = new_node(p, JSON_NULL);
    } else {
        return syntax(p, "unexpected character");
    }
    return j;
}

/* The root value sits at the start of a holder that also owns the arena, so
 * json_free needs nothing but the root pointer. */
typedef struct json_root {
    json value;
    chunk *chunks;
} json_root;

fn_status json_parse(const char *text, size_t len, const char *what, json **root)
{
    parser p = {text, len, 0, what, NULL, FN_OK};
    *root = NULL;
    json_root *holder = arena_alloc(&p, sizeof *holder);
    json *v = holder ? parse_value(&p, 0) : NULL;
    if (v) {
        skip_ws(&p);
        if (p.pos != p.len)
            v = syntax(&p, "trailing characters");
    }
    if (!v) {
        for (chunk *c = p.chunks, *n; c; c = n) {
            n = c->next;
            free(c);
        }
        return p.status;
    }
    holder->value = *v;
    holder->chunks = p.chunks;
    *root = &holder->value;
    return FN_OK;
}

void json_free(json *root)
{
    if (!root)
        return;
    json_root *holder = (json_root *)root;
    for (chunk *c = holder->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
}

const json *json_get(const json *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    for (const json *c = obj->child; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

const json *json_at(const json *arr, size_t i)
{
    if (!arr || (arr->type != JSON_ARRAY && arr->type != JSON_OBJECT))
        return NULL;
    const json *c = arr->child;
    while (c && i--)
        c = c->next;
    return c;
}

void json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
