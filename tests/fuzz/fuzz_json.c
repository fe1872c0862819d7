/* fuzz_json.c: host/json.c's reader on arbitrary bytes, then a walk of the
 * tree it built (every value, key and string). */
#include <stdint.h>
#include <string.h>

#include "json.h"

static size_t walk(const json *v, int depth)
{
    size_t n = 1;
    if (v->key)
        n += strlen(v->key);
    if (v->type == JSON_STRING)
        n += strlen(v->string);
    for (const json *c = v->child; c; c = c->next)
        n += walk(c, depth + 1);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json *root = NULL;
    if (json_parse((const char *)data, size, "fuzz.json", &root) == FN_OK) {
        walk(root, 0);
        json_get(root, "a");
        json_at(root, 0);
        json_free(root);
    }
    return 0;
}
