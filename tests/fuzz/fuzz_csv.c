/* fuzz_csv.c: the CSV reader (host/csv.c) record by record, then
 * fn_csv_read_columns with exact, optional and pattern columns, on arbitrary
 * bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "csv.h"
#include "featurenorm.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("scores.csv", data, size);
    csv_reader r;
    if (csv_open(&r, path) == FN_OK) {
        int got;
        size_t total = 0;
        while (csv_next(&r, &got) == FN_OK && got)
            for (size_t i = 0; i < r.nfields; i++)
                total += csv_field_len(&r, i) + (size_t)csv_field(&r, i)[0];
        csv_close(&r);
        (void)total;
    }
    static const char *const columns[] = {"msp", "?label", "fn.*", "?[a-z]*"};
    fn_columns *c = NULL;
    if (fn_csv_read_columns(path, columns, 4, &c) == FN_OK)
        fn_columns_free(c);
    float *v = NULL;
    size_t n = 0;
    if (fn_csv_read_column(path, "msp", &v, &n) == FN_OK)
        free(v);
    return 0;
}
