/* lower.c: planned programs to LLVM IR, one kernel function per Kernel and
 * one entry point per program.
 *
 * Owns what every op means as machine arithmetic: the loop nests of fused
 * kernels (index maps, broadcasting, axis coalescing), reductions, softmax,
 * cross-entropy, one-hot and the BLAS calls. Must not decide fusion, order
 * or memory layout (it follows Program.kernels and Program.offset exactly),
 * build the math polynomials (mathfn.c), or verify, optimise or JIT the
 * module (cg.c and jit.c). Broken invariants of the plan are assertions.
 *
 * Generated code for model m and program p:
 *   void m_p(ptr arena, i64 batch)                  external: calls each
 *       kernel in order with arena + the planned offset of each buffer
 *   void m_p_k<i>(ptr noalias buf..., i64 batch)    internal: kernel i, one
 *       pointer per distinct buffer it touches
 * Tensors are contiguous row-major at their offsets: float tensors hold the
 * element type (float or double), integer tensors i32.
 *
 * Dimension legend:
 *   B        the batch size, the `batch` argument: known at run time only
 *   Mono     c * B^e: the size or stride of an axis (every dim is c or B)
 *   M, N, K  matmul: C[M, N] = op(A)[M, K] @ op(B)[K, N]
 *   O, A, I  softmax: outer x axis x inner, the axis in the middle
 *   R, C     cross-entropy and one-hot: rows x classes
 */
#include "cg_internal.h"

#include "../ir/ir.h"

#include <llvm-c/DebugInfo.h>

#include <math.h>
#include <string.h>

/* ---- monomials: sizes and strides with the batch dimension in them ------- */

typedef struct Mono {
    int64_t c; /* 0 is the zero stride (then e is 0) */
    int e;
} Mono;

static Mono mono(int64_t c, int e) { return c == 0 ? (Mono){0, 0} : (Mono){c, e}; }
static Mono mono_dim(int64_t d) { return d == DIM_BATCH ? (Mono){1, 1} : (Mono){d, 0}; }
static Mono mono_mul(Mono a, Mono b) { return mono(a.c * b.c, a.e + b.e); }
static bool mono_eq(Mono a, Mono b) { return a.c == b.c && a.e == b.e; }
static bool mono_is(Mono a, int64_t c) { return a.e == 0 && a.c == c; }

/* Product of s->d[from..to). */
static Mono mono_dims(const Shape *s, int from, int to) {
    Mono m = {1, 0};
    for (int i = from; i < to; i++)
        m = mono_mul(m, mono_dim(s->d[i]));
    return m;
}

/* ---- the module and the kernel being built -------------------------------- */

typedef struct Lower {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef elem, i1, i32, i64, ptr, vd;
    const Graph *g;
    const Program *p;
    Arena *a;
} Lower;

/* An index map: node axis k is indexed by loop axis ax[k] of the kernel's
 * loop shape, or by nothing (-1: broadcast, index 0). Unused entries -1. */
typedef struct Map {
    int8_t ax[IR_MAX_RANK];
} Map;

/* A stored tensor read (or, for the root, written) under a map. */
typedef struct Access {
    const Node *n;
    Map map;
    bool store;
    Mono st[IR_MAX_RANK]; /* element stride along each loop axis */
    LLVMValueRef off;     /* element offset at the current iteration */
} Access;

/* The value of a body node under a map in the current iteration. */
typedef struct Memo {
    const Node *n;
    Map map;
    LLVMValueRef v; /* NULL while collecting accesses */
} Memo;

typedef struct Kern {
    Lower *L;
    LLVMBuilderRef b; /* = L->b */
    const Kernel *k;
    LLVMValueRef fn, batch;
    LLVMTypeRef fnty;
    Vec(size_t) bufs;  /* distinct byte offsets: one ptr parameter each */
    LLVMValueRef *ptrs; /* the parameters, by index in bufs */
    bool *in_body;      /* by node id: computed inline (fused kernels) */
    Vec(Access) acc;
    Vec(Memo) memo;
    struct Loop *open[8]; /* the loops being emitted, outermost first */
    int nopen;
} Kern;

/* ---- small IR helpers -------------------------------------------------------- */

static LLVMValueRef ci64(Kern *k, int64_t v) {
    return LLVMConstInt(k->L->i64, (unsigned long long)v, 1);
}
static LLVMValueRef cfp(Kern *k, double v) { return LLVMConstReal(k->L->elem, v); }

static bool is_int_const(LLVMValueRef v, int64_t c) {
    return LLVMIsAConstantInt(v) && LLVMConstIntGetSExtValue(v) == c;
}

static LLVMValueRef iadd(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    if (is_int_const(a, 0))
        return b;
    if (is_int_const(b, 0))
        return a;
    return LLVMBuildNSWAdd(k->b, a, b, "");
}

static LLVMValueRef imul(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    if (is_int_const(a, 0) || is_int_const(b, 1))
        return a;
    if (is_int_const(b, 0) || is_int_const(a, 1))
        return b;
    return LLVMBuildNSWMul(k->b, a, b, "");
}

/* m as an i64 at the builder's position. */
static LLVMValueRef mono_value(Kern *k, Mono m) {
    LLVMValueRef v = ci64(k, m.c);
    for (int i = 0; i < m.e; i++)
        v = imul(k, v, k->batch);
    return v;
}

/* Fast-math flags on v when it is an instruction that takes them (a
 * constant-folded value is left alone). */
static LLVMValueRef fmf(LLVMValueRef v, LLVMFastMathFlags f) {
    if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, f);
    return v;
}

enum { CONTRACT = LLVMFastMathAllowContract, REASSOC = LLVMFastMathAllowReassoc | CONTRACT };

static LLVMValueRef add_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return fmf(LLVMBuildFAdd(k->b, a, b, ""), CONTRACT);
}
static LLVMValueRef sub_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return fmf(LLVMBuildFSub(k->b, a, b, ""), CONTRACT);
}
static LLVMValueRef mul_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return fmf(LLVMBuildFMul(k->b, a, b, ""), CONTRACT);
}
static LLVMValueRef div_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFDiv(k->b, a, b, "");
}
/* An accumulating add that may be reassociated, so reductions vectorise. */
static LLVMValueRef facc(Kern *k, LLVMValueRef acc, LLVMValueRef x) {
    return fmf(LLVMBuildFAdd(k->b, acc, x, ""), REASSOC);
}
static LLVMValueRef fcmp(Kern *k, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFCmp(k->b, p, a, b, "");
}
static LLVMValueRef sel(Kern *k, LLVMValueRef c, LLVMValueRef t, LLVMValueRef f) {
    return LLVMBuildSelect(k->b, c, t, f, "");
}
static LLVMValueRef to_fp(Kern *k, LLVMValueRef i) { return LLVMBuildSIToFP(k->b, i, k->L->elem, ""); }

static LLVMValueRef emit_exp(Kern *k, LLVMValueRef x) { return cg_emit_exp(k->b, k->L->mod, x); }
static LLVMValueRef emit_log(Kern *k, LLVMValueRef x) { return cg_emit_log(k->b, k->L->mod, x); }
static LLVMValueRef emit_sqrt(Kern *k, LLVMValueRef x) {
    return cg_emit_intrinsic1(k->b, k->L->mod, "llvm.sqrt", x);
}

/* ---- buffers ------------------------------------------------------------------ */

static LLVMTypeRef ty_of(Kern *k, const Node *n) {
    return n->dtype == DT_INT ? k->L->i32 : k->L->elem;
}

static size_t offset_of(Kern *k, const Node *n) {
    size_t off = k->L->p->offset[n->id];
    gc_assert(off != PLAN_NONE);
    return off;
}

/* The index of n's buffer among the kernel's parameters (-1: not one). */
static int buf_find(Kern *k, const Node *n) {
    size_t off = offset_of(k, n);
    for (int i = 0; i < k->bufs.len; i++)
        if (k->bufs.items[i] == off)
            return i;
    return -1;
}

static void buf_add(Kern *k, const Node *n) {
    if (buf_find(k, n) < 0)
        vec_push(k->L->a, &k->bufs, offset_of(k, n));
}

static LLVMValueRef elem_ptr(Kern *k, const Node *n, LLVMValueRef idx) {
    int i = buf_find(k, n);
    gc_assert(i >= 0);
    return LLVMBuildInBoundsGEP2(k->b, ty_of(k, n), k->ptrs[i], &idx, 1, "");
}
static LLVMValueRef load_at(Kern *k, const Node *n, LLVMValueRef idx) {
    return LLVMBuildLoad2(k->b, ty_of(k, n), elem_ptr(k, n, idx), "");
}
static void store_at(Kern *k, const Node *n, LLVMValueRef idx, LLVMValueRef v) {
    LLVMBuildStore(k->b, v, elem_ptr(k, n, idx));
}

/* ---- counted loops -------------------------------------------------------------
 * loop_open emits `for (i = 0; i < n; i++)` in the form the loop vectoriser
 * wants: a guard n > 0, then a bottom-tested body with an i64 induction
 * variable and an nsw increment. Up to two values may be carried around the
 * loop (reduction accumulators): phi[c] inside, out[c] after the loop. A
 * constant trip count of 1 emits no loop at all (i is 0).
 *
 * A loop that contains another is marked llvm.loop.vectorize.enable=false.
 * LLVM fully unrolls a short constant inner loop (the 16 of [B, 16] + [16])
 * before the loop vectoriser runs, which then widened the outer loop over
 * B into gathers and scatters of stride 16; with the outer loop left alone
 * the SLP vectoriser packs the unrolled row into one vector operation. */

typedef struct Loop {
    LLVMValueRef n, i;
    LLVMBasicBlockRef pre, body, exit; /* body NULL: the trip count is 1 */
    bool outer;                        /* contains another loop */
    int ncarry;
    LLVMValueRef init[2], phi[2], out[2];
} Loop;

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

static LLVMValueRef loop_open(Kern *k, Loop *lp, LLVMValueRef n, int ncarry,
                              const LLVMValueRef *init) {
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

/* Close lp with the carried values next[] of this iteration. */
static void loop_close(Kern *k, Loop *lp, const LLVMValueRef *next) {
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

/* Whether a body node n computes from source s (an ASSIGN's destination is
 * written, not read). */
static bool reads_src(const Node *n, int s) { return !(n->op == OP_ASSIGN && s == 0); }

static Memo *memo_find(Kern *k, const Node *n, const Map *map) {
    for (int i = 0; i < k->memo.len; i++)
        if (k->memo.items[i].n == n && map_eq(&k->memo.items[i].map, map))
            return &k->memo.items[i];
    return NULL;
}

static Access *access_find(Kern *k, const Node *n, const Map *map, bool store) {
    for (int i = 0; i < k->acc.len; i++) {
        Access *a = &k->acc.items[i];
        if (a->n == n && a->store == store && map_eq(&a->map, map))
            return a;
    }
    return NULL;
}

/* Record n under map: a stored tensor becomes an access of the kernel with
 * its stride along every loop axis; a body node is followed into its
 * sources, once per (node, map). */
static void collect(Kern *k, const Node *n, const Map *map, bool store) {
    if (store || !k->in_body[n->id]) {
        if (access_find(k, n, map, store))
            return;
        Access a = {.n = n, .map = *map, .store = store};
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
        buf_add(k, n);
        return;
    }
    if (memo_find(k, n, map))
        return;
    Memo m = {n, *map, NULL};
    vec_push(k->L->a, &k->memo, m);
    for (int s = 0; s < n->nsrc; s++)
        if (reads_src(n, s)) {
            Map sm = src_map(n, s, map);
            collect(k, n->src[s], &sm, false);
        }
}

/* ---- the op table -------------------------------------------------------------
 * lower_<name>(k, n, map), bound by name from ops.def so that an op without
 * a lowering is a build error:
 *   - fused ops (elementwise, movement, CONST, NUMEL, ASSIGN): map is n's
 *     index map; return n's value at the current loop iteration (ASSIGN:
 *     the value it stores), computing sources through arg();
 *   - kernel ops (MATMUL, SUM, MEAN, SOFTMAX, LOG_SOFTMAX, XENT, ONEHOT):
 *     map is NULL; emit the whole kernel body at the builder, return NULL;
 *   - stored leaves and views are never lowered: kernels load them. */

typedef LLVMValueRef (*LowerFn)(Kern *k, const Node *n, const Map *map);

#define X(id, name, arity, flags, shape, doc) \
    static LLVMValueRef lower_##name(Kern *k, const Node *n, const Map *map);
#include "../ir/ops.def"
#undef X

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
        Access *a = access_find(k, n, map, false);
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

#define NOT_LOWERED(name)                                                        \
    static LLVMValueRef lower_##name(Kern *k, const Node *n, const Map *map) {   \
        (void)k, (void)n, (void)map;                                             \
        gc_unreachable();                                                        \
    }
NOT_LOWERED(input)  /* stored leaf: loaded by eval */
NOT_LOWERED(param)  /* stored leaf: loaded by eval */
NOT_LOWERED(hyper)  /* stored leaf: loaded by eval */
NOT_LOWERED(reshape) /* a view of its source's buffer; no kernel */
#undef NOT_LOWERED

/* ---- fused: leaves computed inline -------------------------------------------- */

static LLVMValueRef lower_const(Kern *k, const Node *n, const Map *map) {
    (void)map;
    return cfp(k, n->attr.cst.value);
}

/* The product of attr.red.of's dims over attr.red.axes, as a float. */
static LLVMValueRef lower_numel(Kern *k, const Node *n, const Map *map) {
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

static LLVMValueRef lower_neg(Kern *k, const Node *n, const Map *map) {
    return LLVMBuildFNeg(k->b, arg(k, n, 0, map), "");
}
static LLVMValueRef lower_exp(Kern *k, const Node *n, const Map *map) {
    return emit_exp(k, arg(k, n, 0, map));
}
static LLVMValueRef lower_log(Kern *k, const Node *n, const Map *map) {
    return emit_log(k, arg(k, n, 0, map));
}
static LLVMValueRef lower_sqrt(Kern *k, const Node *n, const Map *map) {
    return emit_sqrt(k, arg(k, n, 0, map));
}
static LLVMValueRef lower_tanh(Kern *k, const Node *n, const Map *map) {
    return cg_emit_tanh(k->b, k->L->mod, arg(k, n, 0, map));
}
static LLVMValueRef lower_sigmoid(Kern *k, const Node *n, const Map *map) {
    return cg_emit_sigmoid(k->b, k->L->mod, arg(k, n, 0, map));
}
/* x > 0 ? x : 0 */
static LLVMValueRef lower_relu(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    return sel(k, fcmp(k, LLVMRealOGT, x, cfp(k, 0)), x, cfp(k, 0));
}
/* x > 0 ? 1 : 0 */
static LLVMValueRef lower_step(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    return sel(k, fcmp(k, LLVMRealOGT, x, cfp(k, 0)), cfp(k, 1), cfp(k, 0));
}

/* x^p for a constant p: exact shortcuts for the common exponents, repeated
 * squaring for small integers, exp(p log x) otherwise. */
static LLVMValueRef lower_pow(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    double p = n->attr.pow.p;
    if (p == 0)
        return cfp(k, 1);
    if (p == 0.5)
        return emit_sqrt(k, x);
    if (p == -0.5)
        return div_f(k, cfp(k, 1), emit_sqrt(k, x));
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
static LLVMValueRef lower_cast(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef x = arg(k, n, 0, map);
    gc_assert(LLVMTypeOf(x) == k->L->i32);
    return to_fp(k, x);
}

/* ---- fused: elementwise, two sources ---------------------------------------- */

static LLVMValueRef lower_add(Kern *k, const Node *n, const Map *map) {
    return add_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
static LLVMValueRef lower_sub(Kern *k, const Node *n, const Map *map) {
    return sub_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
static LLVMValueRef lower_mul(Kern *k, const Node *n, const Map *map) {
    return mul_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
static LLVMValueRef lower_div(Kern *k, const Node *n, const Map *map) {
    return div_f(k, arg(k, n, 0, map), arg(k, n, 1, map));
}
/* a >= b ? a : b: ties (and a NaN b) give a */
static LLVMValueRef lower_maximum(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef a = arg(k, n, 0, map), b = arg(k, n, 1, map);
    return sel(k, fcmp(k, LLVMRealOGE, a, b), a, b);
}

/* max(v, -100) that keeps NaN (PyTorch clamps each log of BCE at -100). */
static LLVMValueRef clamp_log(Kern *k, LLVMValueRef v) {
    return sel(k, fcmp(k, LLVMRealOLT, v, cfp(k, -100)), cfp(k, -100), v);
}

/* bce(p, y) = -(y max(log p, -100) + (1 - y) max(log(1 - p), -100)) */
static LLVMValueRef lower_bce(Kern *k, const Node *n, const Map *map) {
    LLVMValueRef p = arg(k, n, 0, map), y = arg(k, n, 1, map);
    LLVMValueRef one = cfp(k, 1);
    LLVMValueRef lp = clamp_log(k, emit_log(k, p));
    LLVMValueRef lq = clamp_log(k, emit_log(k, sub_f(k, one, p)));
    LLVMValueRef s = add_f(k, mul_f(k, y, lp), mul_f(k, sub_f(k, one, y), lq));
    return LLVMBuildFNeg(k->b, s, "");
}

/* ---- fused: movement and the sink: the index map does the work ------------- */

static LLVMValueRef lower_transpose(Kern *k, const Node *n, const Map *map) {
    return arg(k, n, 0, map);
}
static LLVMValueRef lower_expand(Kern *k, const Node *n, const Map *map) {
    return arg(k, n, 0, map);
}
/* The new value of the parameter; the kernel stores it at the root's
 * offset, which the plan made the parameter's own. */
static LLVMValueRef lower_assign(Kern *k, const Node *n, const Map *map) {
    return arg(k, n, 1, map);
}

/* ---- fused kernels -----------------------------------------------------------------
 * One loop nest over the root's shape. Size-1 axes are dropped; adjacent
 * axes j, j+1 are coalesced into one when every access (each load and the
 * store) has stride[j] == stride[j+1] * size[j+1], so [B,16] * [B,16] is one
 * loop of 16B while [B,16] + [16] stays two (B outer, 16 inner). Each
 * access's offset is accumulated level by level; the innermost body
 * evaluates the root under the identity map and stores it. */

static void emit_fused(Kern *k) {
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

    Loop lp[IR_MAX_RANK];
    for (int l = 0; l < nl; l++) {
        LLVMValueRef i = loop_open(k, &lp[l], n[l], 0, NULL);
        for (int a = 0; a < k->acc.len; a++) {
            Access *ac = &k->acc.items[a];
            ac->off = iadd(k, ac->off, imul(k, i, stv[a * IR_MAX_RANK + l]));
        }
    }
    k->memo.len = 0;
    Map id = map_identity(rank);
    LLVMValueRef v = eval(k, root, &id);
    Access *out = access_find(k, root, &id, true);
    store_at(k, root, out->off, v);
    for (int l = nl - 1; l >= 0; l--)
        loop_close(k, &lp[l], NULL);
}

/* ---- kernel ops: BLAS --------------------------------------------------------------- */

/* The declaration of cblas_sgemm / cblas_dgemm (blasint is int here):
 * (order, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc). */
static LLVMValueRef gemm_decl(Lower *L, LLVMTypeRef *fty) {
    const char *name = L->elem == LLVMFloatTypeInContext(L->ctx) ? "cblas_sgemm" : "cblas_dgemm";
    LLVMTypeRef i = L->i32, f = L->elem, p = L->ptr;
    LLVMTypeRef params[14] = {i, i, i, i, i, i, f, p, i, p, i, f, p, i};
    *fty = LLVMFunctionType(L->vd, params, 14, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(L->mod, name);
    if (!fn) {
        fn = LLVMAddFunction(L->mod, name, *fty);
        LLVMAddAttributeAtIndex(
            fn, LLVMAttributeFunctionIndex,
            LLVMCreateEnumAttribute(L->ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    }
    return fn;
}

/* C[M, N] = op(A) @ op(B), A physically [ra, ca], B [rb, cb], row-major:
 * cblas_xgemm(RowMajor, ta, tb, M, N, K, 1, A, ca, B, cb, 0, C, N). */
static LLVMValueRef lower_matmul(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *a = n->src[0], *b = n->src[1];
    bool ta = n->attr.mm.ta, tb = n->attr.mm.tb;
    LLVMTypeRef i32 = k->L->i32;
#define I32(v) LLVMBuildTrunc(k->b, (v), i32, "")
#define DIM(x, i) I32(mono_value(k, mono_dim((x)->shape.d[i])))
    LLVMValueRef args[14] = {
        LLVMConstInt(i32, 101, 0),             /* CblasRowMajor */
        LLVMConstInt(i32, ta ? 112 : 111, 0), /* CblasTrans : CblasNoTrans */
        LLVMConstInt(i32, tb ? 112 : 111, 0),
        DIM(n, 0),
        DIM(n, 1),
        DIM(a, ta ? 0 : 1),
        cfp(k, 1),
        k->ptrs[buf_find(k, a)],
        DIM(a, 1),
        k->ptrs[buf_find(k, b)],
        DIM(b, 1),
        cfp(k, 0),
        k->ptrs[buf_find(k, n)],
        DIM(n, 1),
    };
#undef DIM
#undef I32
    LLVMTypeRef fty;
    LLVMValueRef fn = gemm_decl(k->L, &fty);
    LLVMBuildCall2(k->b, fty, fn, args, 14, "");
    return NULL;
}

/* ---- kernel ops: reductions -------------------------------------------------------
 * The source's axes, size-1 axes dropped, are merged into runs of reduced
 * (R) and kept (K) axes; being contiguous, each run is one loop. The
 * source offset is mixed-radix over all runs, the output offset over the
 * kept ones. When no reduced run comes before a kept one (K R, R, K) each
 * output element is written once: a scalar accumulator over the innermost
 * R run (row sums), or a copy. Otherwise the output is zeroed and
 * accumulated into: with K innermost, out[o + j] += in[i + j] over unit
 * strides (bias gradients: sum over axis 0 of [B, H]). MEAN divides by the
 * count of reduced elements. */

typedef struct Run {
    Mono size;
    bool red;
} Run;

static void emit_reduce(Kern *k, const Node *n, bool mean) {
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
    LLVMValueRef cnt = mean ? to_fp(k, mono_value(k, count)) : NULL;
    LLVMValueRef sz[IR_MAX_RANK];
    for (int r = 0; r < nr; r++)
        sz[r] = mono_value(k, run[r].size);
    LLVMValueRef nout_v = mono_value(k, nout);
    Loop lz, lp[IR_MAX_RANK];

    if (!direct) {
        LLVMValueRef i = loop_open(k, &lz, nout_v, 0, NULL);
        store_at(k, n, i, cfp(k, 0));
        loop_close(k, &lz, NULL);
    }
    if (nr == 0) {
        LLVMValueRef v = load_at(k, x, ci64(k, 0));
        store_at(k, n, ci64(k, 0), mean ? div_f(k, v, cnt) : v);
    } else {
        LLVMValueRef ioff = ci64(k, 0), ooff = ci64(k, 0);
        for (int r = 0; r < nr - 1; r++) {
            LLVMValueRef i = loop_open(k, &lp[r], sz[r], 0, NULL);
            ioff = iadd(k, imul(k, ioff, sz[r]), i);
            if (!run[r].red)
                ooff = iadd(k, imul(k, ooff, sz[r]), i);
        }
        const Run *last = &run[nr - 1];
        LLVMValueRef ibase = imul(k, ioff, sz[nr - 1]);
        Loop li;
        if (last->red) {
            LLVMValueRef zero = cfp(k, 0);
            LLVMValueRef j = loop_open(k, &li, sz[nr - 1], 1, &zero);
            LLVMValueRef acc = facc(k, li.phi[0], load_at(k, x, iadd(k, ibase, j)));
            loop_close(k, &li, &acc);
            LLVMValueRef s = li.out[0];
            if (direct)
                store_at(k, n, ooff, mean ? div_f(k, s, cnt) : s);
            else
                store_at(k, n, ooff, facc(k, load_at(k, n, ooff), s));
        } else {
            LLVMValueRef obase = imul(k, ooff, sz[nr - 1]);
            LLVMValueRef j = loop_open(k, &li, sz[nr - 1], 0, NULL);
            LLVMValueRef v = load_at(k, x, iadd(k, ibase, j)), o = iadd(k, obase, j);
            if (direct) /* nothing of size > 1 is reduced: a copy */
                store_at(k, n, o, mean ? div_f(k, v, cnt) : v);
            else
                store_at(k, n, o, add_f(k, load_at(k, n, o), v));
            loop_close(k, &li, NULL);
        }
        for (int r = nr - 2; r >= 0; r--)
            loop_close(k, &lp[r], NULL);
    }
    if (mean && !direct) {
        LLVMValueRef i = loop_open(k, &lz, nout_v, 0, NULL);
        store_at(k, n, i, div_f(k, load_at(k, n, i), cnt));
        loop_close(k, &lz, NULL);
    }
}

static LLVMValueRef lower_sum(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_reduce(k, n, false);
    return NULL;
}
static LLVMValueRef lower_mean(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_reduce(k, n, true);
    return NULL;
}

/* ---- kernel ops: softmax, cross-entropy, one-hot ---------------------------------- */

/* max over j < len of x[base + j * stride] (-inf for none), as llvm.maxnum
 * so that it vectorises; a NaN is dropped here but reaches the sum of exps. */
static LLVMValueRef emit_row_max(Kern *k, const Node *x, LLVMValueRef base, LLVMValueRef len,
                                 LLVMValueRef stride) {
    Loop l;
    LLVMValueRef init = cfp(k, -INFINITY);
    LLVMValueRef j = loop_open(k, &l, len, 1, &init);
    LLVMValueRef v = load_at(k, x, iadd(k, base, imul(k, j, stride)));
    LLVMValueRef m = cg_emit_intrinsic2(k->b, k->L->mod, "llvm.maxnum", l.phi[0], v);
    loop_close(k, &l, &m);
    return l.out[0];
}

/* sum over j < len of exp(x[base + j * stride] - m); each term also
 * stored at the same index of `store` when it is not NULL. */
static LLVMValueRef emit_row_sum_exp(Kern *k, const Node *x, LLVMValueRef base, LLVMValueRef len,
                                     LLVMValueRef stride, LLVMValueRef m, const Node *store) {
    Loop l;
    LLVMValueRef zero = cfp(k, 0);
    LLVMValueRef j = loop_open(k, &l, len, 1, &zero);
    LLVMValueRef idx = iadd(k, base, imul(k, j, stride));
    LLVMValueRef e = emit_exp(k, sub_f(k, load_at(k, x, idx), m));
    if (store)
        store_at(k, store, idx, e);
    LLVMValueRef s = facc(k, l.phi[0], e);
    loop_close(k, &l, &s);
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
    LLVMValueRef o = loop_open(k, &lo, O, 0, NULL);
    LLVMValueRef t = loop_open(k, &lt, I, 0, NULL);
    LLVMValueRef base = iadd(k, imul(k, o, AI), t);
    LLVMValueRef m = emit_row_max(k, x, base, A, I);
    LLVMValueRef s = emit_row_sum_exp(k, x, base, A, I, m, log ? NULL : n);

    LLVMValueRef ls = log ? emit_log(k, s) : NULL;
    LLVMValueRef j = loop_open(k, &l3, A, 0, NULL);
    LLVMValueRef idx = iadd(k, base, imul(k, j, I));
    if (log)
        store_at(k, n, idx, sub_f(k, sub_f(k, load_at(k, x, idx), m), ls));
    else
        store_at(k, n, idx, div_f(k, load_at(k, n, idx), s));
    loop_close(k, &l3, NULL);
    loop_close(k, &lt, NULL);
    loop_close(k, &lo, NULL);
}

static LLVMValueRef lower_softmax(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_softmax(k, n, false);
    return NULL;
}
static LLVMValueRef lower_log_softmax(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    emit_softmax(k, n, true);
    return NULL;
}

/* out[r] = logsumexp(z[r, :]) - z[r, label[r]] over R rows of C classes;
 * NaN when label[r] is outside [0, C) (z is never read out of bounds). */
static LLVMValueRef lower_xent(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *z = n->src[0], *y = n->src[1];
    int last = z->shape.rank - 1;
    LLVMValueRef R = mono_value(k, mono_dims(&z->shape, 0, last));
    LLVMValueRef C = mono_value(k, mono_dim(z->shape.d[last]));
    LLVMValueRef one = ci64(k, 1);
    Loop lr;
    LLVMValueRef r = loop_open(k, &lr, R, 0, NULL);
    LLVMValueRef base = imul(k, r, C);
    LLVMValueRef m = emit_row_max(k, z, base, C, one);
    LLVMValueRef s = emit_row_sum_exp(k, z, base, C, one, m, NULL);
    LLVMValueRef label = LLVMBuildSExt(k->b, load_at(k, y, r), k->L->i64, "");
    LLVMValueRef ok = LLVMBuildICmp(k->b, LLVMIntULT, label, C, "");
    LLVMValueRef at = sel(k, ok, label, ci64(k, 0));
    LLVMValueRef zl = load_at(k, z, iadd(k, base, at));
    /* logsumexp - z[label] = log(sum) - (z[label] - max) */
    LLVMValueRef loss = sub_f(k, emit_log(k, s), sub_f(k, zl, m));
    store_at(k, n, r, sel(k, ok, loss, cfp(k, NAN)));
    loop_close(k, &lr, NULL);
    return NULL;
}

/* out[r, j] = (j == label[r]) ? 1 : 0 over R rows of C columns. */
static LLVMValueRef lower_onehot(Kern *k, const Node *n, const Map *map) {
    gc_assert(!map);
    const Node *y = n->src[0];
    int last = n->shape.rank - 1;
    LLVMValueRef R = mono_value(k, mono_dims(&n->shape, 0, last));
    LLVMValueRef C = mono_value(k, mono_dim(n->shape.d[last]));
    Loop lr, lc;
    LLVMValueRef r = loop_open(k, &lr, R, 0, NULL);
    LLVMValueRef label = LLVMBuildSExt(k->b, load_at(k, y, r), k->L->i64, "");
    LLVMValueRef base = imul(k, r, C);
    LLVMValueRef j = loop_open(k, &lc, C, 0, NULL);
    LLVMValueRef hit = LLVMBuildICmp(k->b, LLVMIntEQ, j, label, "");
    store_at(k, n, iadd(k, base, j), sel(k, hit, cfp(k, 1), cfp(k, 0)));
    loop_close(k, &lc, NULL);
    loop_close(k, &lr, NULL);
    return NULL;
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

/* The kernel function for k's buffers, `void name(ptr noalias..., i64 batch)`,
 * internal, with the builder at its entry. */
static void kern_begin(Kern *k, const char *name) {
    Lower *L = k->L;
    int nb = k->bufs.len;
    LLVMTypeRef *params = arena_alloc(L->a, sizeof *params * (size_t)(nb + 1));
    for (int i = 0; i < nb; i++)
        params[i] = L->ptr;
    params[nb] = L->i64;
    k->fnty = LLVMFunctionType(L->vd, params, (unsigned)nb + 1, 0);
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
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->ctx, k->fn, "entry"));
}

/* Build kernel kr of the current program as function `name`. */
static void emit_kernel(Lower *L, Kern *k, const Kernel *kr, const char *name) {
    *k = (Kern){.L = L, .b = L->b, .k = kr};
    const Node *root = kr->root;
    if (kr->fused) {
        k->in_body = arena_alloc(L->a, (size_t)L->g->nodes.len);
        for (int i = 0; i < kr->body.len; i++)
            k->in_body[kr->body.items[i]->id] = true;
        gc_assert(k->in_body[root->id]);
        Map id = map_identity(root->shape.rank);
        collect(k, root, &id, true);
        collect(k, root, &id, false);
        kern_begin(k, name);
        emit_fused(k);
    } else {
        gc_assert(kr->body.len == 0 || (kr->body.len == 1 && kr->body.items[0] == root));
        buf_add(k, root);
        for (int s = 0; s < root->nsrc; s++)
            buf_add(k, root->src[s]);
        kern_begin(k, name);
        LLVMValueRef v = lowerers[root->op](k, root, NULL);
        gc_assert(!v);
    }
    LLVMBuildRetVoid(L->b);
}

/* `void name(ptr arena, i64 batch)`: each kernel in order, called with
 * arena + offset for each of its buffers. */
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
    for (int i = 0; i < nk; i++) {
        Kern *k = &ks[i];
        int nb = k->bufs.len;
        LLVMValueRef *args = arena_alloc(L->a, sizeof *args * (size_t)(nb + 1));
        for (int b = 0; b < nb; b++) {
            LLVMValueRef off = LLVMConstInt(L->i64, k->bufs.items[b], 0);
            args[b] = LLVMBuildInBoundsGEP2(L->b, LLVMInt8TypeInContext(L->ctx), arena, &off, 1, "");
        }
        args[nb] = batch;
        LLVMBuildCall2(L->b, k->fnty, k->fn, args, (unsigned)nb + 1, "");
    }
    LLVMBuildRetVoid(L->b);
}

LLVMModuleRef cg_lower(LLVMContextRef ctx, const Graph *g, const Plan *plan, int elem_size,
                       Arena *a, const char *names[PROG_COUNT]) {
    gc_assert(elem_size == plan->elem_size && (elem_size == 4 || elem_size == 8));
    Lower L = {.ctx = ctx, .g = g, .a = a};
    L.mod = LLVMModuleCreateWithNameInContext(g->name, ctx);
    L.b = LLVMCreateBuilderInContext(ctx);
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
        names[k] = arena_printf(a, "%s_%s", g->name, p->name);
        emit_program(&L, p, names[k]);
    }
    LLVMDisposeBuilder(L.b);
    return L.mod;
}
