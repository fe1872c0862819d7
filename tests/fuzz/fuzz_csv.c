/* fuzz_csv.c: the CSV reader (host/csv.c) record by record, and
 * fn_csv_read_column, on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "csv.h"
#include "featurenorm.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("scores.csv", data, size);
    fn_csv_reader r;
    if (fn_csv_open(&r, path) == FN_OK) {
        int got;
        size_t total = 0;
        while (fn_csv_next(&r, &got) == FN_OK && got)
            for (size_t i = 0; i < r.nfields; i++)
                total += fn_csv_field_len(&r, i) + (size_t)fn_csv_field(&r, i)[0];
        fn_csv_close(&r);
        (void)total;
    }
    float *v = NULL;
    size_t n = 0;
    if (fn_csv_read_column(path, "msp", &v, &n) == FN_OK)
        free(v);
    return 0;
}
