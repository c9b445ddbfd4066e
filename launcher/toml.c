/*
 * A small TOML reader for the two documents the launcher reads: <layers>/config/metadata.toml (written by strata's
 * builder) and exec.d output. It parses the whole TOML syntax those can hold (tables, arrays of tables, basic and
 * literal strings including multi-line ones, arrays, inline tables, booleans, numbers, comments) and hands every
 * key/value it meets to a callback, with the array-of-tables path and index it sits under. Values the caller does
 * not want are parsed and dropped, so unknown keys never derail it.
 */
#include "launcher.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    const char *end;
    int line;
    const char *err;
} parser;

static void fail(parser *ps, const char *msg) {
    if (!ps->err) ps->err = msg;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t')) ps->p++;
}

/* Skips whitespace, newlines and comments (inside arrays). */
static void skip_all(parser *ps) {
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end) return;
        if (*ps->p == '#') {
            while (ps->p < ps->end && *ps->p != '\n') ps->p++;
        } else if (*ps->p == '\n' || *ps->p == '\r') {
            if (*ps->p == '\n') ps->line++;
            ps->p++;
        } else {
            return;
        }
    }
}

static void sb_put(strbuf *b, char c) {
    if (b->len + 1 >= b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->data = xrealloc(b->data, b->cap);
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

static void sb_utf8(strbuf *b, unsigned long cp) {
    if (cp < 0x80) {
        sb_put(b, (char)cp);
    } else if (cp < 0x800) {
        sb_put(b, (char)(0xC0 | (cp >> 6)));
        sb_put(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        sb_put(b, (char)(0xE0 | (cp >> 12)));
        sb_put(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_put(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        sb_put(b, (char)(0xF0 | (cp >> 18)));
        sb_put(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        sb_put(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_put(b, (char)(0x80 | (cp & 0x3F)));
    }
}

static int starts(parser *ps, const char *s) {
    size_t n = strlen(s);
    return (size_t)(ps->end - ps->p) >= n && memcmp(ps->p, s, n) == 0;
}

/* Reads a string of any of the four kinds into out (always NUL-terminated). */
static int parse_string(parser *ps, strbuf *out) {
    out->len = 0;
    sb_put(out, 'x');
    out->len = 0;
    out->data[0] = '\0';
    char q = *ps->p;
    int multi = 0;
    if (q == '"' && starts(ps, "\"\"\"")) multi = 1;
    if (q == '\'' && starts(ps, "'''")) multi = 1;
    ps->p += multi ? 3 : 1;
    if (multi && ps->p < ps->end && *ps->p == '\n') ps->p++, ps->line++;
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (multi ? (q == '"' ? starts(ps, "\"\"\"") : starts(ps, "'''")) : c == q) {
            ps->p += multi ? 3 : 1;
            return 1;
        }
        if (!multi && c == '\n') break;
        if (c == '\n') ps->line++;
        if (q == '"' && c == '\\') {
            ps->p++;
            if (ps->p >= ps->end) break;
            char e = *ps->p++;
            switch (e) {
            case 'b': sb_put(out, '\b'); break;
            case 't': sb_put(out, '\t'); break;
            case 'n': sb_put(out, '\n'); break;
            case 'f': sb_put(out, '\f'); break;
            case 'r': sb_put(out, '\r'); break;
            case 'e': sb_put(out, 27); break;
            case '"': sb_put(out, '"'); break;
            case '\\': sb_put(out, '\\'); break;
            case 'u':
            case 'U': {
                int n = e == 'u' ? 4 : 8;
                if (ps->end - ps->p < n) { fail(ps, "bad unicode escape"); return 0; }
                char hex[9] = {0};
                memcpy(hex, ps->p, (size_t)n);
                ps->p += n;
                sb_utf8(out, strtoul(hex, NULL, 16));
                break;
            }
            case '\n':
            case ' ':
            case '\t':
            case '\r':
                /* line-ending backslash in a multi-line string: trim up to the next non-space */
                if (e == '\n') ps->line++;
                while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
                    if (*ps->p == '\n') ps->line++;
                    ps->p++;
                }
                break;
            default: fail(ps, "bad escape in string"); return 0;
            }
            continue;
        }
        sb_put(out, c);
        ps->p++;
    }
    fail(ps, "unterminated string");
    return 0;
}

static int parse_value(parser *ps, toml_value *v);

static void value_free(toml_value *v) {
    if (v->kind == TOML_STRING) free(v->str);
    if (v->kind == TOML_ARRAY) {
        for (size_t i = 0; i < v->count; i++) free(v->items[i]);
        free(v->items);
    }
    memset(v, 0, sizeof *v);
}

/* Arrays keep their string elements; anything else inside is parsed and dropped. */
static int parse_array(parser *ps, toml_value *v) {
    v->kind = TOML_ARRAY;
    ps->p++;
    for (;;) {
        skip_all(ps);
        if (ps->p >= ps->end) { fail(ps, "unterminated array"); return 0; }
        if (*ps->p == ']') { ps->p++; return 1; }
        toml_value item = {0};
        if (!parse_value(ps, &item)) return 0;
        if (item.kind == TOML_STRING) {
            v->items = xrealloc(v->items, (v->count + 1) * sizeof *v->items);
            v->items[v->count++] = item.str;
            item.str = NULL;
            item.kind = TOML_OTHER;
        } else {
            v->mixed = 1;
        }
        value_free(&item);
        skip_all(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        skip_all(ps);
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 1; }
        fail(ps, "expected , or ] in array");
        return 0;
    }
}

static int parse_key(parser *ps, strbuf *key);

static int parse_inline_table(parser *ps) {
    ps->p++;
    strbuf key = {0};
    for (;;) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; free(key.data); return 1; }
        if (!parse_key(ps, &key)) { free(key.data); return 0; }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '=') { fail(ps, "expected = in inline table"); free(key.data); return 0; }
        ps->p++;
        skip_ws(ps);
        toml_value v = {0};
        if (!parse_value(ps, &v)) { free(key.data); return 0; }
        value_free(&v);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; free(key.data); return 1; }
        fail(ps, "expected , or } in inline table");
        free(key.data);
        return 0;
    }
}

static int parse_value(parser *ps, toml_value *v) {
    memset(v, 0, sizeof *v);
    if (ps->p >= ps->end) { fail(ps, "missing value"); return 0; }
    char c = *ps->p;
    if (c == '"' || c == '\'') {
        strbuf s = {0};
        if (!parse_string(ps, &s)) { free(s.data); return 0; }
        v->kind = TOML_STRING;
        v->str = s.data;
        return 1;
    }
    if (c == '[') return parse_array(ps, v);
    if (c == '{') { v->kind = TOML_OTHER; return parse_inline_table(ps); }
    if (starts(ps, "true")) { ps->p += 4; v->kind = TOML_BOOL; v->boolean = 1; return 1; }
    if (starts(ps, "false")) { ps->p += 5; v->kind = TOML_BOOL; v->boolean = 0; return 1; }
    /* numbers, dates: a run of value characters */
    const char *start = ps->p;
    while (ps->p < ps->end && (isalnum((unsigned char)*ps->p) || strchr("+-._:", *ps->p) || (*ps->p == ' ' && ps->p + 1 < ps->end && isdigit((unsigned char)ps->p[1]) && ps->p > start && isdigit((unsigned char)ps->p[-1])))) ps->p++;
    if (ps->p == start) { fail(ps, "unexpected character in value"); return 0; }
    v->kind = TOML_OTHER;
    return 1;
}

/* A key, possibly dotted and quoted; dotted parts are joined with '.'. */
static int parse_key(parser *ps, strbuf *key) {
    key->len = 0;
    sb_put(key, 'x');
    key->len = 0;
    key->data[0] = '\0';
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end) { fail(ps, "missing key"); return 0; }
        if (*ps->p == '"' || *ps->p == '\'') {
            strbuf part = {0};
            if (!parse_string(ps, &part)) { free(part.data); return 0; }
            for (size_t i = 0; i < part.len; i++) sb_put(key, part.data[i]);
            free(part.data);
        } else {
            const char *s = ps->p;
            while (ps->p < ps->end && (isalnum((unsigned char)*ps->p) || *ps->p == '-' || *ps->p == '_')) sb_put(key, *ps->p++);
            if (ps->p == s) { fail(ps, "bad key"); return 0; }
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '.') { sb_put(key, '.'); ps->p++; continue; }
        return 1;
    }
}

const char *toml_parse(const char *text, size_t len, toml_callback cb, void *ctx, int *line) {
    parser ps = {text, text + len, 1, NULL};
    strbuf table = {0}, key = {0};
    sb_put(&table, 'x');
    table.len = 0;
    table.data[0] = '\0';
    int index = -1;
    while (!ps.err) {
        skip_all(&ps);
        if (ps.p >= ps.end) break;
        if (*ps.p == '[') {
            int array = starts(&ps, "[[");
            ps.p += array ? 2 : 1;
            if (!parse_key(&ps, &table)) break;
            if (!starts(&ps, array ? "]]" : "]")) { fail(&ps, "unterminated table header"); break; }
            ps.p += array ? 2 : 1;
            if (array) {
                index = cb(ctx, table.data, -2, NULL, NULL); /* the callback counts elements */
            } else {
                index = -1;
            }
            continue;
        }
        if (!parse_key(&ps, &key)) break;
        skip_ws(&ps);
        if (ps.p >= ps.end || *ps.p != '=') { fail(&ps, "expected ="); break; }
        ps.p++;
        skip_ws(&ps);
        toml_value v = {0};
        if (!parse_value(&ps, &v)) break;
        cb(ctx, table.data, index, key.data, &v);
        value_free(&v);
        skip_ws(&ps);
        if (ps.p < ps.end && *ps.p == '#') continue;
        if (ps.p < ps.end && *ps.p != '\n' && *ps.p != '\r') fail(&ps, "expected a new line after a value");
    }
    free(table.data);
    free(key.data);
    if (line) *line = ps.line;
    return ps.err;
}
