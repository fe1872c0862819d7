/* conv_direct.h: register-tiled direct convolution for stride-1 k x k layers
 * (used by backend_cpu.c; the im2col + GEMM path handles the rest). */
#ifndef FN_CONV_DIRECT_H
#define FN_CONV_DIRECT_H

#include "net.h"

int direct_conv_eligible(const net_op *op, const net_tensor *in);
/* The weights re-laid for the kernel (free with free()), or NULL: out of memory. */
float *direct_pack_weights(const net_op *op, int cin, int cout);
/* Rows and row length of one zero-padded input plane. */
void direct_padded_shape(const net_op *op, const net_tensor *in, const net_tensor *out, int *hp,
                         int *wp);
/* Copies planes [plane0, plane1) (plane = channel * n + image) of x, laid out
 * C x N x H x W, into the padded buffer. */
void direct_pad_input(const float *x, float *padded, const net_op *op, const net_tensor *in,
                      const net_tensor *out, int n, int plane0, int plane1);
/* Output rows [q0, q1) (row q = image q / OH, row q % OH), every channel, with
 * bias, residual (or NULL) and activation applied. */
void direct_conv_rows(const float *padded, const float *wpacked, const net_op *op, int cin,
                      int cout, const net_tensor *in, const net_tensor *out, int n, const float *res,
                      float *y, int q0, int q1);

#endif
