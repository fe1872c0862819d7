/* json.h: a small JSON reader (safetensors headers, selection files) and a
 * string escaper for the writers. Values live in one arena freed at once. */
#ifndef FN_JSON_H
#define FN_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "featurenorm.h"

typedef enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json json;
struct json {
    json_type type;
    double number;        /* JSON_NUMBER (and 0/1 for JSON_BOOL) */
    const char *string;   /* JSON_STRING: NUL-terminated, unescaped */
    const char *key;      /* the key when this value is an object member */
    json *child;          /* first element or member */
    json *next;           /* next sibling */
    size_t count;         /* number of elements or members */
    int integral;         /* JSON_NUMBER written without fraction or exponent */
};

/* Parses text[0..len). On error returns FN_ERR_FORMAT with "<what>: <problem>
 * at byte N". *root is freed with json_free. */
fn_status json_parse(const char *text, size_t len, const char *what, json **root);
void json_free(json *root);
const json *json_get(const json *obj, const char *key);  /* NULL if absent or not an object */
const json *json_at(const json *arr, size_t i);

/* Writes s as a JSON string literal, quotes included. */
void json_write_string(FILE *f, const char *s);

#endif
