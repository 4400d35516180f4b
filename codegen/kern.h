/* kern.h: what lower.c (fused loop kernels, kernel functions, programs) and
 * kernels.c (the one-node kernel ops) share, and nothing else includes: the
 * kernel being built, sizes with the batch dimension in them, counted loops,
 * buffer access, and the lower_<op> table.
 *
 * Dimension legend: B the batch size (the kernel's `batch` argument);
 * Mono c * B^e, the size or stride of an axis.
 */
#ifndef GRADC_CG_KERN_H
#define GRADC_CG_KERN_H

#include "cg_internal.h"

#include "../ir/ir.h"

/* ---- monomials: sizes and strides with the batch dimension in them ------- */

typedef struct Mono {
    int64_t c; /* 0 is the zero stride (then e is 0) */
    int e;
} Mono;

static inline Mono mono(int64_t c, int e) { return c == 0 ? (Mono){0, 0} : (Mono){c, e}; }
static inline Mono mono_dim(int64_t d) { return d == DIM_BATCH ? (Mono){1, 1} : (Mono){d, 0}; }
static inline Mono mono_mul(Mono a, Mono b) { return mono(a.c * b.c, a.e + b.e); }
static inline bool mono_eq(Mono a, Mono b) { return a.c == b.c && a.e == b.e; }
static inline bool mono_is(Mono a, int64_t c) { return a.e == 0 && a.c == c; }

/* Product of s->d[from..to). */
static inline Mono mono_dims(const Shape *s, int from, int to) {
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
    const Plan *plan;
    const Program *p; /* the program being built */
    Arena *a;
    /* When set, the part of each kernel of p (cg_lower's CgSplit): this
     * module defines those of part `part` and declares the others. */
    const unsigned char *owner;
    int part;
} Lower;

/* An index map: node axis k is indexed by loop axis ax[k] of the kernel's
 * loop shape, or by nothing (-1: broadcast, index 0). Unused entries -1. */
typedef struct Map {
    int8_t ax[IR_MAX_RANK];
} Map;

typedef enum AccessKind {
    ACC_LOAD,  /* a stored tensor read by the kernel */
    ACC_STORE, /* a root, written (an update kernel has several) */
    ACC_INDEX, /* no buffer: a body node's own row-major element index (DROPOUT) */
} AccessKind;

/* A tensor's contiguous row-major layout seen under a map of a fused kernel. */
typedef struct Access {
    const Node *n;
    Map map;
    AccessKind kind;
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
    Vec(size_t) bufs;   /* distinct byte offsets: one ptr parameter each */
    LLVMValueRef *ptrs; /* the parameters, by index in bufs */
    bool *in_body;      /* by node id: computed inline (fused kernels) */
    Vec(Access) acc;
    Vec(Memo) memo;
    struct Loop *open[8]; /* the loops being emitted, outermost first */
    int nopen;
    /* A parallel kernel (lower.c, cg_kernel_parallel): its function takes
     * (part, nparts) after batch and runs only its share of the outermost
     * loop; `wrap` is `void name_part(ptr ctx, i64 part, i64 nparts)`,
     * which loads the buffers and batch from ctx and calls it. */
    bool par;
    bool split; /* the share has been taken (each parallel kernel once) */
    LLVMValueRef part, nparts, wrap;
} Kern;

/* ---- small IR helpers -------------------------------------------------------- */

/* The runtime's function `name` of type fty (rt_gemm_f32, rt_parallel_for,
 * rt_profile_clock ...), declared nounwind in L's module the first time. */
static inline LLVMValueRef runtime_fn(Lower *L, const char *name, LLVMTypeRef fty) {
    LLVMValueRef fn = LLVMGetNamedFunction(L->mod, name);
    if (!fn) {
        fn = LLVMAddFunction(L->mod, name, fty);
        LLVMAddAttributeAtIndex(
            fn, LLVMAttributeFunctionIndex,
            LLVMCreateEnumAttribute(L->ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    }
    return fn;
}

static inline LLVMValueRef ci64(Kern *k, int64_t v) {
    return LLVMConstInt(k->L->i64, (unsigned long long)v, 1);
}
static inline LLVMValueRef ci32(Kern *k, uint32_t v) { return LLVMConstInt(k->L->i32, v, 0); }
static inline LLVMValueRef cfp(Kern *k, double v) { return LLVMConstReal(k->L->elem, v); }

static inline bool is_int_const(LLVMValueRef v, int64_t c) {
    return LLVMIsAConstantInt(v) && LLVMConstIntGetSExtValue(v) == c;
}

static inline LLVMValueRef iadd(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    if (is_int_const(a, 0))
        return b;
    if (is_int_const(b, 0))
        return a;
    return LLVMBuildNSWAdd(k->b, a, b, "");
}

static inline LLVMValueRef imul(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    if (is_int_const(a, 0) || is_int_const(b, 1))
        return a;
    if (is_int_const(b, 0) || is_int_const(a, 1))
        return b;
    return LLVMBuildNSWMul(k->b, a, b, "");
}

/* m as an i64 at the builder's position. */
static inline LLVMValueRef mono_value(Kern *k, Mono m) {
    LLVMValueRef v = ci64(k, m.c);
    for (int i = 0; i < m.e; i++)
        v = imul(k, v, k->batch);
    return v;
}

/* Fast-math flags on v when it is an instruction that takes them (a
 * constant-folded value is left alone). */
static inline LLVMValueRef fmf(LLVMValueRef v, LLVMFastMathFlags f) {
    if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, f);
    return v;
}

enum { CONTRACT = LLVMFastMathAllowContract, REASSOC = LLVMFastMathAllowReassoc | CONTRACT };

static inline LLVMValueRef add_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return fmf(LLVMBuildFAdd(k->b, a, b, ""), CONTRACT);
}
static inline LLVMValueRef sub_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return fmf(LLVMBuildFSub(k->b, a, b, ""), CONTRACT);
}
static inline LLVMValueRef mul_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return fmf(LLVMBuildFMul(k->b, a, b, ""), CONTRACT);
}
static inline LLVMValueRef div_f(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFDiv(k->b, a, b, "");
}
/* An accumulating add that may be reassociated, so reductions vectorise. */
static inline LLVMValueRef facc(Kern *k, LLVMValueRef acc, LLVMValueRef x) {
    return fmf(LLVMBuildFAdd(k->b, acc, x, ""), REASSOC);
}
static inline LLVMValueRef fcmp(Kern *k, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFCmp(k->b, p, a, b, "");
}
static inline LLVMValueRef sel(Kern *k, LLVMValueRef c, LLVMValueRef t, LLVMValueRef f) {
    return LLVMBuildSelect(k->b, c, t, f, "");
}
static inline LLVMValueRef to_fp(Kern *k, LLVMValueRef i) {
    return LLVMBuildSIToFP(k->b, i, k->L->elem, "");
}
/* An i32 tensor element (a label, an id) as an i64 index. */
static inline LLVMValueRef to_i64(Kern *k, LLVMValueRef i) {
    return LLVMBuildSExt(k->b, i, k->L->i64, "");
}

static inline LLVMValueRef emit_exp(Kern *k, LLVMValueRef x) {
    return cg_emit_exp(k->b, k->L->mod, x);
}
static inline LLVMValueRef emit_log(Kern *k, LLVMValueRef x) {
    return cg_emit_log(k->b, k->L->mod, x);
}

/* ---- buffers ------------------------------------------------------------------ */

static inline LLVMTypeRef ty_of(Kern *k, const Node *n) {
    return n->dtype == DT_INT ? k->L->i32 : k->L->elem;
}

static inline size_t offset_of(Kern *k, const Node *n) {
    size_t off = k->L->p->offset[n->id];
    gc_assert(off != PLAN_NONE);
    return off;
}

/* The index of n's buffer among the kernel's parameters (-1: not one). */
static inline int buf_find(Kern *k, const Node *n) {
    size_t off = offset_of(k, n);
    for (int i = 0; i < k->bufs.len; i++)
        if (k->bufs.items[i] == off)
            return i;
    return -1;
}

/* The kernel's pointer parameter for n's buffer. */
static inline LLVMValueRef buf_ptr(Kern *k, const Node *n) {
    int i = buf_find(k, n);
    gc_assert(i >= 0);
    return k->ptrs[i];
}

static inline LLVMValueRef elem_ptr(Kern *k, const Node *n, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(k->b, ty_of(k, n), buf_ptr(k, n), &idx, 1, "");
}
static inline LLVMValueRef load_at(Kern *k, const Node *n, LLVMValueRef idx) {
    return LLVMBuildLoad2(k->b, ty_of(k, n), elem_ptr(k, n, idx), "");
}
static inline void store_at(Kern *k, const Node *n, LLVMValueRef idx, LLVMValueRef v) {
    LLVMBuildStore(k->b, v, elem_ptr(k, n, idx));
}

/* ---- counted loops (lower.c) ----------------------------------------------------
 * cg_loop_open emits `for (i = 0; i < n; i++)` in the form the loop
 * vectoriser wants: a guard n > 0, then a bottom-tested body with an i64
 * induction variable and an nsw increment; it returns i. Up to two values
 * may be carried around the loop (reduction accumulators): phi[c] inside,
 * out[c] after the loop. A constant trip count of 1 emits no loop at all
 * (i is 0). A loop that contains another is not vectorised itself (see
 * lower.c). cg_loop_close ends the innermost open loop with the carried
 * values next[] of this iteration. */
typedef struct Loop {
    LLVMValueRef n, i;
    LLVMBasicBlockRef pre, body, exit; /* body NULL: the trip count is 1 */
    bool outer;                        /* contains another loop */
    int ncarry;
    LLVMValueRef init[2], phi[2], out[2];
} Loop;

LLVMValueRef cg_loop_open(Kern *k, Loop *lp, LLVMValueRef n, int ncarry, const LLVMValueRef *init);
void cg_loop_close(Kern *k, Loop *lp, const LLVMValueRef *next);
/* The outermost loop of a row kernel (softmax, cross-entropy, one-hot)
 * over n independent rows: all of them, or in a parallel kernel only its
 * part's share (cg_kernel_parallel). Returns the row index. */
LLVMValueRef cg_rows_open(Kern *k, Loop *lp, LLVMValueRef n);

/* ---- the op table -------------------------------------------------------------
 * lower_<name>(k, n, map), bound by name from ops.def so that an op without
 * a lowering is a build error:
 *   - fused ops (elementwise, movement, CONST, NUMEL, ASSIGN; lower.c): map
 *     is n's index map; return n's value at the current loop iteration
 *     (ASSIGN: the value it stores), computing sources through arg();
 *   - kernel ops (every other op; kernels.c): map is NULL, the buffers of n
 *     and its sources are the kernel's; emit the whole kernel body at the
 *     builder and return NULL;
 *   - stored leaves and views are never lowered: kernels load them. */
typedef LLVMValueRef (*LowerFn)(Kern *k, const Node *n, const Map *map);

#define X(id, name, arity, flags, shape, doc) \
    LLVMValueRef lower_##name(Kern *k, const Node *n, const Map *map);
#include "../ir/ops.def"
#undef X

#endif
