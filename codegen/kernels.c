/* kernels.c: the kernel ops, one node per kernel: matrix products (BLAS),
 * reductions, softmax, cross-entropy, one-hot, and the copies of concat,
 * slice, gather and scatter_add.
 *
 * Each lower_<op> here gets map NULL and a kernel whose buffers are the
 * node's and its sources' (all materialised by the plan), and emits the
 * whole body at the builder (a row kernel's outermost loop by cg_rows_open,
 * which in a parallel kernel runs only the part's rows): counted loops with i64 induction variables
 * (cg_loop_open), no calls in float loops except through mathfn.c. Must
 * not decide anything the plan decides; broken invariants are assertions.
 *
 * Dimension legend:
 *   B        the batch size, known at run time only
 *   M, N, K  matmul: C[M, N] = op(A)[M, K] @ op(B)[K, N]
 *   O, A, I  softmax: outer x axis x inner, the axis in the middle
 *   R, C     cross-entropy and one-hot: rows x classes
 *   O, I     concat and slice: outer (dims before the axis) x inner (after)
 *   V, R, NI gather and scatter_add: table rows x row length, id count
 */
#include "kern.h"

#include <math.h>

/* ---- BLAS ---------------------------------------------------------------------- */

/* The declaration of the runtime's matrix product (rt.h, pool.c), which
 * splits it across the thread pool into single-threaded OpenBLAS calls:
 * rt_gemm_f32 / rt_gemm_f64(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc). */
static LLVMValueRef gemm_decl(Lower *L, LLVMTypeRef *fty) {
    const char *name = L->elem == LLVMFloatTypeInContext(L->ctx) ? "rt_gemm_f32" : "rt_gemm_f64";
    LLVMTypeRef i = L->i32, f = L->elem, p = L->ptr;
    LLVMTypeRef params[12] = {i, i, i, i, i, p, i, p, i, f, p, i};
    *fty = LLVMFunctionType(L->vd, params, 12, 0);
    return runtime_fn(L, name, *fty);
}

/* C[M, N] = op(A) @ op(B), row-major. A tensor of rank r >= 2 is the matrix
 * [product of its first r - 1 dims, its last dim] (ir_matmul): A is stored
 * [lead(A), last(A)], B [lead(B), last(B)], so
 *   M = rows of op(A) = ta ? last(A) : lead(A),  K = ta ? lead(A) : last(A),
 *   N = cols of op(B) = tb ? lead(B) : last(B),
 * rt_gemm_x(ta, tb, M, N, K, A, last(A), B, last(B), 0, C, N).
 * [B, T, d] @ [d, h] is M = B*T; [B, T, d]^T @ [B, T, h] contracts K = B*T. */
LLVMValueRef lower_matmul(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *a = n->src[0], *b = n->src[1];
    const Shape *sa = &a->shape, *sb = &b->shape;
    bool ta = n->attr.mm.ta, tb = n->attr.mm.tb;
    Mono lead_a = mono_dims(sa, 0, sa->rank - 1), last_a = mono_dim(sa->d[sa->rank - 1]);
    Mono lead_b = mono_dims(sb, 0, sb->rank - 1), last_b = mono_dim(sb->d[sb->rank - 1]);
    Mono m = ta ? last_a : lead_a, kk = ta ? lead_a : last_a, nn = tb ? lead_b : last_b;
    LLVMTypeRef i32 = k->L->i32;
#define I32(mono) LLVMBuildTrunc(k->b, mono_value(k, (mono)), i32, "")
    LLVMValueRef args[12] = {
        LLVMConstInt(i32, ta, 0),
        LLVMConstInt(i32, tb, 0),
        I32(m),
        I32(nn),
        I32(kk),
        buf_ptr(k, a),
        I32(last_a),
        buf_ptr(k, b),
        I32(last_b),
        cfp(k, 0),
        buf_ptr(k, n),
        I32(nn),
    };
#undef I32
    LLVMTypeRef fty;
    LLVMValueRef fn = gemm_decl(k->L, &fty);
    LLVMBuildCall2(k->b, fty, fn, args, 12, "");
    return NULL;
}

/* ---- reductions -------------------------------------------------------------------
 * The source's axes, size-1 axes dropped, are merged into runs of reduced
 * (R) and kept (K) axes; being contiguous, each run is one loop. The
 * source offset is mixed-radix over all runs, the output offset over the
 * kept ones. When no reduced run comes before a kept one (K R, R, K) each
 * output element is written once: a scalar accumulator over the innermost
 * R run (row sums), or a copy. Otherwise the output is initialised and
 * accumulated into: with K innermost, out[o + j] = out[o + j] (+) in[i + j]
 * over unit strides (bias gradients: sum over axis 0 of [B, H]).
 *   SUM   (+) is +, from 0
 *   MEAN  SUM, then divided by the count of reduced elements
 *   AMAX  (+) is llvm.maximum, from -inf: NaN wins (llvm.maxnum would drop
 *         it), and -0 < +0 */

typedef enum RedKind { RED_SUM, RED_MEAN, RED_MAX } RedKind;

typedef struct Run {
    Mono size;
    bool red;
} Run;

static LLVMValueRef red_init(Kern *k, RedKind r) { return cfp(k, r == RED_MAX ? -INFINITY : 0); }

/* acc (+) x. A scalar accumulator's add may be reassociated (so that it
 * vectorises into partial sums); an accumulation into the output, which
 * vectorises along the kept axis as it is, stays in order. */
static LLVMValueRef red_combine(Kern *k, RedKind r, LLVMValueRef acc, LLVMValueRef x, bool scalar) {
    if (r == RED_MAX)
        return cg_emit_intrinsic2(k->b, k->L->mod, "llvm.maximum", acc, x);
    return scalar ? facc(k, acc, x) : add_f(k, acc, x);
}

static void emit_reduce(Kern *k, const Node *n, RedKind rk) {
    const Node *x = n->src[0];
    Run run[IR_MAX_RANK];
    int nr = 0;
    Mono count = {1, 0}, nout = {1, 0};
    for (int i = 0; i < x->shape.rank; i++) {
        Mono d = mono_dim(x->shape.d[i]);
        bool red = n->attr.red.axes >> i & 1;
        if (red)
            count = mono_mul(count, d);
        else
            nout = mono_mul(nout, d);
        if (mono_is(d, 1))
            continue;
        if (nr > 0 && run[nr - 1].red == red)
            run[nr - 1].size = mono_mul(run[nr - 1].size, d);
        else
            run[nr++] = (Run){d, red};
    }
    bool direct = true, any_red = false;
    for (int r = 0; r < nr; r++) {
        if (run[r].red)
            any_red = true;
        else if (any_red)
            direct = false;
    }
    bool mean = rk == RED_MEAN;
    LLVMValueRef cnt = mean ? to_fp(k, mono_value(k, count)) : NULL;
    LLVMValueRef sz[IR_MAX_RANK];
    for (int r = 0; r < nr; r++)
        sz[r] = mono_value(k, run[r].size);
    LLVMValueRef nout_v = mono_value(k, nout);
    Loop lz, lp[IR_MAX_RANK];

    if (!direct) {
        LLVMValueRef i = cg_loop_open(k, &lz, nout_v, 0, NULL);
        store_at(k, n, i, red_init(k, rk));
        cg_loop_close(k, &lz, NULL);
    }
    if (nr == 0) {
        LLVMValueRef v = load_at(k, x, ci64(k, 0));
        store_at(k, n, ci64(k, 0), mean ? div_f(k, v, cnt) : v);
    } else {
        LLVMValueRef ioff = ci64(k, 0), ooff = ci64(k, 0);
        for (int r = 0; r < nr - 1; r++) {
            LLVMValueRef i = cg_loop_open(k, &lp[r], sz[r], 0, NULL);
            ioff = iadd(k, imul(k, ioff, sz[r]), i);
            if (!run[r].red)
                ooff = iadd(k, imul(k, ooff, sz[r]), i);
        }
        const Run *last = &run[nr - 1];
        LLVMValueRef ibase = imul(k, ioff, sz[nr - 1]);
        Loop li;
        if (last->red) {
            LLVMValueRef init = red_init(k, rk);
            LLVMValueRef j = cg_loop_open(k, &li, sz[nr - 1], 1, &init);
            LLVMValueRef acc =
                red_combine(k, rk, li.phi[0], load_at(k, x, iadd(k, ibase, j)), true);
            cg_loop_close(k, &li, &acc);
            LLVMValueRef s = li.out[0];
            if (direct)
                store_at(k, n, ooff, mean ? div_f(k, s, cnt) : s);
            else
                store_at(k, n, ooff, red_combine(k, rk, load_at(k, n, ooff), s, true));
        } else {
            LLVMValueRef obase = imul(k, ooff, sz[nr - 1]);
            LLVMValueRef j = cg_loop_open(k, &li, sz[nr - 1], 0, NULL);
            LLVMValueRef v = load_at(k, x, iadd(k, ibase, j)), o = iadd(k, obase, j);
            if (direct) /* nothing of size > 1 is reduced: a copy */
                store_at(k, n, o, mean ? div_f(k, v, cnt) : v);
            else
                store_at(k, n, o, red_combine(k, rk, load_at(k, n, o), v, false));
            cg_loop_close(k, &li, NULL);
        }
        for (int r = nr - 2; r >= 0; r--)
            cg_loop_close(k, &lp[r], NULL);
    }
    if (mean && !direct) {
        LLVMValueRef i = cg_loop_open(k, &lz, nout_v, 0, NULL);
        store_at(k, n, i, div_f(k, load_at(k, n, i), cnt));
        cg_loop_close(k, &lz, NULL);
    }
}

LLVMValueRef lower_sum(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_reduce(k, n, RED_SUM);
    return NULL;
}
LLVMValueRef lower_mean(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_reduce(k, n, RED_MEAN);
    return NULL;
}
LLVMValueRef lower_amax(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_reduce(k, n, RED_MAX);
    return NULL;
}

/* ---- softmax, cross-entropy, one-hot ------------------------------------------ */

/* max over j < len of x[base + j * stride] (-inf for none), as
 * llvm.maximum, which LLVM vectorises into a tree of vmaxps (llvm.maxnum it
 * leaves scalar: its reduction is only reassociable without NaNs). A NaN
 * wins; it would reach the sum of exps anyway, so every output of its row
 * is NaN either way. */
static LLVMValueRef emit_row_max(Kern *k, const Node *x, LLVMValueRef base, LLVMValueRef len,
                                 LLVMValueRef stride) {
    Loop l;
    LLVMValueRef init = cfp(k, -INFINITY);
    LLVMValueRef j = cg_loop_open(k, &l, len, 1, &init);
    LLVMValueRef v = load_at(k, x, iadd(k, base, imul(k, j, stride)));
    LLVMValueRef m = cg_emit_intrinsic2(k->b, k->L->mod, "llvm.maximum", l.phi[0], v);
    cg_loop_close(k, &l, &m);
    return l.out[0];
}

/* sum over j < len of exp(x[base + j * stride] - m); each term also
 * stored at the same index of `store` when it is not NULL. */
static LLVMValueRef emit_row_sum_exp(Kern *k, const Node *x, LLVMValueRef base, LLVMValueRef len,
                                     LLVMValueRef stride, LLVMValueRef m, const Node *store) {
    Loop l;
    LLVMValueRef zero = cfp(k, 0);
    LLVMValueRef j = cg_loop_open(k, &l, len, 1, &zero);
    LLVMValueRef idx = iadd(k, base, imul(k, j, stride));
    LLVMValueRef e = emit_exp(k, sub_f(k, load_at(k, x, idx), m));
    if (store)
        store_at(k, store, idx, e);
    LLVMValueRef s = facc(k, l.phi[0], e);
    cg_loop_close(k, &l, &s);
    return l.out[0];
}

/* softmax: e = exp(x - max), stored, summed; then out = e / sum.
 * log_softmax: out = (x - max) - log(sum of exp(x - max)).
 * Loops: O outer, I inner, then three passes along the axis (stride I). */
static void emit_softmax(Kern *k, const Node *n, bool log) {
    const Node *x = n->src[0];
    int ax = n->attr.axis;
    LLVMValueRef O = mono_value(k, mono_dims(&x->shape, 0, ax));
    LLVMValueRef A = mono_value(k, mono_dim(x->shape.d[ax]));
    LLVMValueRef I = mono_value(k, mono_dims(&x->shape, ax + 1, x->shape.rank));
    LLVMValueRef AI = imul(k, A, I);
    Loop lo, lt, l3;
    LLVMValueRef o = cg_rows_open(k, &lo, O);
    LLVMValueRef t = cg_loop_open(k, &lt, I, 0, NULL);
    LLVMValueRef base = iadd(k, imul(k, o, AI), t);
    LLVMValueRef m = emit_row_max(k, x, base, A, I);
    LLVMValueRef s = emit_row_sum_exp(k, x, base, A, I, m, log ? NULL : n);

    LLVMValueRef ls = log ? emit_log(k, s) : NULL;
    LLVMValueRef j = cg_loop_open(k, &l3, A, 0, NULL);
    LLVMValueRef idx = iadd(k, base, imul(k, j, I));
    if (log)
        store_at(k, n, idx, sub_f(k, sub_f(k, load_at(k, x, idx), m), ls));
    else
        store_at(k, n, idx, div_f(k, load_at(k, n, idx), s));
    cg_loop_close(k, &l3, NULL);
    cg_loop_close(k, &lt, NULL);
    cg_loop_close(k, &lo, NULL);
}

LLVMValueRef lower_softmax(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_softmax(k, n, false);
    return NULL;
}
LLVMValueRef lower_log_softmax(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_softmax(k, n, true);
    return NULL;
}

/* out[r] = logsumexp(z[r, :]) - z[r, label[r]] over R rows of C classes;
 * NaN when label[r] is outside [0, C) (z is never read out of bounds). */
LLVMValueRef lower_xent(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *z = n->src[0], *y = n->src[1];
    int last = z->shape.rank - 1;
    LLVMValueRef R = mono_value(k, mono_dims(&z->shape, 0, last));
    LLVMValueRef C = mono_value(k, mono_dim(z->shape.d[last]));
    LLVMValueRef one = ci64(k, 1);
    Loop lr;
    LLVMValueRef r = cg_rows_open(k, &lr, R);
    LLVMValueRef base = imul(k, r, C);
    LLVMValueRef m = emit_row_max(k, z, base, C, one);
    LLVMValueRef s = emit_row_sum_exp(k, z, base, C, one, m, NULL);
    LLVMValueRef label = to_i64(k, load_at(k, y, r));
    LLVMValueRef ok = LLVMBuildICmp(k->b, LLVMIntULT, label, C, "");
    LLVMValueRef at = sel(k, ok, label, ci64(k, 0));
    LLVMValueRef zl = load_at(k, z, iadd(k, base, at));
    /* logsumexp - z[label] = log(sum) - (z[label] - max) */
    LLVMValueRef loss = sub_f(k, emit_log(k, s), sub_f(k, zl, m));
    store_at(k, n, r, sel(k, ok, loss, cfp(k, NAN)));
    cg_loop_close(k, &lr, NULL);
    return NULL;
}

/* out[r, j] = (j == label[r]) ? 1 : 0 over R rows of C columns. */
LLVMValueRef lower_onehot(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *y = n->src[0];
    int last = n->shape.rank - 1;
    LLVMValueRef R = mono_value(k, mono_dims(&n->shape, 0, last));
    LLVMValueRef C = mono_value(k, mono_dim(n->shape.d[last]));
    Loop lr, lc;
    LLVMValueRef r = cg_rows_open(k, &lr, R);
    LLVMValueRef label = to_i64(k, load_at(k, y, r));
    LLVMValueRef base = imul(k, r, C);
    LLVMValueRef j = cg_loop_open(k, &lc, C, 0, NULL);
    LLVMValueRef hit = LLVMBuildICmp(k->b, LLVMIntEQ, j, label, "");
    store_at(k, n, iadd(k, base, j), sel(k, hit, cfp(k, 1), cfp(k, 0)));
    cg_loop_close(k, &lc, NULL);
    cg_loop_close(k, &lr, NULL);
    return NULL;
}

/* ---- copies: concat, slice ------------------------------------------------------ */

/* dst[o * dst_row + dst_at + j] = src[o * src_row + src_at + j] for o < O,
 * j < len: O rows of len contiguous elements (a vectorised or memcpy'd
 * inner loop). */
static void emit_row_copy(Kern *k, const Node *dst, LLVMValueRef dst_row, LLVMValueRef dst_at,
                          const Node *src, LLVMValueRef src_row, LLVMValueRef src_at,
                          LLVMValueRef O, LLVMValueRef len) {
    Loop lo, lj;
    LLVMValueRef o = cg_loop_open(k, &lo, O, 0, NULL);
    LLVMValueRef dbase = iadd(k, imul(k, o, dst_row), dst_at);
    LLVMValueRef sbase = iadd(k, imul(k, o, src_row), src_at);
    LLVMValueRef j = cg_loop_open(k, &lj, len, 0, NULL);
    store_at(k, dst, iadd(k, dbase, j), load_at(k, src, iadd(k, sbase, j)));
    cg_loop_close(k, &lj, NULL);
    cg_loop_close(k, &lo, NULL);
}

/* out = [a | b] along attr.axis: with O the product of the dims before the
 * axis (it may hold B) and I of those after, each of the O rows of out is a
 * row of a.d[axis] * I elements of a, then one of b.d[axis] * I of b. */
LLVMValueRef lower_concat(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *a = n->src[0], *b = n->src[1];
    int ax = n->attr.axis;
    Mono inner = mono_dims(&n->shape, ax + 1, n->shape.rank);
    LLVMValueRef O = mono_value(k, mono_dims(&n->shape, 0, ax));
    LLVMValueRef ra = mono_value(k, mono_mul(mono_dim(a->shape.d[ax]), inner));
    LLVMValueRef rb = mono_value(k, mono_mul(mono_dim(b->shape.d[ax]), inner));
    LLVMValueRef ro = mono_value(k, mono_mul(mono_dim(n->shape.d[ax]), inner));
    emit_row_copy(k, n, ro, ci64(k, 0), a, ra, ci64(k, 0), O, ra);
    emit_row_copy(k, n, ro, ra, b, rb, ci64(k, 0), O, rb);
    return NULL;
}

/* out = x[..., start : start + len, ...] along attr.slice.axis: each of the
 * O rows of out (len * I elements) from offset start * I of x's row. */
LLVMValueRef lower_slice(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *x = n->src[0];
    int ax = n->attr.slice.axis;
    Mono inner = mono_dims(&n->shape, ax + 1, n->shape.rank);
    LLVMValueRef O = mono_value(k, mono_dims(&n->shape, 0, ax));
    LLVMValueRef rx = mono_value(k, mono_mul(mono_dim(x->shape.d[ax]), inner));
    LLVMValueRef ro = mono_value(k, mono_mul(mono_dim(n->shape.d[ax]), inner));
    LLVMValueRef at = mono_value(k, mono_mul(mono(n->attr.slice.start, 0), inner));
    emit_row_copy(k, n, ro, ci64(k, 0), x, rx, at, O, ro);
    return NULL;
}

/* ---- gather, scatter_add --------------------------------------------------------
 * The table is [V, ...]: V rows of R elements. The ids (any shape) are NI
 * int32 values, taken as unsigned against V so that a negative id is out
 * of range too; an out-of-range id never addresses the table. */

/* out[i, :] = table[ids[i], :] for i < NI, a row of NaN for an id outside
 * [0, V) (the row read is then row 0's, and discarded). */
LLVMValueRef lower_gather(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *table = n->src[0], *ids = n->src[1];
    LLVMValueRef V = mono_value(k, mono_dim(table->shape.d[0]));
    LLVMValueRef R = mono_value(k, mono_dims(&table->shape, 1, table->shape.rank));
    LLVMValueRef NI = mono_value(k, mono_dims(&ids->shape, 0, ids->shape.rank));
    Loop li, lj;
    LLVMValueRef i = cg_loop_open(k, &li, NI, 0, NULL);
    LLVMValueRef id = to_i64(k, load_at(k, ids, i));
    LLVMValueRef ok = LLVMBuildICmp(k->b, LLVMIntULT, id, V, "");
    LLVMValueRef src = imul(k, sel(k, ok, id, ci64(k, 0)), R), dst = imul(k, i, R);
    LLVMValueRef j = cg_loop_open(k, &lj, R, 0, NULL);
    LLVMValueRef v = load_at(k, table, iadd(k, src, j));
    store_at(k, n, iadd(k, dst, j), sel(k, ok, v, cfp(k, NAN)));
    cg_loop_close(k, &lj, NULL);
    cg_loop_close(k, &li, NULL);
    return NULL;
}

/* out = 0, then out[ids[i], :] += x[i, :] for i < NI in order (repeated ids
 * accumulate); an id outside [0, V) adds nothing: its row loop runs zero
 * times. */
LLVMValueRef lower_scatter_add(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *x = n->src[0], *ids = n->src[1];
    LLVMValueRef V = mono_value(k, mono_dim(n->shape.d[0]));
    LLVMValueRef R = mono_value(k, mono_dims(&n->shape, 1, n->shape.rank));
    LLVMValueRef NI = mono_value(k, mono_dims(&ids->shape, 0, ids->shape.rank));
    Loop lz, li, lj;
    LLVMValueRef z = cg_loop_open(k, &lz, imul(k, V, R), 0, NULL);
    store_at(k, n, z, cfp(k, 0));
    cg_loop_close(k, &lz, NULL);

    LLVMValueRef i = cg_loop_open(k, &li, NI, 0, NULL);
    LLVMValueRef id = to_i64(k, load_at(k, ids, i));
    LLVMValueRef ok = LLVMBuildICmp(k->b, LLVMIntULT, id, V, "");
    LLVMValueRef dst = imul(k, sel(k, ok, id, ci64(k, 0)), R), src = imul(k, i, R);
    LLVMValueRef j = cg_loop_open(k, &lj, sel(k, ok, R, ci64(k, 0)), 0, NULL);
    LLVMValueRef o = iadd(k, dst, j);
    store_at(k, n, o, add_f(k, load_at(k, n, o), load_at(k, x, iadd(k, src, j))));
    cg_loop_close(k, &lj, NULL);
    cg_loop_close(k, &li, NULL);
    return NULL;
}
