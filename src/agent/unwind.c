/*
 * unwind.c: x86-64 DWARF CFI tables and the async-signal-safe unwind step.
 *
 * Owns: parsing .eh_frame / .debug_frame (CIEs, FDEs, pointer encodings),
 * running each FDE's CFA program and flattening the result into unw_row
 * arrays (see unwind.h), and the step that applies a row to registers.
 *
 * Invariants: a built table is sorted by pc with one row per pc; every FDE
 * is followed by a gap row at its end unless another FDE starts there. The
 * parser never reads outside the section (every read is bounds-checked and a
 * truncated entry fails the whole table with HE_FORMAT, naming its offset).
 *
 * Algorithm: for each FDE, the interpreter keeps the state of the three
 * rules that matter on x86-64 (CFA, rbp, return address) and emits a row at
 * every advance_loc; remember/restore_state use a small bounded stack. Rows
 * of all FDEs are then sorted (gap rows before real rows at equal pc) and
 * collapsed so the last row at each pc wins and repeats of the same rule are
 * merged. Lookup is a binary search.
 */
#include "core/common.h"
#include "agent/unwind.h"

#include <fcntl.h>
#include <gelf.h>
#include <link.h>
#include <stdatomic.h>
#include <libelf.h>
#include <unistd.h>

#include "core/mem.h"

enum { REG_RBP = 6, REG_RSP = 7, REG_RA = 16 };

typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

static uint64_t rd_u(rd *r, size_t n)
{
    uint64_t v = 0;
    if ((size_t)(r->end - r->p) < n) { r->bad = 1; r->p = r->end; return 0; }
    for (size_t i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static uint64_t rd_uleb(rd *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t rd_sleb(rd *r)
{
    int64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift < 64) v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

/* Reads a pointer in DW_EH_PE encoding enc; base_vaddr is the vaddr of r->p's section start. */
static uint64_t rd_ptr(rd *r, uint8_t enc, const uint8_t *sec, uint64_t sec_vaddr)
{
    uint64_t field_vaddr = sec_vaddr + (uint64_t)(r->p - sec);
    uint64_t v;
    if (enc == 0xff) return 0;
    switch (enc & 0x0f) {
    case 0x00: v = rd_u(r, 8); break;
    case 0x01: v = rd_uleb(r); break;
    case 0x02: v = rd_u(r, 2); break;
    case 0x03: v = rd_u(r, 4); break;
    case 0x04: v = rd_u(r, 8); break;
    case 0x09: v = (uint64_t)rd_sleb(r); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_u(r, 2); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_u(r, 4); break;
    case 0x0c: v = rd_u(r, 8); break;
    default: r->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += field_vaddr; break;
    default: break; /* datarel/textrel/funcrel: not used for x86-64 FDE ranges */
    }
    return v;
}

typedef struct cie {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int has_z;
    const uint8_t *insns, *insns_end;
} cie;

typedef struct state {
    uint8_t cfa_kind;
    uint64_t cfa_reg;
    int64_t cfa_off;
    int fp_saved;
    int64_t fp_off;
    int ra_undef, ra_unknown, fp_unknown;
    int64_t ra_off;
} state;

typedef struct block {
    uint64_t pc;
    size_t first, n;
} block;

typedef struct rows {
    unw_row *v;
    size_t n, cap;
    block *fdes;       /* where each FDE's rows start, for sorting by FDE */
    size_t n_fdes, cap_fdes;
} rows;

static int rows_push(rows *rs, const unw_row *row)
{
    if (rs->n >= UNW_MAX_ROWS) return HE_TOOBIG;
    if (HGROW(rs->v, rs->cap, rs->n + 1)) return -ENOMEM;
    rs->v[rs->n++] = *row;
    return 0;
}

static void state_row(const state *s, uint64_t pc, unw_row *row)
{
    memset(row, 0, sizeof(*row));
    row->pc = pc;
    if (s->ra_undef) {
        row->cfa_kind = UNW_CFA_UNDEF;
        row->ra_off = 1; /* not a gap: a real outermost frame */
        return;
    }
    if (s->ra_unknown || s->cfa_kind == UNW_CFA_UNDEF || s->cfa_off > INT32_MAX || s->cfa_off < INT32_MIN ||
        s->ra_off > INT8_MAX || s->ra_off < INT8_MIN || s->ra_off == 0) {
        row->cfa_kind = UNW_CFA_UNDEF; /* gap: fall back to frame pointers */
        return;
    }
    row->cfa_kind = s->cfa_kind;
    row->cfa_off = (int32_t)s->cfa_off;
    row->ra_off = (int8_t)s->ra_off;
    if (s->fp_saved && !s->fp_unknown && s->fp_off >= INT16_MIN && s->fp_off <= INT16_MAX && s->fp_off != 0)
        row->fp_off = (int16_t)s->fp_off;
}

/* The expression gcc and ld emit for the PLT: rsp + 8 + ((rip & 15) >= 11) * 8. */
static const uint8_t plt_expr_a[] = {0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22};
static const uint8_t plt_expr_b[] = {0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3a, 0x2a, 0x33, 0x24, 0x22};

static void set_cfa_expr(state *s, const uint8_t *x, size_t n)
{
    if ((n == sizeof(plt_expr_a) && !memcmp(x, plt_expr_a, n)) ||
        (n == sizeof(plt_expr_b) && !memcmp(x, plt_expr_b, n))) {
        s->cfa_kind = UNW_CFA_PLT;
        s->cfa_off = 8;
        return;
    }
    /* DW_OP_breg6 (rbp) OFF; DW_OP_deref: stack realignment (main, thread starts). */
    if (n >= 3 && x[0] == 0x76 && x[n - 1] == 0x06) {
        rd r = {x + 1, x + n - 1, 0};
        int64_t off = rd_sleb(&r);
        if (!r.bad && r.p == x + n - 1) {
            s->cfa_kind = UNW_CFA_FP_DEREF;
            s->cfa_off = off;
            return;
        }
    }
    s->cfa_kind = UNW_CFA_UNDEF;
}

#define MAX_REMEMBER 16

/*
 * Runs CFA instructions [p, end). With rs == NULL only the state changes
 * (CIE initial instructions); else rows are emitted from *loc on.
 */
static int run_cfa(const cie *c, const uint8_t *p, const uint8_t *end, state *s, const state *init,
                   uint64_t *loc, rows *rs, const uint8_t *sec, uint64_t sec_vaddr, int is_eh)
{
    state stack[MAX_REMEMBER];
    int depth = 0;
    rd r = {p, end, 0};
    unw_row row;
    int rc;

    while (r.p < r.end && !r.bad) {
        uint8_t op = *r.p++;
        uint8_t hi = op & 0xc0, low = op & 0x3f;
        uint64_t reg = 0, adv = 0;
        int64_t off;
        int advance = 0;

        if (hi == 0x40) {
            adv = low * c->code_align;
            advance = 1;
        } else if (hi == 0x80) {
            reg = low;
            off = (int64_t)rd_uleb(&r) * c->data_align;
            goto set_offset;
        } else if (hi == 0xc0) {
            reg = low;
            goto restore;
        } else {
            switch (op) {
            case 0x00: break;
            case 0x01: {
                uint64_t nl = rd_ptr(&r, is_eh ? c->fde_enc : 0, sec, sec_vaddr);
                if (rs && nl > *loc) { adv = nl - *loc; advance = 1; }
                break;
            }
            case 0x02: adv = rd_u(&r, 1) * c->code_align; advance = 1; break;
            case 0x03: adv = rd_u(&r, 2) * c->code_align; advance = 1; break;
            case 0x04: adv = rd_u(&r, 4) * c->code_align; advance = 1; break;
            case 0x05: reg = rd_uleb(&r); off = (int64_t)rd_uleb(&r) * c->data_align; goto set_offset;
            case 0x06: reg = rd_uleb(&r); goto restore;
            case 0x07:
                reg = rd_uleb(&r);
                if (reg == c->ra_reg) s->ra_undef = 1;
                if (reg == REG_RBP) s->fp_unknown = 1;
                break;
            case 0x08:
                reg = rd_uleb(&r);
                if (reg == REG_RBP) { s->fp_saved = 0; s->fp_unknown = 0; }
                break;
            case 0x09:
                reg = rd_uleb(&r);
                (void)rd_uleb(&r);
                if (reg == c->ra_reg) s->ra_unknown = 1;
                if (reg == REG_RBP) s->fp_unknown = 1;
                break;
            case 0x0a:
                if (depth >= MAX_REMEMBER) return HE_FORMAT;
                stack[depth++] = *s;
                break;
            case 0x0b:
                if (depth <= 0) return HE_FORMAT;
                {
                    int ra_undef = s->ra_undef;
                    *s = stack[--depth];
                    (void)ra_undef;
                }
                break;
            case 0x0c:
                s->cfa_reg = rd_uleb(&r);
                s->cfa_off = (int64_t)rd_uleb(&r);
                s->cfa_kind = s->cfa_reg == REG_RSP ? UNW_CFA_SP : s->cfa_reg == REG_RBP ? UNW_CFA_FP : UNW_CFA_UNDEF;
                break;
            case 0x0d:
                s->cfa_reg = rd_uleb(&r);
                s->cfa_kind = s->cfa_reg == REG_RSP ? UNW_CFA_SP : s->cfa_reg == REG_RBP ? UNW_CFA_FP : UNW_CFA_UNDEF;
                break;
            case 0x0e:
                s->cfa_off = (int64_t)rd_uleb(&r);
                break;
            case 0x0f: {
                uint64_t n = rd_uleb(&r);
                if (n > (uint64_t)(r.end - r.p)) return HE_FORMAT;
                set_cfa_expr(s, r.p, n);
                r.p += n;
                break;
            }
            case 0x10: case 0x16: {
                reg = rd_uleb(&r);
                uint64_t n = rd_uleb(&r);
                if (n > (uint64_t)(r.end - r.p)) return HE_FORMAT;
                r.p += n;
                if (reg == c->ra_reg) s->ra_unknown = 1;
                if (reg == REG_RBP) s->fp_unknown = 1;
                break;
            }
            case 0x11: reg = rd_uleb(&r); off = rd_sleb(&r) * c->data_align; goto set_offset;
            case 0x12:
                s->cfa_reg = rd_uleb(&r);
                s->cfa_off = rd_sleb(&r) * c->data_align;
                s->cfa_kind = s->cfa_reg == REG_RSP ? UNW_CFA_SP : s->cfa_reg == REG_RBP ? UNW_CFA_FP : UNW_CFA_UNDEF;
                break;
            case 0x13: s->cfa_off = rd_sleb(&r) * c->data_align; break;
            case 0x14: case 0x15:
                reg = rd_uleb(&r);
                if (op == 0x14) (void)rd_uleb(&r); else (void)rd_sleb(&r);
                if (reg == c->ra_reg) s->ra_unknown = 1;
                if (reg == REG_RBP) s->fp_unknown = 1;
                break;
            case 0x2e: (void)rd_uleb(&r); break;
            case 0x2f: reg = rd_uleb(&r); off = -(int64_t)rd_uleb(&r) * c->data_align; goto set_offset;
            default:
                return HE_FORMAT;
            }
        }
        if (advance && rs) {
            state_row(s, *loc, &row);
            if ((rc = rows_push(rs, &row))) return rc;
            *loc += adv;
        }
        continue;
set_offset:
        if (reg == c->ra_reg) { s->ra_off = off; s->ra_undef = 0; s->ra_unknown = 0; }
        if (reg == REG_RBP) { s->fp_saved = 1; s->fp_off = off; s->fp_unknown = 0; }
        continue;
restore:
        if (init) {
            if (reg == c->ra_reg) { s->ra_off = init->ra_off; s->ra_undef = init->ra_undef; s->ra_unknown = init->ra_unknown; }
            if (reg == REG_RBP) { s->fp_saved = init->fp_saved; s->fp_off = init->fp_off; s->fp_unknown = init->fp_unknown; }
        }
        continue;
    }
    return r.bad ? HE_FORMAT : 0;
}

static int parse_cie(const uint8_t *p, const uint8_t *end, int is_eh, const uint8_t *sec, uint64_t sec_vaddr, cie *c)
{
    rd r = {p, end, 0};
    uint8_t version = (uint8_t)rd_u(&r, 1);
    const char *aug = (const char *)r.p;
    size_t aug_len = strnlen(aug, (size_t)(r.end - r.p));
    if (aug_len == (size_t)(r.end - r.p)) return HE_FORMAT;
    r.p += aug_len + 1;
    memset(c, 0, sizeof(*c));
    c->fde_enc = is_eh ? 0x00 : 0x00;
    if (strstr(aug, "eh")) r.p += 8;
    if (!is_eh && version >= 4) { (void)rd_u(&r, 1); (void)rd_u(&r, 1); }
    c->code_align = rd_uleb(&r);
    c->data_align = rd_sleb(&r);
    c->ra_reg = version == 1 ? rd_u(&r, 1) : rd_uleb(&r);
    if (aug[0] == 'z') {
        uint64_t alen = rd_uleb(&r);
        const uint8_t *aend;
        if (r.bad || alen > (uint64_t)(r.end - r.p)) return HE_FORMAT;
        aend = r.p + alen;
        c->has_z = 1;
        for (const char *a = aug + 1; *a && !r.bad; a++) {
            if (*a == 'R') c->fde_enc = (uint8_t)rd_u(&r, 1);
            else if (*a == 'L') (void)rd_u(&r, 1);
            else if (*a == 'P') { uint8_t enc = (uint8_t)rd_u(&r, 1); (void)rd_ptr(&r, enc & 0x7f, sec, sec_vaddr); }
            else if (*a == 'S' || *a == 'B' || *a == 'G') {}
            else break;
        }
        r.p = aend;
    } else if (aug[0] && strcmp(aug, "eh")) {
        return HE_UNSUPPORTED;
    }
    if (r.bad) return HE_FORMAT;
    c->insns = r.p;
    c->insns_end = end;
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    const unw_row *x = a, *y = b;
    int gx, gy;
    if (x->pc != y->pc) return x->pc < y->pc ? -1 : 1;
    gx = x->cfa_kind == UNW_CFA_UNDEF && x->ra_off == 0;
    gy = y->cfa_kind == UNW_CFA_UNDEF && y->ra_off == 0;
    return gy - gx; /* gaps first, so a real row at the same pc wins */
}

static int block_cmp(const void *a, const void *b)
{
    const block *x = a, *y = b;
    return x->pc < y->pc ? -1 : x->pc > y->pc;
}

/*
 * Each FDE's rows are already sorted and end with its gap row, so sorting
 * the FDEs by start (several times fewer items than rows) and copying their
 * rows in that order sorts the table. Overlapping FDEs (rare) would leave
 * rows going back in pc: then a full sort settles it.
 */
static int sort_blocks(rows *rs)
{
    unw_row *out;
    if (rs->n_fdes) qsort(rs->fdes, rs->n_fdes, sizeof(block), block_cmp);
    out = hmallocarray(rs->n ? rs->n : 1, sizeof(unw_row));
    if (!out) return -ENOMEM;
    size_t w = 0;
    for (size_t b = 0; b < rs->n_fdes; b++) {
        memcpy(out + w, rs->v + rs->fdes[b].first, rs->fdes[b].n * sizeof(unw_row));
        w += rs->fdes[b].n;
    }
    free(rs->v);
    rs->v = out;
    rs->n = w;
    rs->cap = w;
    int sorted = 1;
    for (size_t i = 1; i < w && sorted; i++) sorted = row_cmp(&out[i - 1], &out[i]) <= 0;
    if (!sorted) qsort(out, w, sizeof(unw_row), row_cmp);
    return 0;
}

static int same_rule(const unw_row *a, const unw_row *b)
{
    return a->cfa_kind == b->cfa_kind && a->cfa_off == b->cfa_off && a->ra_off == b->ra_off &&
           a->fp_off == b->fp_off;
}

static int parse_section(rows *rs, const uint8_t *sec, size_t size, uint64_t sec_vaddr, int is_eh,
                         uint64_t *lo, uint64_t *hi, const _Atomic int *cancel, herr *e)
{
    const uint8_t *p = sec, *end = sec + size;
    int rc;
    unsigned n_entries = 0;
    while (p < end) {
        if (cancel && (n_entries++ & 255) == 0 && atomic_load_explicit(cancel, memory_order_relaxed))
            return herr_set(e, -ECANCELED, "cancelled");
        rd r = {p, end, 0};
        uint64_t len = rd_u(&r, 4), id;
        int is64 = 0;
        const uint8_t *entry_end, *id_pos;
        if (r.bad) break;
        if (len == 0) {
            if (is_eh) break;
            p = r.p;
            continue;
        }
        if (len == 0xffffffffu) { len = rd_u(&r, 8); is64 = 1; }
        if (r.bad || len > (uint64_t)(end - r.p))
            return herr_set(e, HE_FORMAT, "CFI entry at offset %zu runs past the end of the section",
                            (size_t)(p - sec));
        entry_end = r.p + len;
        id_pos = r.p;
        id = rd_u(&r, is64 ? 8 : 4);
        r.end = entry_end;
        int is_cie = is_eh ? id == 0 : (is64 ? id == UINT64_MAX : id == 0xffffffffu);
        if (!is_cie) {
            const uint8_t *cie_p;
            cie c;
            uint64_t cie_len;
            if (is_eh) {
                if (id > (uint64_t)(id_pos - sec)) goto bad;
                cie_p = id_pos - id;
            } else {
                if (id >= size) goto bad;
                cie_p = sec + id;
            }
            rd cr = {cie_p, end, 0};
            cie_len = rd_u(&cr, 4);
            if (cie_len == 0xffffffffu) { cie_len = rd_u(&cr, 8); (void)rd_u(&cr, 8); }
            else (void)rd_u(&cr, 4);
            if (cr.bad || cie_len > (uint64_t)(end - cie_p)) goto bad;
            rc = parse_cie(cr.p, cie_p + (cie_len + (cie_len > 0xfffffff0u ? 12 : 4)), is_eh, sec, sec_vaddr, &c);
            if (rc == HE_UNSUPPORTED) { p = entry_end; continue; }
            if (rc) goto bad;
            uint64_t pc_begin = rd_ptr(&r, is_eh ? c.fde_enc : 0, sec, sec_vaddr);
            uint64_t pc_range = rd_ptr(&r, is_eh ? (c.fde_enc & 0x0f) : 0, sec, sec_vaddr);
            if (c.has_z) {
                uint64_t alen = rd_uleb(&r);
                if (r.bad || alen > (uint64_t)(r.end - r.p)) goto bad;
                r.p += alen;
            }
            if (r.bad) goto bad;
            if (pc_begin == 0 || pc_range == 0) { p = entry_end; continue; } /* discarded by the linker */
            size_t first_row = rs->n;
            state s, init;
            memset(&s, 0, sizeof(s));
            s.cfa_kind = UNW_CFA_UNDEF;
            if ((rc = run_cfa(&c, c.insns, c.insns_end, &s, NULL, NULL, NULL, sec, sec_vaddr, is_eh))) goto bad;
            init = s;
            uint64_t loc = pc_begin;
            rc = run_cfa(&c, r.p, entry_end, &s, &init, &loc, rs, sec, sec_vaddr, is_eh);
            if (rc == HE_TOOBIG) return herr_set(e, rc, "CFI has more than %u rows", UNW_MAX_ROWS);
            if (rc) goto bad;
            unw_row row;
            if (loc < pc_begin + pc_range) {
                state_row(&s, loc, &row);
                if ((rc = rows_push(rs, &row))) return herr_set(e, rc, "CFI table too large");
            }
            memset(&row, 0, sizeof(row));
            row.pc = pc_begin + pc_range;
            row.cfa_kind = UNW_CFA_UNDEF;
            if ((rc = rows_push(rs, &row))) return herr_set(e, rc, "CFI table too large");
            if (HGROW(rs->fdes, rs->cap_fdes, rs->n_fdes + 1)) return herr_set(e, -ENOMEM, "out of memory");
            rs->fdes[rs->n_fdes++] = (block){pc_begin, first_row, rs->n - first_row};
            if (pc_begin < *lo) *lo = pc_begin;
            if (pc_begin + pc_range > *hi) *hi = pc_begin + pc_range;
        }
        p = entry_end;
        continue;
bad:
        return herr_set(e, HE_FORMAT, "corrupt CFI entry at offset %zu of %s", (size_t)(p - sec),
                        is_eh ? ".eh_frame" : ".debug_frame");
    }
    return 0;
}

/*
 * The coarse index of t (see unw_table). Buckets start at 256 bytes and
 * double until there are at most half as many as rows; without memory for
 * it, lookups search the whole table as before.
 */
static void build_index(unw_table *t)
{
    uint64_t base, span;
    unsigned shift = 8;
    size_t n, r = 0;
    t->idx = NULL;
    t->n_idx = 0;
    t->idx_shift = 0;
    if (t->n_rows < 64 || t->n_rows > UINT32_MAX) return;
    base = t->rows[0].pc;
    span = t->rows[t->n_rows - 1].pc - base;
    while (shift < 40 && (span >> shift) + 2 > t->n_rows / 2) shift++;
    n = (size_t)(span >> shift) + 1;
    t->idx = hmallocarray(n, sizeof(*t->idx));
    if (!t->idx) return;
    for (size_t k = 0; k < n; k++) {
        uint64_t at = base + ((uint64_t)k << shift);
        while (r + 1 < t->n_rows && t->rows[r + 1].pc <= at) r++;
        t->idx[k] = (uint32_t)r;
    }
    t->n_idx = n;
    t->idx_shift = shift;
}

static int build_elf(unw_table *t, Elf *elf, const _Atomic int *cancel, herr *e)
{
    size_t shstrndx;
    Elf_Scn *scn = NULL, *eh = NULL, *dbg = NULL;
    GElf_Shdr sh, eh_sh = {0}, dbg_sh = {0};
    rows rs = {NULL, 0, 0, NULL, 0, 0};
    int rc;

    memset(t, 0, sizeof(*t));
    if (elf_kind(elf) != ELF_K_ELF) return herr_set(e, HE_FORMAT, "not an ELF file");
    if (elf_getshdrstrndx(elf, &shstrndx)) return herr_set(e, HE_FORMAT, "ELF has no section name table");
    while ((scn = elf_nextscn(elf, scn))) {
        const char *name;
        if (!gelf_getshdr(scn, &sh)) continue;
        name = elf_strptr(elf, shstrndx, sh.sh_name);
        if (!name || sh.sh_type == SHT_NOBITS) continue;
        if (!strcmp(name, ".eh_frame")) { eh = scn; eh_sh = sh; }
        else if (!strcmp(name, ".debug_frame")) { dbg = scn; dbg_sh = sh; }
    }
    if (!eh && !dbg) return herr_set(e, HE_NOTFOUND, "no .eh_frame or .debug_frame section");
    t->lo = UINT64_MAX;
    t->hi = 0;
    {
        /* About one row per 8 bytes of CFI: one allocation instead of many doublings. */
        size_t guess = ((eh ? eh_sh.sh_size : 0) + (dbg ? dbg_sh.sh_size : 0)) / 8 + 16;
        if (guess > UNW_MAX_ROWS) guess = UNW_MAX_ROWS;
        rs.v = hmallocarray(guess, sizeof(unw_row));
        rs.cap = rs.v ? guess : 0;
    }
    if (eh) {
        Elf_Data *d = elf_getdata(eh, NULL);
        if (!d || !d->d_buf) return herr_set(e, HE_FORMAT, "cannot read .eh_frame");
        if ((rc = parse_section(&rs, d->d_buf, d->d_size, eh_sh.sh_addr, 1, &t->lo, &t->hi, cancel, e))) goto fail;
    }
    if (dbg && (!eh || rs.n == 0)) {
        Elf_Data *d = elf_getdata(dbg, NULL);
        if (!d || !d->d_buf) { rc = herr_set(e, HE_FORMAT, "cannot read .debug_frame"); goto fail; }
        if ((rc = parse_section(&rs, d->d_buf, d->d_size, dbg_sh.sh_addr, 0, &t->lo, &t->hi, cancel, e))) goto fail;
        t->from_debug_frame = 1;
    }
    /* FDEs are usually in address order already: skip the sort then. */
    int sorted = 1;
    for (size_t i = 1; i < rs.n && sorted; i++) sorted = row_cmp(&rs.v[i - 1], &rs.v[i]) <= 0;
    if (!sorted && (rc = sort_blocks(&rs)) != 0) { herr_set(e, rc, "out of memory sorting CFI"); goto fail; }
    /* Collapse: last row at each pc wins; drop rows equal to their predecessor. */
    size_t w = 0;
    for (size_t i = 0; i < rs.n; i++) {
        if (w > 0 && rs.v[w - 1].pc == rs.v[i].pc) {
            rs.v[w - 1] = rs.v[i];
            if (w > 1 && same_rule(&rs.v[w - 2], &rs.v[w - 1])) w--;
            continue;
        }
        if (w > 0 && same_rule(&rs.v[w - 1], &rs.v[i])) continue;
        rs.v[w++] = rs.v[i];
    }
    free(rs.fdes);
    t->rows = w ? hreallocarray(rs.v, w, sizeof(unw_row)) : rs.v;
    if (!t->rows) t->rows = rs.v;
    t->n_rows = w;
    if (t->lo == UINT64_MAX) t->lo = 0;
    build_index(t);
    return 0;
fail:
    free(rs.v);
    free(rs.fdes);
    memset(t, 0, sizeof(*t));
    return rc;
}

static int build_fd(unw_table *t, int fd, const _Atomic int *cancel, herr *e)
{
    Elf *elf;
    int rc;
    elf_version(EV_CURRENT);
    elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!elf) return herr_set(e, HE_FORMAT, "not an ELF file: %s", elf_errmsg(-1));
    rc = build_elf(t, elf, cancel, e);
    elf_end(elf);
    return rc;
}

int unw_table_build_fd(unw_table *t, int fd, herr *e) { return build_fd(t, fd, NULL, e); }

int unw_table_build_file_cancel(unw_table *t, const char *path, const _Atomic int *cancel, herr *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
    if (fd < 0) {
        rc = -errno;
        return herr_set(e, rc, "cannot open '%s': %s", path, strerror(errno));
    }
    rc = build_fd(t, fd, cancel, e);
    close(fd);
    return rc;
}

int unw_table_build_file(unw_table *t, const char *path, herr *e)
{
    return unw_table_build_file_cancel(t, path, NULL, e);
}

void unw_table_release(unw_table *t)
{
    free(t->rows);
    free(t->idx);
    memset(t, 0, sizeof(*t));
}

const unw_row *unw_find(const unw_table *t, uint64_t vaddr)
{
    size_t lo = 0, hi;
    const unw_row *row;
    if (!t || !t->n_rows || vaddr < t->rows[0].pc) return NULL;
    hi = t->n_rows;
    if (t->idx) {
        uint64_t k = (vaddr - t->rows[0].pc) >> t->idx_shift;
        if (k < t->n_idx) {
            /* the covering row is at or after idx[k], and at or before idx[k + 1] */
            lo = t->idx[k];
            if (k + 1 < t->n_idx) hi = (size_t)t->idx[k + 1] + 1;
        } else {
            lo = t->idx[t->n_idx - 1];
        }
    }
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->rows[mid].pc <= vaddr) lo = mid; else hi = mid;
    }
    row = &t->rows[lo];
    if (row->cfa_kind == UNW_CFA_UNDEF && row->ra_off == 0) return NULL;
    return row;
}

const unw_module *unw_module_find(const unw_module *mods, size_t n_mods, uint64_t pc)
{
    size_t lo = 0, hi = n_mods;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pc < mods[mid].start) hi = mid;
        else if (pc >= mods[mid].end) lo = mid + 1;
        else return &mods[mid];
    }
    return NULL;
}

/* The registers one frame up from r's, or -1: the common tail of both kinds of step. */
static int step_to(unw_regs *r, uint64_t cfa, uint64_t ra, uint64_t bp)
{
    if (ra == 0) return 0;
    if (cfa <= r->sp) return -1;
    r->ip = ra;
    r->sp = cfa;
    r->bp = bp;
    return 1;
}

int unw_step_fp(unw_regs *r, unw_read_fn read, void *ctx)
{
    uint64_t ra, bp;
    if (r->bp == 0 || r->bp < r->sp || (r->bp & 7)) return -1;
    if (read(ctx, r->bp + 8, &ra) || read(ctx, r->bp, &bp)) return -1;
    return step_to(r, r->bp + 16, ra, bp);
}

int unw_step(const unw_module *mods, size_t n_mods, unw_regs *r, int first, unw_read_fn read, void *ctx)
{
    uint64_t lookup = first ? r->ip : r->ip - 1;
    const unw_module *m = unw_module_find(mods, n_mods, lookup);
    const unw_row *row = m && m->table ? unw_find(m->table, lookup - (uint64_t)m->bias) : NULL;
    uint64_t cfa, ra, bp = r->bp;

    if (!row) return unw_step_fp(r, read, ctx);  /* no CFI: trust the frame pointer chain */
    switch (row->cfa_kind) {
    case UNW_CFA_SP: cfa = r->sp + (int64_t)row->cfa_off; break;
    case UNW_CFA_FP: cfa = r->bp + (int64_t)row->cfa_off; break;
    case UNW_CFA_PLT: cfa = r->sp + 8 + (((r->ip & 15) >= 11) ? 8 : 0); break;
    case UNW_CFA_FP_DEREF:
        if (read(ctx, r->bp + (int64_t)row->cfa_off, &cfa)) return -1;
        break;
    case UNW_CFA_UNDEF: return 0;
    default: return -1;
    }
    if (read(ctx, cfa + (int64_t)row->ra_off, &ra)) return -1;
    if (row->fp_off && read(ctx, cfa + (int64_t)row->fp_off, &bp)) return -1;
    return step_to(r, cfa, ra, bp);
}

size_t unw_backtrace(const unw_module *mods, size_t n_mods, unw_regs r, unw_read_fn read, void *ctx,
                     uint64_t *pcs, size_t max)
{
    size_t n = 0;
    if (!max) return 0;
    pcs[n++] = r.ip;
    while (n < max) {
        if (unw_step(mods, n_mods, &r, n == 1, read, ctx) != 1) break;
        pcs[n++] = r.ip;
    }
    return n;
}

/* ---- this process's modules ---- */

typedef struct self_ctx {
    unw_self *s;
    size_t cap;
    int rc;
} self_ctx;

static int self_add(struct dl_phdr_info *info, size_t size, void *arg)
{
    self_ctx *x = arg;
    (void)size;
    const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
    if (strstr(name, "linux-vdso") || strstr(name, "linux-gate")) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        if (x->s->n_mods == x->cap) {
            size_t nc = x->cap ? 2 * x->cap : 16;
            unw_module *m = hreallocarray(x->s->mods, nc, sizeof(unw_module));
            if (m) x->s->mods = m;
            unw_table *t = m ? hreallocarray(x->s->tables, nc, sizeof(unw_table)) : NULL;
            if (t) x->s->tables = t;
            if (!m || !t) { x->rc = -ENOMEM; return 1; }
            x->cap = nc;
        }
        size_t k = x->s->n_mods++;
        unw_module *m = &x->s->mods[k];
        m->start = info->dlpi_addr + ph->p_vaddr;
        m->end = m->start + ph->p_memsz;
        m->bias = (int64_t)info->dlpi_addr;
        m->table = NULL;
        if (unw_table_build_file(&x->s->tables[k], name, NULL) != 0) memset(&x->s->tables[k], 0, sizeof(unw_table));
    }
    return 0;
}

static int self_cmp(const void *a, const void *b)
{
    const unw_module *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int unw_self_load(unw_self *s, herr *e)
{
    self_ctx x = {s, 0, 0};
    memset(s, 0, sizeof(*s));
    dl_iterate_phdr(self_add, &x);
    if (x.rc) {
        unw_self_release(s);
        return herr_set(e, x.rc, "out of memory listing this process's modules");
    }
    /* Sort modules and their tables together: tables first pointed by index. */
    for (size_t i = 0; i < s->n_mods; i++) s->mods[i].table = (const unw_table *)(uintptr_t)(i + 1);
    if (s->n_mods) qsort(s->mods, s->n_mods, sizeof(unw_module), self_cmp);
    for (size_t i = 0; i < s->n_mods; i++) {
        size_t k = (size_t)(uintptr_t)s->mods[i].table - 1;
        s->mods[i].table = s->tables[k].n_rows ? &s->tables[k] : NULL;
    }
    return 0;
}

void unw_self_release(unw_self *s)
{
    for (size_t i = 0; i < s->n_mods; i++) unw_table_release(&s->tables[i]);
    free(s->tables);
    free(s->mods);
    memset(s, 0, sizeof(*s));
}
