/* lower.c: planned programs to LLVM IR, one kernel function per Kernel and
 * one entry point per program.
 *
 * Owns the loop nests of fused kernels (index maps, broadcasting, axis
 * coalescing), what every fused op (elementwise, movement, the update sink)
 * means as machine arithmetic, counted loops, kernel functions and program
 * entry points. The one-node kernel ops (matmul, reductions, softmax, ...)
 * are kernels.c's. Must not decide fusion, order or memory layout (it
 * follows Program.kernels and Program.offset exactly), build the math
 * polynomials (mathfn.c), or verify, optimise or JIT the module (cg.c and
 * jit.c). Broken invariants of the plan are assertions.
 *
 * Generated code for model m and program p:
 *   void m_p(ptr arena, i64 batch)                  external: calls each
 *       kernel in order with arena + the planned offset of each buffer
 *   void m_p_k<i>(ptr noalias buf..., i64 batch)    internal: kernel i, one
 *       pointer per distinct buffer it touches
 * When cg_compile splits the programs between threads (CgSplit), a
 * parallel kernel may be in another module than its entry point: there
 * its m_p_k<i>_part wrapper is external, and the entry point's module
 * declares it; the functions themselves are the same.
 * A program that checks numerics (Program.check_numerics) differs in three
 * places only: each kernel function returns i1, true when a value it stored
 * is NaN or Inf (a fused loop or-reduces !(|v| < inf) over the values it
 * stores; a kernel op scans its output after computing it); an update
 * kernel also stores each old value it overwrites at the same index of the
 * destination's backup (Plan.numerics_backup); and m_p, after a kernel that
 * returned true, stores the kernel's index + 1 as an i64 at the status
 * word (Plan.numerics_status), copies every parameter and state the update
 * kernels so far overwrote back from its backup, and returns. So a failed
 * check leaves the parameters and states as they were before the run.
 * A profiled program (Program.profile) differs in m_p only: it calls the
 * runtime's rt_profile_clock() before the first kernel and after each, and
 * adds the differences to int64 counters (Plan.profile_counters).
 * Tensors are contiguous row-major at their offsets: float tensors hold the
 * element type (float or double), integer tensors i32.
 *
 * Dimension legend:
 *   B        the batch size, the `batch` argument: known at run time only
 *   Mono     c * B^e: the size or stride of an axis (every dim is c or B)
 */
#include "kern.h"

#include <llvm-c/DebugInfo.h>

#include <math.h>
#include <setjmp.h>
#include <string.h>

/* ---- counted loops (kern.h) -----------------------------------------------------
 * A loop that contains another is marked llvm.loop.vectorize.enable=false.
 * LLVM fully unrolls a short constant inner loop (the 16 of [B, 16] + [16])
 * before the loop vectoriser runs, which then widened the outer loop over
 * B into gathers and scatters of stride 16; with the outer loop left alone
 * the SLP vectoriser packs the unrolled row into one vector operation. */

/* Loop metadata !{self, !{"llvm.loop.vectorize.enable", i1 false}}; the
 * self reference (through a temporary node) makes the node distinct. */
static LLVMValueRef no_vectorize_md(Kern *k) {
    LLVMContextRef ctx = k->L->ctx;
    LLVMMetadataRef self = LLVMTemporaryMDNode(ctx, NULL, 0);
    LLVMMetadataRef opt[2] = {
        LLVMMDStringInContext2(ctx, "llvm.loop.vectorize.enable", 26),
        LLVMValueAsMetadata(LLVMConstInt(k->L->i1, 0, 0)),
    };
    LLVMMetadataRef ops[2] = {self, LLVMMDNodeInContext2(ctx, opt, 2)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(self, id); /* frees self */
    return LLVMMetadataAsValue(ctx, id);
}

LLVMValueRef cg_loop_open(Kern *k, Loop *lp, LLVMValueRef n, int ncarry, const LLVMValueRef *init) {
    gc_assert(ncarry >= 0 && ncarry <= 2);
    *lp = (Loop){.n = n, .ncarry = ncarry};
    for (int c = 0; c < ncarry; c++)
        lp->init[c] = lp->phi[c] = init[c];
    if (is_int_const(n, 1)) {
        lp->i = ci64(k, 0);
        return lp->i;
    }
    gc_assert(k->nopen < (int)(sizeof k->open / sizeof k->open[0]));
    if (k->nopen > 0)
        k->open[k->nopen - 1]->outer = true;
    k->open[k->nopen++] = lp;
    LLVMContextRef ctx = k->L->ctx;
    lp->pre = LLVMGetInsertBlock(k->b);
    lp->body = LLVMAppendBasicBlockInContext(ctx, k->fn, "loop");
    lp->exit = LLVMAppendBasicBlockInContext(ctx, k->fn, "done");
    LLVMValueRef guard = LLVMBuildICmp(k->b, LLVMIntSGT, n, ci64(k, 0), "");
    LLVMBuildCondBr(k->b, guard, lp->body, lp->exit);
    LLVMPositionBuilderAtEnd(k->b, lp->body);
    lp->i = LLVMBuildPhi(k->b, k->L->i64, "i");
    LLVMValueRef zero = ci64(k, 0);
    LLVMAddIncoming(lp->i, &zero, &lp->pre, 1);
    for (int c = 0; c < ncarry; c++) {
        lp->phi[c] = LLVMBuildPhi(k->b, LLVMTypeOf(init[c]), "acc");
        LLVMAddIncoming(lp->phi[c], &lp->init[c], &lp->pre, 1);
    }
    return lp->i;
}

void cg_loop_close(Kern *k, Loop *lp, const LLVMValueRef *next) {
    if (!lp->body) {
        for (int c = 0; c < lp->ncarry; c++)
            lp->out[c] = next[c];
        return;
    }
    gc_assert(k->nopen > 0 && k->open[k->nopen - 1] == lp);
    k->nopen--;
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(k->b);
    LLVMValueRef inext = LLVMBuildNSWAdd(k->b, lp->i, ci64(k, 1), "");
    LLVMValueRef more = LLVMBuildICmp(k->b, LLVMIntSLT, inext, lp->n, "");
    LLVMValueRef br = LLVMBuildCondBr(k->b, more, lp->body, lp->exit);
    if (lp->outer)
        LLVMSetMetadata(br, LLVMGetMDKindIDInContext(k->L->ctx, "llvm.loop", 9),
                        no_vectorize_md(k));
    LLVMAddIncoming(lp->i, &inext, &latch, 1);
    for (int c = 0; c < lp->ncarry; c++)
        LLVMAddIncoming(lp->phi[c], (LLVMValueRef *)&next[c], &latch, 1);
    LLVMPositionBuilderAtEnd(k->b, lp->exit);
    for (int c = 0; c < lp->ncarry; c++) {
        lp->out[c] = LLVMBuildPhi(k->b, LLVMTypeOf(next[c]), "sum");
        LLVMValueRef vals[2] = {lp->init[c], next[c]};
        LLVMBasicBlockRef from[2] = {lp->pre, latch};
        LLVMAddIncoming(lp->out[c], vals, from, 2);
    }
}

/* ---- index maps --------------------------------------------------------------- */

static Map map_identity(int rank) {
    Map m;
    for (int i = 0; i < IR_MAX_RANK; i++)
        m.ax[i] = (int8_t)(i < rank ? i : -1);
    return m;
}

static bool map_eq(const Map *a, const Map *b) { return memcmp(a, b, sizeof *a) == 0; }

/* The map under which body node n reads source s when n is under map.
 * Transpose: source axis perm[i] is indexed like n's axis i. Elementwise,
 * expand, assign (NumPy broadcasting): source axis k is n's axis k + (rank
 * of n - rank of source), except that a size-1 source axis against a larger
 * one is broadcast. */
static Map src_map(const Node *n, int s, const Map *map) {
    const Node *x = n->src[s];
    Map m = map_identity(0);
    if (n->op == OP_TRANSPOSE) {
        for (int i = 0; i < n->shape.rank; i++)
            m.ax[n->attr.perm[i]] = map->ax[i];
        return m;
    }
    int shift = n->shape.rank - x->shape.rank;
    gc_assert(shift >= 0);
    for (int k = 0; k < x->shape.rank; k++) {
        bool bcast = x->shape.d[k] == 1 && n->shape.d[k + shift] != 1;
        m.ax[k] = bcast ? -1 : map->ax[k + shift];
    }
    return m;
}

/* Whether the program being built applies dropout masks (train and grad);
 * eval and predict pass x through. */
static bool dropout_active(const Kern *k) {
    ProgramKind pk = k->L->p->kind;
    return pk == PROG_TRAIN || pk == PROG_GRAD;
}

/* Whether a body node n computes from source s: an ASSIGN's destination is
 * written, not read; an inactive dropout does not read its key. */
static bool reads_src(const Kern *k, const Node *n, int s) {
    if (n->op == OP_ASSIGN && s == 0)
        return false;
    return !(n->op == OP_DROPOUT && s == 1 && !dropout_active(k));
}

static Memo *memo_find(Kern *k, const Node *n, const Map *map) {
    for (int i = 0; i < k->memo.len; i++)
        if (k->memo.items[i].n == n && map_eq(&k->memo.items[i].map, map))
            return &k->memo.items[i];
    return NULL;
}

static Access *access_find(Kern *k, const Node *n, const Map *map, AccessKind kind) {
    for (int i = 0; i < k->acc.len; i++) {
        Access *a = &k->acc.items[i];
        if (a->n == n && a->kind == kind && map_eq(&a->map, map))
            return a;
    }
    return NULL;
}

/* n's contiguous row-major layout under map, as an access of the kernel
 * (once per node, map and kind): its stride along every loop axis. */
static void access_add(Kern *k, const Node *n, const Map *map, AccessKind kind) {
    if (access_find(k, n, map, kind))
        return;
    Access a = {.n = n, .map = *map, .kind = kind};
    Mono st = {1, 0};
    for (int d = n->shape.rank - 1; d >= 0; d--) {
        int j = map->ax[d];
        if (j >= 0) {
            gc_assert(mono_is(a.st[j], 0));
            a.st[j] = st;
        }
        st = mono_mul(st, mono_dim(n->shape.d[d]));
    }
    vec_push(k->L->a, &k->acc, a);
}

static void buf_add(Kern *k, const Node *n) {
    if (buf_find(k, n) < 0)
        vec_push(k->L->a, &k->bufs, offset_of(k, n));
}

/* Record n under map: a stored tensor becomes a load (or, for the root, a
 * store) of the kernel; a body node is followed into its sources, once per
 * (node, map). An active dropout also gets its index access: the offset
 * of an element in the dropout's own shape, which the loops accumulate
 * like any other, so that the mask depends on that index alone and not on
 * how this kernel's loops are shaped. */
static void collect(Kern *k, const Node *n, const Map *map, bool store) {
    if (store || !k->in_body[n->id]) {
        access_add(k, n, map, store ? ACC_STORE : ACC_LOAD);
        buf_add(k, n);
        return;
    }
    if (memo_find(k, n, map))
        return;
    Memo m = {n, *map, NULL};
    vec_push(k->L->a, &k->memo, m);
    if (n->op == OP_DROPOUT && dropout_active(k))
        access_add(k, n, map, ACC_INDEX);
    for (int s = 0; s < n->nsrc; s++)
        if (reads_src(k, n, s)) {
            Map sm = src_map(n, s, map);
            collect(k, n->src[s], &sm, false);
        }
}

/* ---- the op table (kern.h) ---------------------------------------------------- */

static const LowerFn lowerers[OP_COUNT] = {
#define X(id, name, arity, flags, shape, doc) [OP_##id] = lower_##name,
#include "../ir/ops.def"
#undef X
};

/* n's value under map at the current iteration: inline for a body node,
 * else a load through its access. Memoised per (node, map). */
static LLVMValueRef eval(Kern *k, const Node *n, const Map *map) {
    Memo *m = memo_find(k, n, map);
    if (m)
        return m->v;
    LLVMValueRef v;
    if (k->in_body[n->id]) {
        gc_assert(map);
        v = lowerers[n->op](k, n, map);
    } else {
        Access *a = access_find(k, n, map, ACC_LOAD);
        gc_assert(a);
        v = load_at(k, n, a->off);
    }
    Memo e = {n, *map, v};
    vec_push(k->L->a, &k->memo, e);
    return v;
}

/* The value of n's source s, for a fused op. */
static LLVMValueRef arg(Kern *k, const Node *n, int s, const Map *map) {
    gc_assert(map);
    Map sm = src_map(n, s, map);
    return eval(k, n->src[s], &sm);
}

/* ---- never lowered: stored leaves and views ---------------------------------- */

#define NOT_LOWERED(name)                                                 \
    LLVMValueRef lower_##name(Kern *k, const Node *n, const Map *map) {   \
        (void)k, (void)n, (void)map;                                      \
        gc_unreachable();                                                 \
    }
NOT_LOWERED(input)  /* stored leaf: loaded by eval */
NOT_LOWERED(param)  /* stored leaf: loaded by eval */
NOT_LOWERED(state)  /* stored leaf: loaded by eval */
NOT_LOWERED(hyper)  /* stored leaf: loaded by eval */
NOT_LOWERED(reshape) /* a view of its source's buffer; no kernel */
#undef NOT_LOWERED

/* ---- fused: leaves computed inline -------------------------------------------- */

LLVMValueRef lower_const(Kern *k, const Node *n, const Map *map) {
    (void)map;
    return cfp(k, n->attr.cst.value);
}

/* The product of attr.red.of's dims over attr.red.axes, as a float. */
LLVMValueRef lower_numel(Kern *k, const Node *n, const Map *map) {
    (void)map;
    Mono c = {1, 0};
    for (int i = 0; i < n->attr.red.of.rank; i++)
        if (n->attr.red.axes >> i & 1)
            c = mono_mul(c, mono_dim(n->attr.red.of.d[i]));
    if (c.e == 0)
        return cfp(k, (double)c.c);
    return to_fp(k, mono_value(k, c));
}

/* ---- fused: elementwise, one source -------------------------------------------- */

LLVMValueRef lower_neg(Kern *k, const Node *n, const Map *map) {
    return LLVMBuildFNeg(k->b, arg(k, n, 0, map), "");
}
LLVMValueRef lower_exp(Kern *k, const Node *n, const Map *map) {
    return emit_exp(k, arg(k, n, 0, map));
}
LLVMValueRef lower_log(Kern *k, const Node *n, const Map *map) {
    return emit_log(k, arg(k, n, 0, map));
}
LLVMValueRef lower_sqrt(Kern *k, const Node *n, const Map *map) {
    return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.sqrt", arg(k, n, 0, map));
}
LLVMValueRef lower_tanh(Kern *k, const Node *n, const Map *map) {
    return cg_emit_tanh(k->b, k->L->mod, arg(k, n, 0, map));
}
LLVMValueRef lower_sigmoid(Kern *k, const Node *n, const Map *map) {
    return cg_emit_sigmoid(k->b, k->L->mod, arg(k, n, 0, map));
}
/* x > 0 ? x : 0 */
LLVMValueRef lower_relu(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    return sel(k, fcmp(k, LLVMRealOGT, x, cfp(k, 0)), x, cfp(k, 0));
}
/* x > 0 ? 1 : 0 */
LLVMValueRef lower_step(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    return sel(k, fcmp(k, LLVMRealOGT, x, cfp(k, 0)), cfp(k, 1), cfp(k, 0));
}
/* |x|: clears the sign bit (NaN stays NaN) */
LLVMValueRef lower_abs(Kern *k, const Node *n, const Map *map) {
    return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.fabs", arg(k, n, 0, map));
}
/* x > 0 ? 1 : x < 0 ? -1 : x, so that ±0 and NaN come back unchanged */
LLVMValueRef lower_sign(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    LLVMValueRef neg = sel(k, fcmp(k, LLVMRealOLT, x, cfp(k, 0)), cfp(k, -1), x);
    return sel(k, fcmp(k, LLVMRealOGT, x, cfp(k, 0)), cfp(k, 1), neg);
}
/* x > 0 ? x : alpha * x (NaN gives alpha * NaN = NaN) */
LLVMValueRef lower_leaky_relu(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    LLVMValueRef ax = mul_f(k, cfp(k, n->attr.alpha), x);
    return sel(k, fcmp(k, LLVMRealOGT, x, cfp(k, 0)), x, ax);
}
LLVMValueRef lower_gelu(Kern *k, const Node *n, const Map *map) {
    return cg_emit_gelu(k->b, k->L->mod, arg(k, n, 0, map));
}
LLVMValueRef lower_dgelu(Kern *k, const Node *n, const Map *map) {
    return cg_emit_dgelu(k->b, k->L->mod, arg(k, n, 0, map));
}
LLVMValueRef lower_softplus(Kern *k, const Node *n, const Map *map) {
    return cg_emit_softplus(k->b, k->L->mod, arg(k, n, 0, map));
}

/* sin, cos, floor and a ^ b as LLVM's intrinsics. floor becomes one
 * rounding instruction and vectorises; sin, cos and pow become libm calls
 * (sinf, cosf, powf, or the double ones): they exist for schedules, scalar
 * values that LLVM hoists out of any loop. */
LLVMValueRef lower_sin(Kern *k, const Node *n, const Map *map) {
    return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.sin", arg(k, n, 0, map));
}
LLVMValueRef lower_cos(Kern *k, const Node *n, const Map *map) {
    return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.cos", arg(k, n, 0, map));
}
LLVMValueRef lower_floor(Kern *k, const Node *n, const Map *map) {
    return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.floor", arg(k, n, 0, map));
}
LLVMValueRef lower_power(Kern *k, const Node *n, const Map *map) {
    return cg_emit_intrinsic2(k->b, k->L->mod, "llvm.pow", arg(k, n, 0, map), arg(k, n, 1, map));
}

/* x^p for a constant p: exact shortcuts for the common exponents, repeated
 * squaring for small integers, exp(p log x) otherwise. */
LLVMValueRef lower_pow(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    double p = n->attr.pow.p;
    if (p == 0)
        return cfp(k, 1);
    if (p == 0.5)
        return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.sqrt", x);
    if (p == -0.5)
        return div_f(k, cfp(k, 1), cg_emit_intrinsic1(k->b, k->L->mod, "llvm.sqrt", x));
    if (p == rint(p) && fabs(p) <= 8) {
        int e = (int)fabs(p);
        LLVMValueRef r = NULL, sq = x;
        for (; e; e >>= 1) {
            if (e & 1)
                r = r ? mul_f(k, r, sq) : sq;
            if (e > 1)
                sq = mul_f(k, sq, sq);
        }
        return p < 0 ? div_f(k, cfp(k, 1), r) : r;
    }
    return emit_exp(k, mul_f(k, cfp(k, p), emit_log(k, x)));
}

/* An i32 value to the element type. */
LLVMValueRef lower_cast(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    gc_assert(LLVMTypeOf(x) == k->L->i32);
    return to_fp(k, x);
}

/* ---- fused: elementwise, two sources ---------------------------------------- */

LLVMValueRef lower_add(Kern *k, const Node *n, const Map *map) {
    return add_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
LLVMValueRef lower_sub(Kern *k, const Node *n, const Map *map) {
    return sub_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
LLVMValueRef lower_mul(Kern *k, const Node *n, const Map *map) {
    return mul_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
LLVMValueRef lower_div(Kern *k, const Node *n, const Map *map) {
    return div_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
/* a >= b ? a : b: ties (and a NaN b) give a */
LLVMValueRef lower_maximum(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef a = arg(k, n, 0, map), b = arg(k, n, 1, map);
    return sel(k, fcmp(k, LLVMRealOGE, a, b), a, b);
}
/* a == b ? 1 : 0 (a NaN is equal to nothing) */
LLVMValueRef lower_eq(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef a = arg(k, n, 0, map), b = arg(k, n, 1, map);
    return sel(k, fcmp(k, LLVMRealOEQ, a, b), cfp(k, 1), cfp(k, 0));
}

/* max(v, -100) that keeps NaN (PyTorch clamps each log of BCE at -100). */
static LLVMValueRef clamp_log(Kern *k, LLVMValueRef v) {
    return sel(k, fcmp(k, LLVMRealOLT, v, cfp(k, -100)), cfp(k, -100), v);
}

/* bce(p, y) = -(y max(log p, -100) + (1 - y) max(log(1 - p), -100)) */
LLVMValueRef lower_bce(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef p = arg(k, n, 0, map), y = arg(k, n, 1, map);
    LLVMValueRef one = cfp(k, 1);
    LLVMValueRef lp = clamp_log(k, emit_log(k, p));
    LLVMValueRef lq = clamp_log(k, emit_log(k, sub_f(k, one, p)));
    LLVMValueRef s = add_f(k, mul_f(k, y, lp), mul_f(k, sub_f(k, one, y), lq));
    return LLVMBuildFNeg(k->b, s, "");
}

/* bce_logits(z, y) = (max(z, 0) - z y) + log1p(e^-|z|): the exponential is
 * at most 1, so nothing overflows; for |z| = 1000 the last term is 0 and
 * the first is exact when z y is. */
LLVMValueRef lower_bce_logits(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef z = arg(k, n, 0, map), y = arg(k, n, 1, map);
    LLVMValueRef pos = sel(k, fcmp(k, LLVMRealOGT, z, cfp(k, 0)), z, cfp(k, 0));
    LLVMValueRef az = cg_emit_intrinsic1(k->b, k->L->mod, "llvm.fabs", z);
    LLVMValueRef tail = cg_emit_log1p(k->b, k->L->mod, emit_exp(k, LLVMBuildFNeg(k->b, az, "")));
    return add_f(k, sub_f(k, pos, mul_f(k, z, y)), tail);
}

/* ---- fused: dropout ------------------------------------------------------------
 * In the train and grad programs, out = x * (keep ? 1 / (1 - p) : 0) with
 * the scale rounded to the element type once; in eval and predict, x.
 * keep is a function of the key (the int32 hyper "rng", src[1]), the salt
 * (attr.drop.salt) and the element's row-major index i in the dropout
 * node's own shape with the run's batch size, and of nothing else, so the
 * forward dropout and its gradient (same salt, same shape) drop the same
 * elements wherever they are computed. With all arithmetic on uint32
 * (wrapping) and lowbias32(v) = Chris Wellons's integer mixer
 *     v ^= v >> 16; v *= 0x7feb352d; v ^= v >> 15; v *= 0x846ca68b; v ^= v >> 16
 * the mask is
 *     salt' = lowbias32(0x9e3779b9 * (salt + 1))       (at compile time)
 *     seed  = lowbias32(key ^ salt')                   (loop-invariant)
 *     h     = lowbias32(lowbias32(lo(i) ^ seed) ^ hi(i))   lo/hi: i's 32-bit halves
 *     keep  = (h >> 8) >= ceil(p * 2^24)
 * i.e. the top 24 bits of h as a uniform u in [0, 1), kept when u >= p:
 * P(keep) = 1 - ceil(p 2^24) / 2^24, within 2^-24 of 1 - p. Integer
 * multiplies, xors and shifts only: the loop stays vectorised. */

static uint32_t lowbias32_const(uint32_t v) {
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    v ^= v >> 16;
    return v;
}

static LLVMValueRef lowbias32(Kern *k, LLVMValueRef v) {
    LLVMBuilderRef b = k->b;
    v = LLVMBuildXor(b, v, LLVMBuildLShr(b, v, ci32(k, 16), ""), "");
    v = LLVMBuildMul(b, v, ci32(k, 0x7feb352du), "");
    v = LLVMBuildXor(b, v, LLVMBuildLShr(b, v, ci32(k, 15), ""), "");
    v = LLVMBuildMul(b, v, ci32(k, 0x846ca68bu), "");
    return LLVMBuildXor(b, v, LLVMBuildLShr(b, v, ci32(k, 16), ""), "");
}

/* keep (an i1) for element index i (i64) under key (i32) and salt. */
static LLVMValueRef dropout_keep(Kern *k, LLVMValueRef key, int salt, double p, LLVMValueRef i) {
    LLVMBuilderRef b = k->b;
    uint32_t salt_mix = lowbias32_const(0x9e3779b9u * ((uint32_t)salt + 1u));
    LLVMValueRef seed = lowbias32(k, LLVMBuildXor(b, key, ci32(k, salt_mix), ""));
    LLVMValueRef lo = LLVMBuildTrunc(b, i, k->L->i32, "");
    LLVMValueRef hi = LLVMBuildTrunc(b, LLVMBuildLShr(b, i, ci64(k, 32), ""), k->L->i32, "");
    LLVMValueRef h = lowbias32(k, LLVMBuildXor(b, lo, seed, ""));
    h = lowbias32(k, LLVMBuildXor(b, h, hi, ""));
    LLVMValueRef threshold = ci32(k, (uint32_t)ceil(p * 16777216.0));
    return LLVMBuildICmp(b, LLVMIntUGE, LLVMBuildLShr(b, h, ci32(k, 8), ""), threshold, "");
}

LLVMValueRef lower_dropout(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    double p = n->attr.drop.p;
    if (!dropout_active(k) || p == 0)
        return x;
    LLVMValueRef key = arg(k, n, 1, map);
    gc_assert(LLVMTypeOf(key) == k->L->i32);
    Access *ix = access_find(k, n, map, ACC_INDEX);
    gc_assert(ix);
    LLVMValueRef keep = dropout_keep(k, key, n->attr.drop.salt, p, ix->off);
    return mul_f(k, x, sel(k, keep, cfp(k, 1 / (1 - p)), cfp(k, 0)));
}

/* ---- fused: movement and the sink: the index map does the work ------------- */

LLVMValueRef lower_transpose(Kern *k, const Node *n, const Map *map) {
    return arg(k, n, 0, map);
}
LLVMValueRef lower_expand(Kern *k, const Node *n, const Map *map) {
    return arg(k, n, 0, map);
}
/* The new value of the parameter or state; the kernel stores it at the
 * ASSIGN's offset, which the plan made the destination's own. */
LLVMValueRef lower_assign(Kern *k, const Node *n, const Map *map) {
    return arg(k, n, 1, map);
}

/* ---- fused kernels -----------------------------------------------------------------
 * One loop nest over the root's shape. Size-1 axes are dropped; adjacent
 * axes j, j+1 are coalesced into one when every access (each load, the
 * store and each dropout's index) has stride[j] == stride[j+1] * size[j+1],
 * so [B,16] * [B,16] is one loop of 16B while [B,16] + [16] stays two (B
 * outer, 16 inner). Each access's offset is accumulated level by level; the
 * innermost body evaluates the root under the identity map and stores it.
 * An update kernel has several roots (its ASSIGNs: the parameter and its
 * states, all of one shape): the body computes every root's value, which
 * loads every old value it reads, before it stores any, so that no root
 * reads another's new value. */

/* Root r of a fused kernel: its root, then the further roots of an update. */
static const Node *kernel_root(const Kernel *kr, int r) {
    return r == 0 ? kr->root : kr->more.items[r - 1];
}

/* ---- numerics checks (Program.check_numerics) ---------------------------------- */

static bool checking(const Kern *k) { return k->L->p->check_numerics; }

/* bad | !(|v| < inf): NaN and both infinities set it, every finite v leaves
 * it (a compare and an or: the loops stay vectorised). */
static LLVMValueRef or_nonfinite(Kern *k, LLVMValueRef bad, LLVMValueRef v) {
    LLVMValueRef a = cg_emit_intrinsic1(k->b, k->L->mod, "llvm.fabs", v);
    return LLVMBuildOr(k->b, bad, fcmp(k, LLVMRealUGE, a, cfp(k, INFINITY)), "");
}

/* Where update kernels save the old values of ASSIGN x's destination. */
static size_t backup_of(const Lower *L, const Node *x) {
    gc_assert(x->op == OP_ASSIGN && L->plan->numerics_backup);
    size_t off = L->plan->numerics_backup[x->src[0]->id];
    gc_assert(off != PLAN_NONE);
    return off;
}

/* The kernel's pointer parameter for the buffer at byte offset off. */
static LLVMValueRef ptr_at(Kern *k, size_t off) {
    for (int i = 0; i < k->bufs.len; i++)
        if (k->bufs.items[i] == off)
            return k->ptrs[i];
    gc_unreachable();
}

/* Whether n's buffer holds a NaN or Inf: one pass over its elements, for the
 * kernel ops, after they computed n. False for an integer tensor. */
static LLVMValueRef scan_nonfinite(Kern *k, const Node *n) {
    LLVMValueRef bad = LLVMConstInt(k->L->i1, 0, 0);
    if (n->dtype != DT_FLOAT)
        return bad;
    Loop l;
    LLVMValueRef numel = mono_value(k, mono_dims(&n->shape, 0, n->shape.rank));
    LLVMValueRef i = cg_loop_open(k, &l, numel, 1, &bad);
    LLVMValueRef next = or_nonfinite(k, l.phi[0], load_at(k, n, i));
    cg_loop_close(k, &l, &next);
    return l.out[0];
}

/* A parallel kernel's share [*lo, return) of n iterations: lo = n * part /
 * nparts and the end the next part's lo (n for the last), both rounded
 * down to a multiple of `align` (a power of two) except n itself. */
static LLVMValueRef part_bounds(Kern *k, LLVMValueRef n, int64_t align, LLVMValueRef *lo) {
    LLVMBuilderRef b = k->b;
    LLVMValueRef next = LLVMBuildNSWAdd(b, k->part, ci64(k, 1), "");
    *lo = LLVMBuildSDiv(b, LLVMBuildNSWMul(b, n, k->part, ""), k->nparts, "");
    LLVMValueRef hi = LLVMBuildSDiv(b, LLVMBuildNSWMul(b, n, next, ""), k->nparts, "");
    if (align > 1) {
        *lo = LLVMBuildAnd(b, *lo, ci64(k, -align), "lo");
        hi = LLVMBuildAnd(b, hi, ci64(k, -align), "");
    }
    LLVMValueRef last = LLVMBuildICmp(b, LLVMIntEQ, next, k->nparts, "");
    k->split = true;
    return LLVMBuildSelect(b, last, n, hi, "hi");
}

/* A parallel fused kernel's share of the outermost loop, rounded to
 * multiples of 16 when it is the only loop, so that each part's vectors
 * stay aligned as in the whole loop. The loop then runs hi - lo times
 * from each access's offset at lo. */
static void split_outer(Kern *k, LLVMValueRef *n, LLVMValueRef *stv, int nl) {
    LLVMValueRef lo, hi = part_bounds(k, n[0], nl == 1 ? 16 : 1, &lo);
    n[0] = LLVMBuildNSWSub(k->b, hi, lo, "");
    for (int a = 0; a < k->acc.len; a++)
        k->acc.items[a].off = imul(k, lo, stv[a * IR_MAX_RANK]);
}

LLVMValueRef cg_rows_open(Kern *k, Loop *lp, LLVMValueRef n) {
    if (!k->par)
        return cg_loop_open(k, lp, n, 0, NULL);
    gc_assert(!k->split);
    LLVMValueRef lo, hi = part_bounds(k, n, 1, &lo);
    return iadd(k, lo, cg_loop_open(k, lp, LLVMBuildNSWSub(k->b, hi, lo, ""), 0, NULL));
}

/* The loop nest of a fused kernel; returns, when the program checks
 * numerics, whether a stored value was NaN or Inf (an i1 carried through
 * every loop), else NULL. */
static LLVMValueRef emit_fused(Kern *k) {
    const Node *root = k->k->root;
    int rank = root->shape.rank;
    Mono size[IR_MAX_RANK];
    for (int j = 0; j < rank; j++)
        size[j] = mono_dim(root->shape.d[j]);

    /* Drop size-1 loop axes, then coalesce from the innermost outwards. */
    int nl = 0;
    for (int j = 0; j < rank; j++) {
        if (mono_is(size[j], 1))
            continue;
        for (int a = 0; a < k->acc.len; a++)
            k->acc.items[a].st[nl] = k->acc.items[a].st[j];
        size[nl++] = size[j];
    }
    for (int l = nl - 2; l >= 0; l--) {
        bool ok = true;
        for (int a = 0; a < k->acc.len && ok; a++) {
            const Mono *st = k->acc.items[a].st;
            ok = mono_eq(st[l], mono_mul(st[l + 1], size[l + 1]));
        }
        if (!ok)
            continue;
        size[l] = mono_mul(size[l], size[l + 1]);
        for (int m = l + 1; m < nl - 1; m++)
            size[m] = size[m + 1];
        for (int a = 0; a < k->acc.len; a++) {
            Mono *st = k->acc.items[a].st;
            st[l] = st[l + 1];
            for (int m = l + 1; m < nl - 1; m++)
                st[m] = st[m + 1];
        }
        nl--;
    }

    /* Trip counts and strides as values, in the entry block. */
    LLVMValueRef n[IR_MAX_RANK];
    for (int l = 0; l < nl; l++)
        n[l] = mono_value(k, size[l]);
    LLVMValueRef *stv = arena_alloc(k->L->a, sizeof *stv * (size_t)(k->acc.len * IR_MAX_RANK + 1));
    for (int a = 0; a < k->acc.len; a++) {
        k->acc.items[a].off = ci64(k, 0);
        for (int l = 0; l < nl; l++)
            stv[a * IR_MAX_RANK + l] = mono_value(k, k->acc.items[a].st[l]);
    }

    if (k->par && nl > 0)
        split_outer(k, n, stv, nl);

    bool check = checking(k);
    LLVMValueRef bad = check ? LLVMConstInt(k->L->i1, 0, 0) : NULL;
    Loop lp[IR_MAX_RANK];
    for (int l = 0; l < nl; l++) {
        LLVMValueRef i = cg_loop_open(k, &lp[l], n[l], check ? 1 : 0, &bad);
        if (check)
            bad = lp[l].phi[0];
        for (int a = 0; a < k->acc.len; a++) {
            Access *ac = &k->acc.items[a];
            ac->off = iadd(k, ac->off, imul(k, i, stv[a * IR_MAX_RANK + l]));
        }
    }
    k->memo.len = 0;
    Map id = map_identity(rank);
    int nroots = 1 + k->k->more.len;
    LLVMValueRef *v = arena_alloc(k->L->a, sizeof *v * (size_t)nroots);
    for (int r = 0; r < nroots; r++)
        v[r] = eval(k, kernel_root(k->k, r), &id);
    for (int r = 0; r < nroots && check; r++) { /* the old values, before any store */
        const Node *x = kernel_root(k->k, r);
        if (x->op != OP_ASSIGN)
            continue;
        Access *out = access_find(k, x, &id, ACC_STORE);
        LLVMValueRef old = load_at(k, x, out->off);
        LLVMValueRef at = LLVMBuildInBoundsGEP2(k->b, ty_of(k, x), ptr_at(k, backup_of(k->L, x)),
                                                &out->off, 1, "");
        LLVMBuildStore(k->b, old, at);
    }
    for (int r = 0; r < nroots; r++) {
        const Node *x = kernel_root(k->k, r);
        Access *out = access_find(k, x, &id, ACC_STORE);
        gc_assert(out);
        store_at(k, x, out->off, v[r]);
        if (check && x->dtype == DT_FLOAT)
            bad = or_nonfinite(k, bad, v[r]);
    }
    for (int l = nl - 1; l >= 0; l--) {
        cg_loop_close(k, &lp[l], check ? &bad : NULL);
        if (check)
            bad = lp[l].out[0];
    }
    return bad;
}

/* ---- kernel functions and programs ------------------------------------------------ */

static LLVMAttributeRef enum_attr(Lower *L, const char *name) {
    return LLVMCreateEnumAttribute(L->ctx, LLVMGetEnumAttributeKindForName(name, strlen(name)),
                                   0);
}

/* Vectorise with zmm registers: the polynomial exp is measurably faster
 * than with the host's default preference for 256 bits. */
static LLVMAttributeRef vector_width_attr(Lower *L) {
    return LLVMCreateStringAttribute(L->ctx, "prefer-vector-width", 19, "512", 3);
}

/* The kernel function for k's buffers, `void name(ptr noalias..., i64 batch)`
 * (returning i1 when the program checks numerics), internal, with the
 * builder at its entry. */
static void kern_begin(Kern *k, const char *name) {
    Lower *L = k->L;
    int nb = k->bufs.len, np = nb + 1 + (k->par ? 2 : 0);
    LLVMTypeRef *params = arena_alloc(L->a, sizeof *params * (size_t)np);
    for (int i = 0; i < nb; i++)
        params[i] = L->ptr;
    for (int i = nb; i < np; i++)
        params[i] = L->i64;
    k->fnty = LLVMFunctionType(checking(k) ? L->i1 : L->vd, params, (unsigned)np, 0);
    k->fn = LLVMAddFunction(L->mod, name, k->fnty);
    LLVMSetLinkage(k->fn, LLVMInternalLinkage);
    LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex, enum_attr(L, "nounwind"));
    LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex, vector_width_attr(L));
    k->ptrs = arena_alloc(L->a, sizeof *k->ptrs * (size_t)(nb + 1));
    for (int i = 0; i < nb; i++) {
        /* The plan never overlaps a kernel's output with its inputs. */
        LLVMAddAttributeAtIndex(k->fn, (unsigned)i + 1, enum_attr(L, "noalias"));
        k->ptrs[i] = LLVMGetParam(k->fn, (unsigned)i);
    }
    k->batch = LLVMGetParam(k->fn, (unsigned)nb);
    LLVMSetValueName2(k->batch, "batch", 5);
    if (k->par) {
        k->part = LLVMGetParam(k->fn, (unsigned)nb + 1);
        k->nparts = LLVMGetParam(k->fn, (unsigned)nb + 2);
        LLVMSetValueName2(k->part, "part", 4);
        LLVMSetValueName2(k->nparts, "nparts", 6);
    }
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->ctx, k->fn, "entry"));
}

/* The `_part` wrapper of parallel kernel k as an external declaration,
 * for a kernel another module defines (cg_lower's CgSplit): all that the
 * program calls, by rt_parallel_for. */
static void kern_declare(Kern *k, const char *name) {
    Lower *L = k->L;
    gc_assert(k->par);
    LLVMTypeRef params[3] = {L->ptr, L->i64, L->i64};
    k->wrap = LLVMAddFunction(L->mod, arena_printf(L->a, "%s_part", name),
                              LLVMFunctionType(L->vd, params, 3, 0));
    LLVMAddAttributeAtIndex(k->wrap, LLVMAttributeFunctionIndex, enum_attr(L, "nounwind"));
}

/* The independent rows of a row kernel, the outermost loop its lowerer
 * opens with cg_rows_open: the dims before the axis of a softmax, before
 * the classes of cross-entropy and one-hot. {0, 0} for other one-node
 * kernels. */
static Mono kernel_rows(const Node *n) {
    switch (n->op) {
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        return mono_dims(&n->shape, 0, n->attr.axis);
    case OP_XENT:
        return mono_dims(&n->src[0]->shape, 0, n->src[0]->shape.rank - 1);
    case OP_ONEHOT:
        return mono_dims(&n->shape, 0, n->shape.rank - 1);
    default:
        return mono(0, 0);
    }
}

/* The elements parallel kernel kr goes through, which rt_parallel_for
 * divides into parts: its root's, or a cross-entropy's logits'. */
static Mono kernel_work(const Kernel *kr) {
    const Node *n = kr->root->op == OP_XENT ? kr->root->src[0] : kr->root;
    return mono_dims(&n->shape, 0, n->shape.rank);
}

/* Whether kernel kr runs on the thread pool: a fused loop (elementwise,
 * no reduction: its iterations are independent) or a row kernel of
 * several rows, big enough to repay the hand-off or of a batch-dependent
 * size (the runtime decides by the element count, rt_parallel_for), in a
 * program that does not check numerics (whose kernels return a flag). */
bool cg_kernel_parallel(const Program *p, const Kernel *kr) {
    if (p->check_numerics)
        return false;
    if (!kr->fused) {
        Mono rows = kernel_rows(kr->root);
        if (rows.c == 0 || (rows.e == 0 && rows.c < 2))
            return false;
    }
    Mono work = kernel_work(kr);
    return work.e > 0 || work.c >= 65536;
}

/* `void name_part(ptr ctx, i64 part, i64 nparts)` for parallel kernel k
 * (rt_parallel_for's RtPartFn): ctx holds k's buffer pointers, then the
 * batch (8 bytes each). */
static void emit_part_wrapper(Lower *L, Kern *k, const char *name) {
    LLVMTypeRef params[3] = {L->ptr, L->i64, L->i64};
    k->wrap = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->vd, params, 3, 0));
    LLVMSetLinkage(k->wrap, LLVMInternalLinkage);
    LLVMAddAttributeAtIndex(k->wrap, LLVMAttributeFunctionIndex, enum_attr(L, "nounwind"));
    LLVMAddAttributeAtIndex(k->wrap, LLVMAttributeFunctionIndex, vector_width_attr(L));
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->ctx, k->wrap, "entry"));
    LLVMValueRef ctx = LLVMGetParam(k->wrap, 0);
    int nb = k->bufs.len;
    LLVMValueRef *args = arena_alloc(L->a, sizeof *args * (size_t)(nb + 3));
    for (int i = 0; i <= nb; i++) {
        LLVMValueRef at = LLVMConstInt(L->i64, (unsigned long long)i, 0);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(L->b, L->i64, ctx, &at, 1, "");
        args[i] = LLVMBuildLoad2(L->b, i < nb ? L->ptr : L->i64, slot, "");
    }
    args[nb + 1] = LLVMGetParam(k->wrap, 1);
    args[nb + 2] = LLVMGetParam(k->wrap, 2);
    LLVMBuildCall2(L->b, k->fnty, k->fn, args, (unsigned)nb + 3, "");
    LLVMBuildRetVoid(L->b);
}

/* Build kernel kr of the current program as function `name`; a kernel of
 * another part (L->owner) only as the declaration the program calls. */
static void emit_kernel(Lower *L, Kern *k, const Kernel *kr, const char *name) {
    *k = (Kern){.L = L, .b = L->b, .k = kr, .par = cg_kernel_parallel(L->p, kr)};
    const Node *root = kr->root;
    LLVMValueRef bad = NULL; /* checking numerics: true if a stored value is NaN or Inf */
    if (kr->fused) {
        k->in_body = arena_alloc(L->a, (size_t)L->g->nodes.len);
        for (int i = 0; i < kr->body.len; i++)
            k->in_body[kr->body.items[i]->id] = true;
        Map id = map_identity(root->shape.rank);
        for (int r = 0; r < 1 + kr->more.len; r++) {
            const Node *x = kernel_root(kr, r);
            gc_assert(k->in_body[x->id] && shape_eq(&x->shape, &root->shape));
            gc_assert(r == 0 || x->op == OP_ASSIGN);
            collect(k, x, &id, true);
            collect(k, x, &id, false);
            if (checking(k) && x->op == OP_ASSIGN)
                vec_push(L->a, &k->bufs, backup_of(L, x));
        }
    } else {
        gc_assert(kr->body.len == 0 || (kr->body.len == 1 && kr->body.items[0] == root));
        gc_assert(kr->more.len == 0);
        buf_add(k, root);
        for (int s = 0; s < root->nsrc; s++)
            buf_add(k, root->src[s]);
    }
    if (L->owner && L->owner[kr - L->p->kernels.items] != L->part) {
        kern_declare(k, name);
        return;
    }
    kern_begin(k, name);
    if (kr->fused) {
        bad = emit_fused(k);
    } else {
        LLVMValueRef v = lowerers[root->op](k, root, NULL);
        gc_assert(!v && k->split == k->par);
        if (checking(k))
            bad = scan_nonfinite(k, root);
    }
    if (bad)
        LLVMBuildRet(L->b, bad);
    else
        LLVMBuildRetVoid(L->b);
    if (k->par)
        emit_part_wrapper(L, k, arena_printf(L->a, "%s_part", name));
}

/* Copy back from their backups the destinations of the update kernels
 * [0, upto] of p (the others have not run). */
static void emit_restore(Lower *L, const Program *p, int upto, LLVMValueRef arena) {
    LLVMTypeRef i8 = LLVMInt8TypeInContext(L->ctx);
    for (int j = 0; j <= upto; j++) {
        const Kernel *kr = &p->kernels.items[j];
        for (int r = 0; r < 1 + kr->more.len && kr->root->op == OP_ASSIGN; r++) {
            const Node *x = kernel_root(kr, r), *dest = x->src[0];
            LLVMValueRef to = LLVMConstInt(L->i64, p->offset[dest->id], 0);
            LLVMValueRef from = LLVMConstInt(L->i64, backup_of(L, x), 0);
            size_t bytes = node_bytes(dest, L->plan->max_batch, L->plan->elem_size);
            LLVMBuildMemCpy(L->b, LLVMBuildInBoundsGEP2(L->b, i8, arena, &to, 1, ""), 64,
                            LLVMBuildInBoundsGEP2(L->b, i8, arena, &from, 1, ""), 64,
                            LLVMConstInt(L->i64, bytes, 0));
        }
    }
}

/* Run parallel kernel k on the pool: its buffers (args) and batch into a
 * context on the stack, then rt_parallel_for(k's wrapper, ctx, k's element
 * count). Returns NULL (a parallel kernel checks nothing). */
static LLVMValueRef call_parallel(Lower *L, Kern *k, LLVMValueRef *args, LLVMValueRef batch) {
    int nb = k->bufs.len;
    LLVMTypeRef slots = LLVMArrayType2(L->i64, (uint64_t)nb + 1);
    LLVMValueRef ctx = LLVMBuildAlloca(L->b, slots, "ctx");
    for (int i = 0; i <= nb; i++) {
        LLVMValueRef at = LLVMConstInt(L->i64, (unsigned long long)i, 0);
        LLVMBuildStore(L->b, args[i], LLVMBuildInBoundsGEP2(L->b, L->i64, ctx, &at, 1, ""));
    }
    Kern at_entry = {.L = L, .b = L->b, .batch = batch};
    LLVMValueRef work = mono_value(&at_entry, kernel_work(k->k));
    LLVMTypeRef params[3] = {L->ptr, L->ptr, L->i64};
    LLVMTypeRef fty = LLVMFunctionType(L->vd, params, 3, 0);
    LLVMValueRef call[3] = {k->wrap, ctx, work};
    LLVMBuildCall2(L->b, fty, runtime_fn(L, "rt_parallel_for", fty), call, 3, "");
    return NULL;
}

/* ---- data parallelism (Program.sync_at) ----------------------------------------------- */

/* `void rt_dist_sync(ptr arena)`: the runtime averages the gradients over
 * the processes of a data-parallel run. An ordinary external call, which
 * may read and write any memory: no kernel's loads or stores move across
 * it. */
static void emit_sync(Lower *L, LLVMValueRef arena) {
    LLVMTypeRef fty = LLVMFunctionType(L->vd, &L->ptr, 1, 0);
    LLVMBuildCall2(L->b, fty, runtime_fn(L, "rt_dist_sync", fty), &arena, 1, "");
}

/* ---- profiling (Program.profile) ---------------------------------------------------- */

/* `i64 rt_profile_clock()` (monotonic nanoseconds): an ordinary external
 * call, which may read and write any memory, so that no kernel's loads or
 * stores move across it. */
static LLVMValueRef profile_clock(Lower *L) {
    LLVMTypeRef fty = LLVMFunctionType(L->i64, NULL, 0, 0);
    return LLVMBuildCall2(L->b, fty, runtime_fn(L, "rt_profile_clock", fty), NULL, 0, "");
}

/* Profile counter c (an int64 at Plan.profile_counters) += v. */
static void profile_add(Lower *L, LLVMValueRef arena, int c, LLVMValueRef v) {
    gc_assert(L->plan->profile_counters != PLAN_NONE);
    LLVMValueRef off =
        LLVMConstInt(L->i64, L->plan->profile_counters + sizeof(int64_t) * (size_t)c, 0);
    LLVMValueRef at =
        LLVMBuildInBoundsGEP2(L->b, LLVMInt8TypeInContext(L->ctx), arena, &off, 1, "");
    LLVMValueRef sum = LLVMBuildAdd(L->b, LLVMBuildLoad2(L->b, L->i64, at, ""), v, "");
    LLVMBuildStore(L->b, sum, at);
}

/* The program's counters when it ends: nanoseconds since start, one run. */
static void profile_end(Lower *L, const Program *p, LLVMValueRef arena, LLVMValueRef start,
                        LLVMValueRef now) {
    profile_add(L, arena, p->kernels.len, LLVMBuildSub(L->b, now, start, ""));
    profile_add(L, arena, p->kernels.len + 1, LLVMConstInt(L->i64, 1, 0));
}

/* `void name(ptr arena, i64 batch)`: each kernel in order, called with
 * arena + offset for each of its buffers, and rt_dist_sync before kernel
 * p->sync_at; when the program checks
 * numerics, a kernel that returns true ends it, with its index + 1 in the
 * status word and the parameters and states as they were. When it
 * profiles, the clock is read before the first kernel and after each, and
 * each kernel's time, the program's and its run are counted (also when a
 * numerics check ends it). */
static void emit_program(Lower *L, const Program *p, const char *name) {
    L->p = p;
    int nk = p->kernels.len;
    Kern *ks = arena_alloc(L->a, sizeof *ks * (size_t)(nk + 1));
    for (int i = 0; i < nk; i++)
        emit_kernel(L, &ks[i], &p->kernels.items[i], arena_printf(L->a, "%s_k%d", name, i));

    LLVMTypeRef params[2] = {L->ptr, L->i64};
    LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->vd, params, 2, 0));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, enum_attr(L, "nounwind"));
    /* The kernels are usually inlined here, and vectorised after that. */
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, vector_width_attr(L));
    LLVMValueRef arena = LLVMGetParam(fn, 0), batch = LLVMGetParam(fn, 1);
    LLVMSetValueName2(arena, "arena", 5);
    LLVMSetValueName2(batch, "batch", 5);
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
    LLVMValueRef start = p->profile ? profile_clock(L) : NULL, prev = start;
    for (int i = 0; i < nk; i++) {
        Kern *k = &ks[i];
        int nb = k->bufs.len;
        if (i == p->sync_at) {
            emit_sync(L, arena);
            if (p->profile) /* the sync's time is the program's, no kernel's */
                prev = profile_clock(L);
        }
        LLVMValueRef *args = arena_alloc(L->a, sizeof *args * (size_t)(nb + 1));
        for (int b = 0; b < nb; b++) {
            LLVMValueRef off = LLVMConstInt(L->i64, k->bufs.items[b], 0);
            args[b] = LLVMBuildInBoundsGEP2(L->b, LLVMInt8TypeInContext(L->ctx), arena, &off, 1, "");
        }
        args[nb] = batch;
        LLVMValueRef bad = k->par ? call_parallel(L, k, args, batch)
                                  : LLVMBuildCall2(L->b, k->fnty, k->fn, args, (unsigned)nb + 1, "");
        if (p->profile) {
            LLVMValueRef now = profile_clock(L);
            profile_add(L, arena, i, LLVMBuildSub(L->b, now, prev, ""));
            prev = now;
        }
        if (p->check_numerics) {
            LLVMBasicBlockRef stop = LLVMAppendBasicBlockInContext(L->ctx, fn, "nonfinite");
            LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->ctx, fn, "next");
            LLVMBuildCondBr(L->b, bad, stop, next);
            LLVMPositionBuilderAtEnd(L->b, stop);
            gc_assert(L->plan->numerics_status != PLAN_NONE);
            LLVMValueRef off = LLVMConstInt(L->i64, L->plan->numerics_status, 0);
            LLVMValueRef at = LLVMBuildInBoundsGEP2(L->b, LLVMInt8TypeInContext(L->ctx), arena,
                                                    &off, 1, "");
            LLVMBuildStore(L->b, LLVMConstInt(L->i64, (unsigned long long)i + 1, 0), at);
            emit_restore(L, p, i, arena);
            if (p->profile)
                profile_end(L, p, arena, start, prev);
            LLVMBuildRetVoid(L->b);
            LLVMPositionBuilderAtEnd(L->b, next);
        }
    }
    if (nk == p->sync_at)
        emit_sync(L, arena);
    if (p->profile)
        profile_end(L, p, arena, start, prev);
    LLVMBuildRetVoid(L->b);
}

/* The kernels of program p in part L->part, for a module without p's
 * entry point: parallel kernels, whose `_part` wrappers are external (the
 * kernel functions stay internal). */
static void emit_outlined(Lower *L, const Program *p, const char *name) {
    L->p = p;
    for (int i = 0; i < p->kernels.len; i++) {
        if (L->owner[i] != L->part)
            continue;
        Kern k;
        emit_kernel(L, &k, &p->kernels.items[i], arena_printf(L->a, "%s_k%d", name, i));
        gc_assert(k.par);
        LLVMSetLinkage(k.wrap, LLVMExternalLinkage);
    }
}

LLVMModuleRef cg_lower(LLVMContextRef ctx, const Graph *g, const Plan *plan, int elem_size,
                       const CgSplit *split, int part, Arena *a, const char *names[PROG_COUNT]) {
    gc_assert(elem_size == plan->elem_size && (elem_size == 4 || elem_size == 8));
    Lower L = {.ctx = ctx, .g = g, .plan = plan, .a = a, .part = part};
    L.mod = LLVMModuleCreateWithNameInContext(g->name, ctx);
    L.b = LLVMCreateBuilderInContext(ctx);
    /* Out of memory in a: the half-built module and the builder go, and
     * the caller hears NULL (arena_oom_size(a) says how much failed). */
    LLVMModuleRef volatile mod = L.mod;
    LLVMBuilderRef volatile b = L.b;
    jmp_buf oom;
    if (setjmp(oom)) {
        arena_set_oom(a, NULL);
        LLVMDisposeBuilder(b);
        LLVMDisposeModule(mod);
        return NULL;
    }
    arena_set_oom(a, &oom);
    L.elem = elem_size == 4 ? LLVMFloatTypeInContext(ctx) : LLVMDoubleTypeInContext(ctx);
    L.i1 = LLVMInt1TypeInContext(ctx);
    L.i32 = LLVMInt32TypeInContext(ctx);
    L.i64 = LLVMInt64TypeInContext(ctx);
    L.ptr = LLVMPointerTypeInContext(ctx, 0);
    L.vd = LLVMVoidTypeInContext(ctx);
    for (int k = 0; k < PROG_COUNT; k++) {
        const Program *p = &plan->prog[k];
        names[k] = NULL;
        if (p->roots.len == 0)
            continue;
        const char *name = arena_printf(a, "%s_%s", g->name, p->name);
        L.owner = split ? split->kernel[k] : NULL;
        if (!split || split->entry[k] == part)
            emit_program(&L, p, names[k] = name);
        else
            emit_outlined(&L, p, name);
    }
    arena_set_oom(a, NULL);
    LLVMDisposeBuilder(L.b);
    return L.mod;
}

void cg_lower_break(LLVMModuleRef m) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), NULL, 0, 0);
    LLVMValueRef fn = LLVMAddFunction(m, "gradc_test_broken", fty);
    LLVMAppendBasicBlockInContext(ctx, fn, "no_terminator");
}
