/*
 * collect.c: from perf records to per-service profiles.
 *
 * Owns:
 *   files   one entry per ELF file seen in an executable mapping, keyed by
 *           (device, inode) from mmap2 or by path: its PT_LOAD segments
 *           (for load biases), its CFI table (built on first use) and its
 *           symbolizer module. Bounded by max_files (files no process
 *           maps any more are dropped at flush); a table no unwind used for
 *           a while is dropped and rebuilt on next use (drop_idle_tables).
 *   procs   pid -> comm, sorted executable mappings, the unwinder's module
 *           array (rebuilt when mappings change), service group.
 *   groups  service name -> profile under construction, with caches from
 *           frame keys to location ids and from (stack, comm) to sample.
 *
 * Per sample: kernel frames come from the kernel callchain; user frames from
 * a DWARF CFI unwind of the copied stack (frame pointers where no CFI covers
 * a pc), unless that unwind stops early and the kernel's frame-pointer chain
 * is longer. Each pc becomes a location through the group's cache (file
 * offset -> symbolizer), so symbolization cost is per distinct pc, not per
 * sample. Return addresses are looked up at pc - 1 so the call's line is
 * reported, as every debugger does.
 */
#include "core/common.h"
#include "agent/collect.h"

#include <dirent.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/perf_event.h>
#include <malloc.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/unwind.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"

typedef struct seg {
    uint64_t offset, vaddr, filesz;
} seg;

typedef struct cfile {
    uint64_t key;
    char *path;       /* as opened (through /proc/PID/root when possible) */
    char *display;    /* as the process names it */
    seg *segs;
    size_t n_segs;
    int elf_state;    /* 0 unread, 1 ok, -1 not ELF / unreadable */
    unw_table tab;
    int tab_state;    /* 0 not built, 1 built, -1 failed */
    uint64_t tab_used; /* c->flushes when an unwind last used the table */
    sym_module *sym;
    uint64_t sym_gen; /* symbolizer generation sym was looked up in */
    int sym_failed;
    uint32_t refs;    /* mappings pointing here */
    uint32_t maj, min;
    uint64_t ino;     /* the mapped file's identity (0 when unknown) */
} cfile;

typedef struct cmap {
    uint64_t start, end, pgoff;
    uint32_t file;    /* index into c->files, UINT32_MAX for anonymous/special */
    int special;      /* 1 vdso, 2 anonymous/JIT */
} cmap;

typedef struct cproc {
    pid_t pid;
    char comm[16];
    cmap *maps;
    size_t n_maps, cap_maps;
    unw_module *umods;
    uint32_t *lazy;   /* per umod: its file, for building its table on first use */
    size_t n_umods;
    int umods_dirty;
    int scanned, dead, filtered_out, filter_checked;
    int execed;       /* an exec was seen: a late fork record must not overwrite the new image */
    int group;        /* -1 until assigned */
    char container_id[72];
    uint64_t last_rescan;
} cproc;

typedef struct group {
    char *service;
    char *container_id;
    profile p;
    int ready;
    hmap64 locs;      /* frame key -> location */
    hmap64 samples;   /* (stack, comm) -> sample index */
    int32_t comm_key;
} group;

struct collector {
    coll_opts o;
    symbolizer *sym;
    uint64_t sym_gen;
    cfile **files;    /* stable pointers: unwinder modules point at their tables */
    size_t n_files, cap_files;
    hmap64 file_index;
    cproc **procs;
    size_t n_procs, cap_procs;
    hmap64 proc_index;
    group *groups;
    size_t n_groups, cap_groups;
    coll_stats st;
    char host[256];
    uint32_t vdso_file;
    uint64_t flushes;
};

/* ---- files ---- */

static uint64_t file_key(uint32_t maj, uint32_t min, uint64_t ino, const char *path)
{
    if (ino) return hash_u64(((uint64_t)maj << 44) ^ ((uint64_t)min << 24) ^ hash_u64(ino)) | 1;
    return hash_bytes(path, strlen(path), 0x5eed) & ~1ULL;
}

static uint32_t file_get(collector *c, uint64_t key, const char *path, const char *display)
{
    uint32_t idx = hmap64_get(&c->file_index, key);
    if (idx != HMAP_EMPTY) return idx;
    if (HGROW(c->files, c->cap_files, c->n_files + 1)) return UINT32_MAX;
    cfile *f = xcalloc(1, sizeof(*f));
    c->files[c->n_files] = f;
    f->key = key;
    f->path = xstrdup(path);
    f->display = xstrdup(display);
    if (hmap64_put(&c->file_index, key, (uint32_t)c->n_files)) return UINT32_MAX;
    c->st.files++;
    return (uint32_t)c->n_files++;
}

/* 1 when path is the very file that was mapped (or we cannot tell). */
static int same_file(const cfile *f, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!f->ino) return 1;
    return st.st_ino == f->ino && major(st.st_dev) == f->maj && minor(st.st_dev) == f->min;
}

/*
 * Points f->path at a name that opens the mapped file now: its path through
 * the root of pid (alive: we are handling its sample) when that is still the
 * same inode, else /proc/PID/map_files/START-END (the mapping itself: works
 * for deleted or replaced binaries), else the first path seen, else the path
 * as the process named it (same mount namespace, or the process is gone).
 * The path form is preferred because separate debug files are looked up
 * next to it.
 */
static void file_fix_path(cfile *f, pid_t pid, const cmap *m)
{
    char path[4096];
    if (f->display[0] != '/') return;
    snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, f->display);
    if (same_file(f, path)) {
        if (strcmp(path, f->path)) { free(f->path); f->path = xstrdup(path); }
        return;
    }
    if (m) {
        snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->start, m->end);
        if (access(path, R_OK) == 0) {
            if (strcmp(path, f->path)) { free(f->path); f->path = xstrdup(path); }
            return;
        }
    }
    if (access(f->path, R_OK) == 0) return;
    free(f->path);
    f->path = xstrdup(f->display);
}

static void file_read_segs(cfile *f)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    Elf *elf;
    size_t nph;
    f->elf_state = -1;
    if (fd < 0 && strcmp(f->path, f->display)) {
        /* The process is gone (short-lived): try the path from our own namespace. */
        free(f->path);
        f->path = xstrdup(f->display);
        fd = open(f->path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) return;
    elf_version(EV_CURRENT);
    elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (elf && elf_kind(elf) == ELF_K_ELF && elf_getphdrnum(elf, &nph) == 0) {
        f->segs = xcalloc(nph ? nph : 1, sizeof(seg));
        for (size_t i = 0; i < nph; i++) {
            GElf_Phdr ph;
            if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD)
                f->segs[f->n_segs++] = (seg){ph.p_offset, ph.p_vaddr, ph.p_filesz};
        }
        f->elf_state = 1;
    }
    if (elf) elf_end(elf);
    close(fd);
}

/* Builds f's CFI table on first need: only files that show up in stacks pay for it. */
static void file_build_table(cfile *f)
{
    herr e = {0};
    if (f->tab_state != 0 || f->elf_state != 1) return;
    f->tab_state = unw_table_build_file(&f->tab, f->path, &e) == 0 ? 1 : -1;
    if (f->tab_state < 0) log_debug("no CFI for %s: %s", f->display, e.msg);
}

/* The ELF vaddr of file offset off, via its PT_LOAD segments. */
static int file_vaddr(const cfile *f, uint64_t off, uint64_t *vaddr)
{
    for (size_t i = 0; i < f->n_segs; i++) {
        const seg *s = &f->segs[i];
        if (off >= s->offset && off < s->offset + (s->filesz ? s->filesz : 1)) {
            *vaddr = off - s->offset + s->vaddr;
            return 0;
        }
    }
    return -1;
}

/* The vDSO is the same image in every process: dump ours to a memfd the symbolizer can open. */
static void setup_vdso(collector *c)
{
    uint64_t base = getauxval(AT_SYSINFO_EHDR);
    FILE *m;
    char line[512];
    uint64_t lo = 0, hi = 0;
    c->vdso_file = UINT32_MAX;
    if (!base || !(m = fopen("/proc/self/maps", "re"))) return;
    while (fgets(line, sizeof(line), m)) {
        if (!strstr(line, "[vdso]")) continue;
        sscanf(line, "%" SCNx64 "-%" SCNx64, &lo, &hi);
        break;
    }
    fclose(m);
    if (lo != base || hi <= lo || hi - lo > (1u << 20)) return;
    int fd = memfd_create("hearth-vdso", MFD_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, (const void *)lo, hi - lo) != (ssize_t)(hi - lo)) { close(fd); return; }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    /* fd stays open for the collector's lifetime (closed with the process). */
    c->vdso_file = file_get(c, file_key(0, 0, 0, "[vdso]"), path, "[vdso]");
    if (c->vdso_file != UINT32_MAX) c->files[c->vdso_file]->refs = 1u << 30; /* never dropped */
}

/* ---- processes ---- */

static int special_kind(const char *name)
{
    if (!strcmp(name, "[vdso]")) return 1;
    if (name[0] == 0 || name[0] == '[' || !strncmp(name, "//anon", 6) || !strncmp(name, "/memfd:", 7))
        return 2;
    return 0;
}

static cproc *proc_find(collector *c, pid_t pid)
{
    uint32_t idx = hmap64_get(&c->proc_index, (uint64_t)(uint32_t)pid);
    return idx == HMAP_EMPTY ? NULL : c->procs[idx];
}

static void proc_free(cproc *p)
{
    free(p->maps);
    free(p->umods);
    free(p->lazy);
    free(p);
}

static cproc *proc_get(collector *c, pid_t pid)
{
    cproc *p = proc_find(c, pid);
    if (p) return p;
    if (c->n_procs >= c->o.max_procs) return NULL;
    if (HGROW(c->procs, c->cap_procs, c->n_procs + 1)) return NULL;
    p = xcalloc(1, sizeof(*p));
    p->pid = pid;
    p->group = -1;
    if (hmap64_put(&c->proc_index, (uint64_t)(uint32_t)pid, (uint32_t)c->n_procs)) { free(p); return NULL; }
    c->procs[c->n_procs++] = p;
    c->st.procs++;
    return p;
}

static void map_unref(collector *c, const cmap *m)
{
    if (m->file != UINT32_MAX && m->file < c->n_files && c->files[m->file]->refs) c->files[m->file]->refs--;
}

/* Adds an executable mapping, replacing any it overlaps. */
static void proc_add_map(collector *c, cproc *p, uint64_t start, uint64_t end, uint64_t pgoff,
                         uint32_t maj, uint32_t min, uint64_t ino, const char *filename)
{
    size_t w = 0;
    cmap m = {start, end, pgoff, UINT32_MAX, special_kind(filename)};
    if (end <= start) return;
    for (size_t i = 0; i < p->n_maps; i++) {
        if (p->maps[i].start < end && start < p->maps[i].end) { map_unref(c, &p->maps[i]); continue; }
        p->maps[w++] = p->maps[i];
    }
    p->n_maps = w;
    if (p->n_maps >= c->o.max_maps_per_proc) return;
    if (m.special == 1) {
        m.file = c->vdso_file;
    } else if (!m.special) {
        char path[4160], name[4096];
        size_t nl = strlen(filename);
        /* "/bin/x (deleted)": replaced or removed since mapped; map_files still opens it. */
        snprintf(name, sizeof(name), "%s", filename);
        if (nl > 10 && nl < sizeof(name) && !strcmp(filename + nl - 10, " (deleted)")) name[nl - 10] = 0;
        snprintf(path, sizeof(path), "/proc/%d/root%s", (int)p->pid, name);
        m.file = file_get(c, file_key(maj, min, ino, name), path, name);
        if (m.file != UINT32_MAX && !c->files[m.file]->ino) {
            c->files[m.file]->maj = maj;
            c->files[m.file]->min = min;
            c->files[m.file]->ino = ino;
        }
    }
    if (m.file != UINT32_MAX) c->files[m.file]->refs++;
    if (HGROW(p->maps, p->cap_maps, p->n_maps + 1)) return;
    size_t i = p->n_maps;
    while (i > 0 && p->maps[i - 1].start > start) { p->maps[i] = p->maps[i - 1]; i--; }
    p->maps[i] = m;
    p->n_maps++;
    p->umods_dirty = 1;
}

static void proc_clear_maps(collector *c, cproc *p)
{
    for (size_t i = 0; i < p->n_maps; i++) map_unref(c, &p->maps[i]);
    p->n_maps = 0;
    p->umods_dirty = 1;
}

static void read_comm(pid_t pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = 0;
    fclose(f);
}

int coll_parse_cgroup(const char *text, char *unit, size_t unit_size, char *container, size_t container_size)
{
    int found = 0;
    if (unit_size) unit[0] = 0;
    if (container_size) container[0] = 0;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        /* The path is after the second ':' (hierarchy-ID:controllers:path). */
        const char *p1 = memchr(line, ':', len), *p2 = p1 ? memchr(p1 + 1, ':', len - (size_t)(p1 + 1 - line)) : NULL;
        if (p2) {
            const char *path = p2 + 1, *end = line + len;
            /* Container: 64 hex digits after '/', '-' or ':' (docker, containerd, cri-o, podman). */
            for (const char *p = path; p + 64 <= end && !container[0]; p++) {
                size_t k = 0;
                while (k < 64 && ((p[k] >= '0' && p[k] <= '9') || (p[k] >= 'a' && p[k] <= 'f'))) k++;
                if (k == 64 && (p + 64 == end || !((p[64] >= '0' && p[64] <= '9') || (p[64] >= 'a' && p[64] <= 'f'))) &&
                    (p[-1] == '/' || p[-1] == '-' || p[-1] == ':') && container_size > 64) {
                    memcpy(container, p, 64);
                    container[64] = 0;
                    found |= 2;
                }
            }
            /* systemd unit: the last "NAME.service" component, except user sessions' managers. */
            for (const char *p = path; p < end;) {
                const char *slash = memchr(p, '/', (size_t)(end - p));
                const char *comp_end = slash ? slash : end;
                size_t cl = (size_t)(comp_end - p);
                if (cl > 8 && !memcmp(comp_end - 8, ".service", 8) && memcmp(p, "user@", 5) && unit_size > cl - 8) {
                    memcpy(unit, p, cl - 8);
                    unit[cl - 8] = 0;
                    found |= 1;
                }
                p = slash ? slash + 1 : end;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return found;
}

static void read_cgroup(pid_t pid, char *unit, size_t unit_size, char *container, size_t container_size)
{
    char path[64], text[4096];
    size_t n;
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    unit[0] = container[0] = 0;
    if (!f) return;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = 0;
    coll_parse_cgroup(text, unit, unit_size, container, container_size);
}

void coll_scan_proc(collector *c, pid_t pid)
{
    cproc *p = proc_get(c, pid);
    char path[64], line[4608];
    FILE *f;
    if (!p) return;
    p->scanned = 1;
    if (!p->comm[0]) read_comm(pid, p->comm, sizeof(p->comm));
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    if (!(f = fopen(path, "re"))) return;
    while (fgets(line, sizeof(line), f)) {
        uint64_t start, end, off, ino;
        unsigned maj, min;
        char perms[8];
        int pos = 0;
        line[strcspn(line, "\n")] = 0;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &start, &end, perms, &off,
                   &maj, &min, &ino, &pos) < 7)
            continue;
        if (perms[2] != 'x') continue;
        proc_add_map(c, p, start, end, off, maj, min, ino, pos > 0 ? line + pos : "");
    }
    fclose(f);
}

static void proc_build_umods(collector *c, cproc *p)
{
    free(p->umods);
    p->umods = xcalloc(p->n_maps ? p->n_maps : 1, sizeof(unw_module));
    free(p->lazy);
    p->lazy = xcalloc(p->n_maps ? p->n_maps : 1, sizeof(uint32_t));
    p->n_umods = 0;
    for (size_t i = 0; i < p->n_maps; i++) {
        cmap *m = &p->maps[i];
        unw_module *u = &p->umods[p->n_umods++];
        p->lazy[p->n_umods - 1] = UINT32_MAX;
        u->start = m->start;
        u->end = m->end;
        u->bias = 0;
        u->table = NULL;
        if (m->file == UINT32_MAX) continue;
        cfile *f = c->files[m->file];
        if (f->elf_state == 0) { file_fix_path(f, p->pid, m); file_read_segs(f); }
        if (f->elf_state < 0) continue;
        uint64_t vaddr;
        if (file_vaddr(f, m->pgoff, &vaddr) == 0) u->bias = (int64_t)(m->start - vaddr);
        if (!c->o.no_dwarf_unwind && f->tab_state == 1) u->table = &f->tab;
        p->lazy[p->n_umods - 1] = m->file;
    }
    p->umods_dirty = 0;
}

/*
 * Gives the module containing pc its CFI table, building it if this is its
 * first use (or its first since it was dropped as idle), and marks it used.
 */
static void ensure_table(collector *c, cproc *p, uint64_t pc)
{
    const unw_module *um = unw_module_find(p->umods, p->n_umods, pc);
    if (!um || c->o.no_dwarf_unwind) return;
    size_t k = (size_t)(um - p->umods);
    if (p->lazy[k] == UINT32_MAX) return;
    cfile *f = c->files[p->lazy[k]];
    f->tab_used = c->flushes;
    if (um->table) return;
    /* Rebuilt after an idle drop: the process that gave f->path may be gone, this one is live. */
    if (f->tab_state == 0 && k < p->n_maps) file_fix_path(f, p->pid, &p->maps[k]);
    file_build_table(f);
    if (f->tab_state == 1) p->umods[k].table = &f->tab;
    else p->lazy[k] = UINT32_MAX;
}

static int proc_selected(collector *c, cproc *p)
{
    if (p->filter_checked) return !p->filtered_out;
    p->filter_checked = 1;
    if (c->o.self && p->pid == c->o.self) { p->filtered_out = 1; return 0; }
    if (c->o.n_pids) {
        int hit = 0;
        for (size_t i = 0; i < c->o.n_pids; i++) hit |= c->o.pids[i] == p->pid;
        if (!hit) { p->filtered_out = 1; return 0; }
    }
    if (c->o.n_comms) {
        int hit = 0;
        if (!p->comm[0]) read_comm(p->pid, p->comm, sizeof(p->comm));
        for (size_t i = 0; i < c->o.n_comms; i++) hit |= !strcmp(c->o.comms[i], p->comm);
        if (!hit) { p->filtered_out = 1; p->filter_checked = 0; return 0; } /* comm may change at exec */
    }
    return 1;
}

/* ---- groups ---- */

static int group_for(collector *c, cproc *p)
{
    char name[256];
    if (p->group >= 0) return p->group;
    if (c->o.single_group) {
        snprintf(name, sizeof(name), "%s", c->o.service_name ? c->o.service_name : "hearth-record");
    } else {
        char unit[128];
        if (!p->comm[0]) read_comm(p->pid, p->comm, sizeof(p->comm));
        read_cgroup(p->pid, unit, sizeof(unit), p->container_id, sizeof(p->container_id));
        /* --service-name, else the systemd service the process runs in, else its name. */
        if (c->o.service_name) snprintf(name, sizeof(name), "%s", c->o.service_name);
        else if (p->n_maps == 0) snprintf(name, sizeof(name), "kernel"); /* kernel threads: one service, comm labels */
        else if (unit[0] && !p->container_id[0]) snprintf(name, sizeof(name), "%s", unit);
        else snprintf(name, sizeof(name), "%s", p->comm[0] ? p->comm : "unknown");
    }
    for (size_t i = 0; i < c->n_groups; i++) {
        if (!strcmp(c->groups[i].service, name) &&
            !strcmp(c->groups[i].container_id, c->o.single_group ? "" : p->container_id))
            return p->group = (int)i;
    }
    if (HGROW(c->groups, c->cap_groups, c->n_groups + 1)) return -1;
    group *g = &c->groups[c->n_groups];
    memset(g, 0, sizeof(*g));
    g->service = xstrdup(name);
    g->container_id = xstrdup(c->o.single_group ? "" : p->container_id);
    return p->group = (int)c->n_groups++;
}

static int group_ready(collector *c, group *g)
{
    if (g->ready) return 0;
    if (prof_init(&g->p)) return -ENOMEM;
    g->p.limits.max_stack_depth = c->o.max_depth + 64;
    if (prof_add_type(&g->p, "samples", "count") < 0 || prof_add_type(&g->p, "cpu", "nanoseconds") < 0) return -ENOMEM;
    g->p.period_type.type = (uint32_t)prof_cstr(&g->p, "cpu");
    g->p.period_type.unit = (uint32_t)prof_cstr(&g->p, "nanoseconds");
    g->p.period = c->o.rate_hz ? 1000000000LL / c->o.rate_hz : 0;
    g->comm_key = prof_cstr(&g->p, "comm");
    hmap64_init(&g->locs);
    hmap64_init(&g->samples);
    g->ready = 1;
    return 0;
}

static void group_reset(group *g)
{
    if (!g->ready) return;
    prof_release(&g->p);
    hmap64_release(&g->locs);
    hmap64_release(&g->samples);
    g->ready = 0;
}

/* ---- frames to locations ---- */

static int32_t loc_from_result(collector *c, group *g, const sym_result *r, uint64_t address, uint32_t mapping)
{
    prof_line lines[SYM_MAX_INLINE];
    uint32_t n = 0;
    for (int i = 0; i < r->n && n < SYM_MAX_INLINE; i++) {
        const sym_frame *f = &r->frames[i];
        prof_function fn = {0};
        int32_t id;
        if (!f->function) continue;
        fn.name = (uint32_t)prof_cstr(&g->p, f->function);
        fn.system_name = (uint32_t)prof_cstr(&g->p, f->mangled ? f->mangled : f->function);
        fn.filename = f->file ? (uint32_t)prof_cstr(&g->p, f->file) : 0;
        if ((id = prof_function_intern(&g->p, &fn)) < 0) return id;
        lines[n].function = (uint32_t)id;
        lines[n].line = f->line;
        lines[n].column = 0;
        n++;
    }
    return prof_location_add(&g->p, address, mapping, lines, n);
}

static int32_t mapping_for(group *g, const char *file, const char *build_id, int has_symbols)
{
    prof_mapping m = {0};
    m.filename = (uint32_t)prof_cstr(&g->p, file ? file : "");
    m.build_id = build_id ? (uint32_t)prof_cstr(&g->p, build_id) : 0;
    m.has_functions = (uint8_t)has_symbols;
    m.has_filenames = (uint8_t)has_symbols;
    m.has_line_numbers = (uint8_t)has_symbols;
    m.has_inline_frames = (uint8_t)has_symbols;
    return prof_mapping_intern(&g->p, &m);
}

static int32_t kernel_loc(collector *c, group *g, uint64_t pc)
{
    uint64_t key = hash_u64(pc ^ 0x6b65726e656cULL) | (1ULL << 63);
    uint32_t id = hmap64_get(&g->locs, key);
    sym_result r;
    int32_t mid, loc;
    if (id != HMAP_EMPTY) return (int32_t)id;
    sym_kernel_lookup(c->sym, pc, &r);
    if ((mid = mapping_for(g, "[kernel.kallsyms]", NULL, 1)) < 0) return mid;
    loc = loc_from_result(c, g, &r, pc, (uint32_t)mid);
    if (loc >= 0) hmap64_put(&g->locs, key, (uint32_t)loc);
    c->st.kernel_frames++;
    return loc;
}

static const cmap *map_find(const cproc *p, uint64_t pc)
{
    size_t lo = 0, hi = p->n_maps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pc < p->maps[mid].start) hi = mid;
        else if (pc >= p->maps[mid].end) lo = mid + 1;
        else return &p->maps[mid];
    }
    return NULL;
}

static int32_t user_loc(collector *c, group *g, cproc *p, uint64_t pc, int is_return)
{
    const cmap *m = map_find(p, pc);
    uint64_t key, off;
    uint32_t id;
    sym_result r;
    int32_t mid, loc;

    if (!m || m->file == UINT32_MAX) {
        /* JIT (perf map) or unknown: keep the address visible. */
        key = hash_u64(pc ^ ((uint64_t)(uint32_t)p->pid << 40)) & ~(1ULL << 63);
        key ^= 0x4a4954;
        if ((id = hmap64_get(&g->locs, key)) != HMAP_EMPTY) return (int32_t)id;
        char root[64];
        snprintf(root, sizeof(root), "/proc/%d/root", (int)p->pid);
        if (sym_perfmap_lookup(c->sym, p->pid, root, pc, &r) == 0) {
            if ((mid = mapping_for(g, "[jit]", NULL, 1)) < 0) return mid;
            loc = loc_from_result(c, g, &r, pc, (uint32_t)mid);
        } else {
            loc = prof_location_add(&g->p, pc, 0, NULL, 0);
            c->st.unknown_frames++;
        }
        if (loc >= 0) hmap64_put(&g->locs, key, (uint32_t)loc);
        return loc;
    }
    off = pc - m->start + m->pgoff;
    cfile *f = c->files[m->file];
    key = hash_u64(f->key ^ hash_u64(off * 2 + (uint64_t)is_return)) & ~(1ULL << 63);
    if ((id = hmap64_get(&g->locs, key)) != HMAP_EMPTY) return (int32_t)id;
    if (f->sym_gen != c->sym_gen) { f->sym = NULL; f->sym_failed = 0; f->sym_gen = c->sym_gen; }
    if (!f->sym && !f->sym_failed) {
        herr e = {0};
        file_fix_path(f, p->pid, m);
        if (f->elf_state == 0) file_read_segs(f);
        int rc = sym_module_get(c->sym, f->path, f->display, &f->sym, &e);
        if (rc && strcmp(f->path, f->display)) {
            /* The process exited between choosing /proc/PID/... and opening
             * it (short-lived processes): the path from our own namespace
             * still names the file. Failing here would be sticky for every
             * later sample of this binary. */
            free(f->path);
            f->path = xstrdup(f->display);
            herr_clear(&e);
            rc = sym_module_get(c->sym, f->path, f->display, &f->sym, &e);
        }
        if (rc) {
            f->sym_failed = 1;
            log_debug("cannot symbolize %s: %s", f->display, e.msg);
        }
    }
    sym_lookup(c->sym, f->sym, is_return && off ? off - 1 : off, &r);
    if ((mid = mapping_for(g, f->display, r.build_id, r.n > 0)) < 0) return mid;
    /* address = file offset with memory_start 0: prof_frame_name shows module+0xoffset. */
    loc = loc_from_result(c, g, &r, off, (uint32_t)mid);
    if (loc >= 0) hmap64_put(&g->locs, key, (uint32_t)loc);
    if (!r.n) c->st.unknown_frames++;
    return loc;
}

/* ---- samples ---- */

typedef struct stack_mem {
    uint64_t sp;
    const uint8_t *data;
    uint64_t size;
} stack_mem;

static int read_stack(void *ctx, uint64_t addr, uint64_t *out)
{
    const stack_mem *sm = ctx;
    if (addr < sm->sp || addr - sm->sp > sm->size || sm->size - (addr - sm->sp) < 8) return -1;
    memcpy(out, sm->data + (addr - sm->sp), 8);
    return 0;
}

#define MAX_FRAMES 512

static void on_sample(void *ctx, const perf_sample *s)
{
    collector *c = ctx;
    uint64_t kpcs[MAX_FRAMES], fpcs[MAX_FRAMES], dpcs[MAX_FRAMES];
    size_t nk = 0, nf = 0, nd = 0, max_depth = MIN(c->o.max_depth, MAX_FRAMES);
    uint64_t context = 0;
    const uint64_t *upcs;
    size_t nu;
    uint32_t locs[2 * MAX_FRAMES];
    size_t nl = 0;
    cproc *p;
    group *g;
    int gi;

    c->st.samples++;
    if (s->pid == 0 && s->tid == 0) { c->st.skipped++; return; } /* idle */
    p = proc_get(c, (pid_t)s->pid);
    if (!p) { c->st.skipped++; return; }
    if (!proc_selected(c, p)) { c->st.skipped++; return; }
    if (!p->scanned && p->n_maps == 0) coll_scan_proc(c, p->pid);
    p->scanned = 1;
    gi = group_for(c, p);
    if (gi < 0) { c->st.skipped++; return; }
    g = &c->groups[gi];
    if (group_ready(c, g)) { c->st.skipped++; return; }

    for (uint64_t i = 0; i < s->n_chain; i++) {
        uint64_t pc = s->chain[i];
        if (pc >= (uint64_t)PERF_CONTEXT_MAX) { context = pc; continue; }
        if (context == (uint64_t)PERF_CONTEXT_KERNEL && nk < max_depth) kpcs[nk++] = pc;
        else if (context == (uint64_t)PERF_CONTEXT_USER && nf < max_depth) fpcs[nf++] = pc;
    }
    if (s->abi && s->ip && !c->o.no_dwarf_unwind) {
        if (p->umods_dirty) proc_build_umods(c, p);
        if (!map_find(p, s->ip) && p->last_rescan != c->flushes + 1) {
            /* A mapping we missed (lost records, started before us): read /proc once per interval. */
            p->last_rescan = c->flushes + 1;
            coll_scan_proc(c, p->pid);
            proc_build_umods(c, p);
        }
        stack_mem sm = {s->sp, s->stack, s->stack_size};
        unw_regs r = {s->ip, s->sp, s->bp};
        int rc = 1;
        dpcs[nd++] = r.ip;
        for (;;) {
            if (nd >= max_depth) break;
            ensure_table(c, p, nd == 1 ? r.ip : r.ip - 1);
            if ((rc = unw_step(p->umods, p->n_umods, &r, nd == 1, read_stack, &sm)) != 1) break;
            dpcs[nd++] = r.ip;
        }
        /* A clean end of stack, or at least as deep as the FP chain: trust CFI. */
        if (rc == 0 || nd >= max_depth || nd >= nf) { upcs = dpcs; nu = nd; c->st.dwarf_stacks++; }
        else { upcs = fpcs; nu = nf; c->st.fp_stacks++; }
    } else {
        upcs = fpcs;
        nu = nf;
        if (nu) c->st.fp_stacks++;
    }
    if (nu && p->umods_dirty) proc_build_umods(c, p);

    for (size_t i = 0; i < nk && nl < ARRAY_SIZE(locs); i++) {
        int32_t l = kernel_loc(c, g, kpcs[i]);
        if (l >= 0) locs[nl++] = (uint32_t)l;
    }
    for (size_t i = 0; i < nu && nl < ARRAY_SIZE(locs); i++) {
        int32_t l = user_loc(c, g, p, upcs[i], i > 0);
        if (l >= 0) locs[nl++] = (uint32_t)l;
        c->st.user_frames++;
    }
    if (!nl) {
        /* No frame at all (e.g. user-only sampling hit the kernel): keep the time visible. */
        int32_t l = prof_location_for_name(&g->p, "[unknown]", 9);
        if (l >= 0) locs[nl++] = (uint32_t)l;
    }
    int32_t stack = prof_stack_leaf_first(&g->p, locs, nl);
    if (stack < 0) { c->st.skipped++; return; }
    int32_t comm_id = c->o.comm_label ? prof_cstr(&g->p, p->comm[0] ? p->comm : "unknown") : 0;
    uint64_t key = ((uint64_t)(uint32_t)stack << 32) | (uint32_t)(comm_id < 0 ? 0 : comm_id);
    int64_t ns = c->o.hardware || !s->period ? (c->o.rate_hz ? 1000000000LL / c->o.rate_hz : 0) : (int64_t)s->period;
    uint32_t si = hmap64_get(&g->samples, key);
    if (si != HMAP_EMPTY) {
        g->p.values[(size_t)si * 2] += 1;
        g->p.values[(size_t)si * 2 + 1] += ns;
        return;
    }
    int64_t vals[2] = {1, ns};
    prof_label lab = {0};
    lab.key = (uint32_t)g->comm_key;
    lab.str = (uint32_t)(comm_id < 0 ? 0 : comm_id);
    int64_t idx = prof_sample_add(&g->p, (uint32_t)stack, vals, &lab, c->o.comm_label ? 1 : 0);
    if (idx >= 0) hmap64_put(&g->samples, key, (uint32_t)idx);
}

static void on_mmap(void *ctx, const perf_mmap_ev *m)
{
    collector *c = ctx;
    cproc *p;
    if (!(m->prot & PROT_EXEC)) return;
    p = proc_get(c, (pid_t)m->pid);
    if (!p) return;
    proc_add_map(c, p, m->start, m->start + m->len, m->pgoff, m->maj, m->min, m->ino, m->filename);
}

static void on_comm(void *ctx, uint32_t pid, uint32_t tid, const char *comm, int is_exec)
{
    collector *c = ctx;
    cproc *p;
    if (pid != tid && !is_exec) return; /* a thread renamed itself */
    p = proc_get(c, (pid_t)pid);
    if (!p) return;
    snprintf(p->comm, sizeof(p->comm), "%s", comm);
    if (is_exec) {
        p->execed = 1;
        p->dead = 0;
        proc_clear_maps(c, p);
        p->scanned = 1; /* the new image's mmaps follow in the ring */
        p->filter_checked = 0;
        p->group = -1;
    }
}

static void on_fork(void *ctx, uint32_t pid, uint32_t ppid, uint32_t tid)
{
    collector *c = ctx;
    cproc *parent, *child;
    if (pid == ppid) return; /* new thread */
    parent = proc_find(c, (pid_t)ppid);
    child = proc_find(c, (pid_t)pid);
    /*
     * Rings are read one after the other, so a fork written to one ring just
     * after we read it can arrive a poll later than its child's exec and
     * mmaps from another ring: then the child already has its new image.
     */
    if (child && child->execed && !child->dead) return;
    child = proc_get(c, (pid_t)pid);
    if (!child) return;
    proc_clear_maps(c, child);
    child->dead = 0;
    child->execed = 0;
    child->scanned = 1;
    child->filter_checked = 0;
    child->group = -1;
    if (!parent) return;
    memcpy(child->comm, parent->comm, sizeof(child->comm));
    for (size_t i = 0; i < parent->n_maps; i++) {
        cmap m = parent->maps[i];
        if (HGROW(child->maps, child->cap_maps, child->n_maps + 1)) break;
        child->maps[child->n_maps++] = m;
        if (m.file != UINT32_MAX) c->files[m.file]->refs++;
    }
    child->umods_dirty = 1;
}

static void on_exit_ev(void *ctx, uint32_t pid, uint32_t tid)
{
    collector *c = ctx;
    cproc *p;
    if (pid != tid) return;
    p = proc_find(c, (pid_t)pid);
    if (p) p->dead = 1; /* forgotten at the next flush: its samples may still be in other rings */
}

static void on_lost(void *ctx, uint64_t n)
{
    collector *c = ctx;
    c->st.lost += n;
}

static const perf_handlers handlers = {on_sample, on_mmap, on_comm, on_fork, on_exit_ev, on_lost};

const perf_handlers *coll_handlers(void)
{
    return &handlers;
}

/* ---- lifecycle ---- */

collector *coll_new(const coll_opts *o)
{
    collector *c = xcalloc(1, sizeof(*c));
    c->o = *o;
    if (!c->o.max_procs) c->o.max_procs = 32768;
    if (!c->o.max_maps_per_proc) c->o.max_maps_per_proc = 65536;
    if (!c->o.max_files) c->o.max_files = 512;
    if (!c->o.max_table_bytes) c->o.max_table_bytes = (size_t)64 << 20;
    if (!c->o.max_depth) c->o.max_depth = 256;
    sym_opts so = {0};
    const char *urls = getenv("DEBUGINFOD_URLS");
    so.debuginfod = urls && *urls;  /* the agent is its own process: debuginfod when the user configured it */
    c->sym = sym_new(&so);
    if (!c->sym) { log_error("out of memory creating the symbolizer"); abort(); } /* CLI: dies on OOM */
    c->sym_gen = 1;
    hmap64_init(&c->file_index);
    hmap64_init(&c->proc_index);
    if (gethostname(c->host, sizeof(c->host) - 1)) snprintf(c->host, sizeof(c->host), "unknown");
    setup_vdso(c);
    return c;
}

static void file_release(cfile *f)
{
    free(f->path);
    free(f->display);
    free(f->segs);
    unw_table_release(&f->tab);
}

void coll_free(collector *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_files; i++) { file_release(c->files[i]); free(c->files[i]); }
    free(c->files);
    hmap64_release(&c->file_index);
    for (size_t i = 0; i < c->n_procs; i++) proc_free(c->procs[i]);
    free(c->procs);
    hmap64_release(&c->proc_index);
    for (size_t i = 0; i < c->n_groups; i++) {
        group_reset(&c->groups[i]);
        free(c->groups[i].service);
        free(c->groups[i].container_id);
    }
    free(c->groups);
    sym_free(c->sym);
    free(c);
}

/*
 * Drops every file no mapping refers to any more, when there are more than
 * max_files or their CFI tables take more than max_table_bytes; the file
 * array is compacted and the mappings' indices remapped.
 */
static void gc_files(collector *c)
{
    size_t bytes = 0, w = 0;
    for (size_t i = 0; i < c->n_files; i++)
        bytes += c->files[i]->tab.n_rows * sizeof(unw_row) + c->files[i]->tab.n_idx * sizeof(uint32_t);
    if (c->n_files <= c->o.max_files && bytes <= c->o.max_table_bytes) return;
    uint32_t *remap = xmallocarray(c->n_files ? c->n_files : 1, sizeof(uint32_t));
    for (size_t i = 0; i < c->n_files; i++) {
        cfile *f = c->files[i];
        if (!f->refs) {
            file_release(f);
            free(f);
            remap[i] = UINT32_MAX;
            continue;
        }
        remap[i] = (uint32_t)w;
        c->files[w++] = f;
    }
    c->n_files = w;
    hmap64_release(&c->file_index);
    hmap64_init(&c->file_index);
    for (size_t i = 0; i < c->n_files; i++) hmap64_put(&c->file_index, c->files[i]->key, (uint32_t)i);
    if (c->vdso_file != UINT32_MAX) c->vdso_file = remap[c->vdso_file];
    for (size_t i = 0; i < c->n_procs; i++) {
        cproc *p = c->procs[i];
        for (size_t k = 0; k < p->n_maps; k++)
            if (p->maps[k].file != UINT32_MAX) p->maps[k].file = remap[p->maps[k].file];
        p->umods_dirty = 1;
    }
    free(remap);
}

/*
 * Drops the CFI tables no unwind has used for a while: COLL_IDLE_FLUSHES
 * flushes for a file no process maps any more (a compiler that ran once;
 * one run again soon keeps its table), COLL_IDLE_FLUSHES_MAPPED for one
 * still mapped (a process that sleeps: rebuilding costs milliseconds per
 * megabyte of .eh_frame, so not every time it wakes). They are rebuilt
 * from the file on their next use. Every process's unwinder modules point
 * at tables, so they are all rebuilt before their next unwind.
 */
#define COLL_IDLE_FLUSHES 3
#define COLL_IDLE_FLUSHES_MAPPED 30

static void drop_idle_tables(collector *c)
{
    int dropped = 0;
    for (size_t i = 0; i < c->n_files; i++) {
        cfile *f = c->files[i];
        if (f->tab_state != 1 || c->flushes - f->tab_used < (f->refs ? COLL_IDLE_FLUSHES_MAPPED : COLL_IDLE_FLUSHES))
            continue;
        unw_table_release(&f->tab);
        f->tab_state = 0;
        dropped = 1;
    }
    if (!dropped) return;
    for (size_t i = 0; i < c->n_procs; i++) c->procs[i]->umods_dirty = 1;
}

/* Forgets exited processes (also those whose exit record was lost) and, past the caps, unused files. */
static void gc(collector *c)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n_procs; i++) {
        cproc *p = c->procs[i];
        if (!p->dead && kill(p->pid, 0) != 0 && errno == ESRCH) p->dead = 1;
        if (p->dead) { proc_clear_maps(c, p); proc_free(p); continue; }
        p->group = -1; /* groups are renumbered below */
        c->procs[w++] = p;
    }
    c->n_procs = w;
    hmap64_release(&c->proc_index);
    hmap64_init(&c->proc_index);
    for (size_t i = 0; i < c->n_procs; i++) hmap64_put(&c->proc_index, (uint64_t)(uint32_t)c->procs[i]->pid, (uint32_t)i);
    gc_files(c);
    drop_idle_tables(c);
    for (size_t i = 0; i < c->n_groups; i++) {
        free(c->groups[i].service);
        free(c->groups[i].container_id);
    }
    c->n_groups = 0;
}

int coll_flush(collector *c, int64_t start_ns, int64_t end_ns, coll_flush_fn fn, void *ctx)
{
    int n = 0;
    for (size_t i = 0; i < c->n_groups; i++) {
        group *g = &c->groups[i];
        const char *keys[2], *vals[2];
        size_t nlab = 0;
        if (!g->ready) continue;
        if (g->p.n_samples) {
            g->p.time_nanos = start_ns;
            g->p.duration_nanos = end_ns > start_ns ? end_ns - start_ns : 0;
            if (!c->o.single_group) {
                keys[nlab] = "host";
                vals[nlab++] = c->host;
                if (g->container_id[0]) {
                    keys[nlab] = "container_id";
                    vals[nlab++] = g->container_id;
                }
            }
            fn(ctx, g->service, keys, vals, nlab, &g->p);
            n++;
        }
        group_reset(g);
    }
    c->flushes++;
    gc(c);
    sym_trim(c->sym);
    c->sym_gen++;
    malloc_trim(0); /* the interval's profiles are freed: give the pages back */
    return n;
}

void coll_get_stats(const collector *c, coll_stats *st)
{
    *st = c->st;
}
