#ifndef STRATA_LAUNCHER_H
#define STRATA_LAUNCHER_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} strbuf;

typedef enum { TOML_OTHER, TOML_STRING, TOML_BOOL, TOML_ARRAY } toml_kind;

typedef struct {
    toml_kind kind;
    char *str;
    int boolean;
    char **items; /* string elements of an array */
    size_t count;
    int mixed; /* the array held non-strings */
} toml_value;

/*
 * Called for each key = value with the table it is under ("" at top level) and, inside an array of tables, the
 * element's index. A call with index -2 and no key announces a new [[table]] element; it returns that element's index.
 */
typedef int (*toml_callback)(void *ctx, const char *table, int index, const char *key, const toml_value *value);

/* Parses a TOML document; returns NULL, or an error message with *line set. */
const char *toml_parse(const char *text, size_t len, toml_callback cb, void *ctx, int *line);

void *xrealloc(void *p, size_t n);

#endif
