/*
 * perf.c: perf_event_open on every CPU and draining its ring buffers.
 *
 * Owns the event fds and their mmapped rings. Invariant: the tail we write
 * back never passes the head we read (with the acquire/release pairing the
 * kernel documents), so the kernel never overwrites an unread record.
 *
 * Drain order: each poll reads every ring twice. Pass 1 collects the
 * side-band records (mmap2/comm/fork/exit) of every ring without consuming
 * anything and dispatches them sorted by their timestamps (sample_id_all),
 * so a fork on CPU 0 comes before its child's exec on CPU 1; pass 2
 * dispatches the samples and then advances the tails. A sample taken on CPU
 * 1 right after its process mapped a library on CPU 0 is therefore resolved
 * with that mapping known, whatever order the rings are read in.
 */
#include "core/common.h"
#include "agent/perf.h"

#include <dirent.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/mem.h"

#define SAMPLE_TYPE (PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | \
                     PERF_SAMPLE_PERIOD | PERF_SAMPLE_CALLCHAIN)
#define REGS_MASK ((1ULL << 6) | (1ULL << 7) | (1ULL << 8)) /* bp, sp, ip */
#define PERF_WAKEUP_DIV 2 /* the reader is woken when a ring is 1/PERF_WAKEUP_DIV full */

static int sys_perf_event_open(struct perf_event_attr *a, pid_t pid, int cpu, int group, unsigned long flags)
{
    return (int)syscall(SYS_perf_event_open, a, pid, cpu, group, flags);
}

const char *perf_open_hint(int err)
{
    switch (err) {
    case EACCES:
    case EPERM:
        return "permission denied by the kernel: run as root, or give the binary CAP_PERFMON "
               "(setcap cap_perfmon,cap_sys_ptrace+ep), or lower kernel.perf_event_paranoid "
               "(sysctl kernel.perf_event_paranoid=1 for one process, -1 for the whole host)";
    case ENOENT:
    case EOPNOTSUPP:
        return "this kernel or machine does not support the event (no PMU in a VM?)";
    case ESRCH:
        return "no such process";
    case EMFILE:
        return "too many open files: raise the limit (ulimit -n)";
    case ENOSYS:
        return "perf_event_open is not available (seccomp in a container? run with --privileged "
               "or allow perf_event_open)";
    default:
        return strerror(err);
    }
}

static void fill_attr(struct perf_event_attr *a, const perf_opts *o, int hardware, int no_kernel)
{
    memset(a, 0, sizeof(*a));
    a->size = sizeof(*a);
    a->type = hardware ? PERF_TYPE_HARDWARE : PERF_TYPE_SOFTWARE;
    a->config = hardware ? PERF_COUNT_HW_CPU_CYCLES : PERF_COUNT_SW_CPU_CLOCK;
    a->freq = 1;
    a->sample_freq = o->freq;
    a->sample_type = SAMPLE_TYPE;
    if (o->stack_bytes) {
        a->sample_type |= PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
        a->sample_regs_user = REGS_MASK;
        a->sample_stack_user = o->stack_bytes;
    }
    a->disabled = 1;
    a->enable_on_exec = o->enable_on_exec ? 1 : 0;
    a->inherit = o->inherit ? 1 : 0;
    a->mmap = 1;
    a->mmap2 = 1;
    a->comm = 1;
    a->comm_exec = 1;
    a->task = 1;
    a->sample_id_all = 1; /* side-band records carry pid/tid, time, cpu: merged across CPUs by time */
    a->exclude_kernel = no_kernel ? 1 : 0;
    a->exclude_hv = 1;
    a->exclude_idle = 1;
    a->watermark = 1;
    a->wakeup_watermark = 1; /* replaced in perf_open once the ring size is known */
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_CONF);
    return n > 0 && n < 4096 ? (int)n : 1;
}

/*
 * The thread ids of the processes in pids (from /proc/PID/task) into *out
 * (malloc'ed). Stops counting past max: the caller falls back then. A
 * process that has exited contributes nothing.
 */
static size_t list_tids(const pid_t *pids, size_t n_pids, size_t max, pid_t **out)
{
    size_t n = 0, cap = 0;
    *out = NULL;
    for (size_t i = 0; i < n_pids && n <= max; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pids[i]);
        DIR *d = opendir(path);
        struct dirent *de;
        if (!d) continue;
        while ((de = readdir(d)) && n <= max) {
            char *end;
            long tid = strtol(de->d_name, &end, 10);
            if (*end || tid <= 0) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                *out = xrealloc(*out, cap * sizeof(pid_t));
            }
            (*out)[n++] = (pid_t)tid;
        }
        closedir(d);
    }
    return n;
}

/* One event, falling back from cycles to cpu-clock and from kernel+user to user-only on the way. */
static int open_one(struct perf_event_attr *a, const perf_opts *o, int *hardware, int *no_kernel,
                    uint32_t watermark, pid_t pid, int cpu)
{
    for (;;) {
        fill_attr(a, o, *hardware, *no_kernel);
        a->wakeup_watermark = watermark;
        int fd = sys_perf_event_open(a, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd >= 0) return fd;
        if (*hardware && (errno == ENOENT || errno == EOPNOTSUPP || errno == EINVAL)) {
            *hardware = 0; /* no PMU (VM): fall back to cpu-clock */
            continue;
        }
        if (!*no_kernel && (errno == EACCES || errno == EPERM)) {
            *no_kernel = 1; /* paranoid 2: user-space samples are still allowed */
            continue;
        }
        return -1;
    }
}

int perf_open(perf_sampler *ps, const perf_opts *o_in, herr *e)
{
    perf_opts o = *o_in;
    struct perf_event_attr a;
    int hardware = o.use_hardware, no_kernel = o.no_kernel, opened = 0, first_err = 0;

    memset(ps, 0, sizeof(*ps));
    if (!o.freq || o.freq > 100000) return herr_set(e, HE_USAGE, "sampling rate %u Hz is out of range (1..100000)", o.freq);
    if (o.stack_bytes > 65528) o.stack_bytes = 65528;
    o.stack_bytes &= ~7u;
    ps->page = (size_t)sysconf(_SC_PAGESIZE);
    if (!o.ring_pages) {
        /*
         * Half a second of samples per ring (stack copies dominate), 64 KiB
         * .. 8 MiB. The reader is woken when a ring is half full (see
         * PERF_WAKEUP_DIV), so it has a quarter second to start draining
         * before anything is lost (lost records are counted). Each wakeup
         * costs a context switch, which at 97 Hz is a good part of the
         * agent's CPU: a quarter ring doubled them for 1 MiB less per CPU.
         */
        uint64_t want = (uint64_t)o.freq * (o.stack_bytes + 1024) / 2;
        o.ring_pages = 16;
        while ((uint64_t)o.ring_pages * ps->page < want && o.ring_pages < 2048) o.ring_pages *= 2;
    }
    if (o.ring_pages & (o.ring_pages - 1)) return herr_set(e, HE_USAGE, "ring pages must be a power of two");
    ps->page = (size_t)sysconf(_SC_PAGESIZE);
    ps->ring_bytes = ps->page * o.ring_pages;
    ps->n_cpus = online_cpus();
    ps->fds = xmalloc(sizeof(int) * (size_t)ps->n_cpus);
    ps->rings = xcalloc((size_t)ps->n_cpus, sizeof(void *));
    ps->bounce = xmalloc(65536);
    ps->heads = xcalloc((size_t)ps->n_cpus, sizeof(uint64_t));
    for (int c = 0; c < ps->n_cpus; c++) ps->fds[c] = -1;

    /* Per-process events: every thread of the chosen processes on every CPU, unless that is too many fds. */
    pid_t *tids = NULL;
    size_t n_tids = 0;
    int fell_back = 0;
    int *extra_cpu = NULL;
    if (o.n_pids) {
        size_t max_fds = o.max_fds ? o.max_fds : 4096;
        size_t max_tids = max_fds / (size_t)ps->n_cpus;
        n_tids = list_tids(o.pids, o.n_pids, max_tids, &tids);
        if (n_tids == 0) {
            perf_close(ps);
            return herr_set(e, -ESRCH, "process %d does not exist", (int)o.pids[0]);
        }
        if (n_tids > max_tids) {
            free(tids);
            tids = NULL;
            n_tids = 0;
            fell_back = 1;
            o.pid = -1;
        } else {
            o.inherit = 1;
        }
    }
    ps->host_wide = !tids && o.pid == -1;

    for (int c = 0; c < ps->n_cpus; c++) {
        int fd = -1;
        size_t n_targets = tids ? n_tids : 1;
        for (size_t t = 0; t < n_targets; t++) {
            pid_t target = tids ? tids[t] : o.pid;
            int tfd = open_one(&a, &o, &hardware, &no_kernel, (uint32_t)(ps->ring_bytes / PERF_WAKEUP_DIV), target, c);
            if (tfd < 0) {
                if (tids && errno == ESRCH) continue; /* the thread exited since the listing */
                break;
            }
            if (fd < 0) {
                fd = tfd;
                continue;
            }
            ps->extra_fds = xrealloc(ps->extra_fds, (ps->n_extra + 1) * sizeof(int));
            extra_cpu = xrealloc(extra_cpu, (ps->n_extra + 1) * sizeof(int));
            ps->extra_fds[ps->n_extra] = tfd;
            extra_cpu[ps->n_extra++] = c;
        }
        if (fd < 0) {
            if (errno == ENODEV || errno == EINVAL) continue; /* offline CPU */
            if (!first_err) first_err = errno;
            if (errno == ESRCH || errno == EACCES || errno == EPERM || errno == ENOSYS) break;
            continue;
        }
        ps->fds[c] = fd;
        opened++;
    }
    free(tids);
    /*
     * Map every ring at one size; past kernel.perf_event_mlock_kb (a per-user
     * budget for all CPUs, without CAP_IPC_LOCK) halve the size and start over.
     */
    for (int c = 0; opened && c < ps->n_cpus; c++) {
        if (ps->fds[c] < 0) continue;
        void *ring = mmap(NULL, ps->page + ps->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, ps->fds[c], 0);
        if (ring == MAP_FAILED && errno == EPERM && ps->ring_bytes > 2 * ps->page) {
            for (int k = 0; k < c; k++) {
                if (ps->rings[k]) munmap(ps->rings[k], ps->page + ps->ring_bytes);
                ps->rings[k] = NULL;
            }
            ps->ring_bytes /= 2;
            c = -1;
            continue;
        }
        if (ring == MAP_FAILED) {
            int err = errno;
            perf_close(ps);
            return herr_set(e, -err, "cannot map the perf ring buffer: %s (raise kernel.perf_event_mlock_kb, "
                            "or run as root or with CAP_IPC_LOCK)", strerror(err));
        }
        ps->rings[c] = ring;
    }
    /* The other threads' events write into their CPU's ring (it must be mapped first). */
    size_t w = 0;
    for (size_t i = 0; i < ps->n_extra; i++) {
        int c = extra_cpu[i];
        if (ps->rings[c] && ioctl(ps->extra_fds[i], PERF_EVENT_IOC_SET_OUTPUT, ps->fds[c]) == 0)
            ps->extra_fds[w++] = ps->extra_fds[i];
        else
            close(ps->extra_fds[i]);
    }
    ps->n_extra = w;
    free(extra_cpu);
    ps->hardware = hardware;
    ps->has_stack = o.stack_bytes != 0;
    if (!opened) {
        int err = first_err ? first_err : ENODEV;
        perf_close(ps);
        if (err == ESRCH) return herr_set(e, -err, "process %d does not exist", (int)o.pid);
        return herr_set(e, -err, "perf_event_open failed: %s", perf_open_hint(err));
    }
    if (no_kernel && !o.no_kernel)
        herr_set(e, 0, "kernel stacks are not allowed (perf_event_paranoid > 1 without CAP_PERFMON): "
                       "profiling user space only");
    else if (o.use_hardware && !hardware)
        herr_set(e, 0, "no hardware cycles event here (a VM without a PMU?): sampling cpu-clock instead");
    else if (fell_back)
        herr_set(e, 0, "the chosen processes have more threads than %zu events allow on %d CPUs: "
                       "sampling the whole host and keeping their samples",
                 o.max_fds ? o.max_fds : (size_t)4096, ps->n_cpus);
    return 0;
}

int perf_enable(perf_sampler *ps)
{
    for (int c = 0; c < ps->n_cpus; c++)
        if (ps->fds[c] >= 0 && ioctl(ps->fds[c], PERF_EVENT_IOC_ENABLE, 0) != 0) return -errno;
    for (size_t i = 0; i < ps->n_extra; i++)
        if (ioctl(ps->extra_fds[i], PERF_EVENT_IOC_ENABLE, 0) != 0) return -errno;
    return 0;
}

void perf_close(perf_sampler *ps)
{
    if (!ps->fds) return;
    for (int c = 0; c < ps->n_cpus; c++) {
        if (ps->rings[c]) munmap(ps->rings[c], ps->page + ps->ring_bytes);
        if (ps->fds[c] >= 0) close(ps->fds[c]);
    }
    for (size_t i = 0; i < ps->n_extra; i++) close(ps->extra_fds[i]);
    free(ps->extra_fds);
    free(ps->fds);
    free(ps->rings);
    free(ps->bounce);
    free(ps->heads);
    free(ps->side);
    free(ps->side_ents);
    memset(ps, 0, sizeof(*ps));
}

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int take(rd *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n) return -1;
    memcpy(out, r->p, n);
    r->p += n;
    return 0;
}

static int parse_sample(const uint8_t *rec, size_t size, perf_sample *s, int has_regs)
{
    rd r = {rec + sizeof(struct perf_event_header), rec + size};
    uint32_t pidtid[2], cpu[2];
    memset(s, 0, sizeof(*s));
    uint64_t ip;
    if (take(&r, &ip, 8) || take(&r, pidtid, 8) || take(&r, &s->time, 8) || take(&r, cpu, 8) ||
        take(&r, &s->period, 8) || take(&r, &s->n_chain, 8))
        return -1;
    s->pid = pidtid[0];
    s->tid = pidtid[1];
    s->cpu = cpu[0];
    if (s->n_chain > (size_t)(r.end - r.p) / 8) return -1;
    s->chain = (const uint64_t *)r.p;
    r.p += s->n_chain * 8;
    if (!has_regs) return 0;
    if (take(&r, &s->abi, 8)) return -1;
    if (s->abi) {
        uint64_t regs[3];
        if (take(&r, regs, 24)) return -1;
        s->bp = regs[0];
        s->sp = regs[1];
        s->ip = regs[2];
    }
    uint64_t size_req;
    if (take(&r, &size_req, 8)) return -1;
    if (size_req) {
        uint64_t dyn;
        if (size_req > (size_t)(r.end - r.p) - 8) return -1;
        s->stack = r.p;
        r.p += size_req;
        if (take(&r, &dyn, 8)) return -1;
        s->stack_size = dyn < size_req ? dyn : size_req;
    }
    return 0;
}

static void dispatch(perf_sampler *ps, const uint8_t *rec, size_t size, int samples, const perf_handlers *h, void *ctx)
{
    const struct perf_event_header *hd = (const void *)rec;
    const uint8_t *body = rec + sizeof(*hd), *end = rec + size;
    if (samples != (hd->type == PERF_RECORD_SAMPLE)) return;
    ps->records++;
    switch (hd->type) {
    case PERF_RECORD_SAMPLE: {
        perf_sample s;
        ps->samples++;
        if (parse_sample(rec, size, &s, ps->has_stack) == 0 && h->sample) h->sample(ctx, &s);
        break;
    }
    case PERF_RECORD_MMAP2: {
        struct {
            uint32_t pid, tid;
            uint64_t addr, len, pgoff;
            uint32_t maj, min;
            uint64_t ino, ino_gen;
            uint32_t prot, flags;
        } m;
        if ((size_t)(end - body) <= sizeof(m) || !h->mmap) break;
        memcpy(&m, body, sizeof(m));
        const char *fn = (const char *)body + sizeof(m);
        if (!memchr(fn, 0, (size_t)(end - (const uint8_t *)fn))) break;
        perf_mmap_ev ev = {m.pid, m.tid, m.addr, m.len, m.pgoff, m.maj, m.min, m.ino, m.prot, fn};
        h->mmap(ctx, &ev);
        break;
    }
    case PERF_RECORD_MMAP: {
        struct { uint32_t pid, tid; uint64_t addr, len, pgoff; } m;
        if ((size_t)(end - body) <= sizeof(m) || !h->mmap) break;
        memcpy(&m, body, sizeof(m));
        const char *fn = (const char *)body + sizeof(m);
        if (!memchr(fn, 0, (size_t)(end - (const uint8_t *)fn))) break;
        perf_mmap_ev ev = {m.pid, m.tid, m.addr, m.len, m.pgoff, 0, 0, 0, 4 /* PROT_EXEC */, fn};
        h->mmap(ctx, &ev);
        break;
    }
    case PERF_RECORD_COMM: {
        uint32_t pt[2];
        if ((size_t)(end - body) <= 8 || !h->comm) break;
        memcpy(pt, body, 8);
        const char *comm = (const char *)body + 8;
        if (!memchr(comm, 0, (size_t)(end - (const uint8_t *)comm))) break;
        h->comm(ctx, pt[0], pt[1], comm, (hd->misc & PERF_RECORD_MISC_COMM_EXEC) != 0);
        break;
    }
    case PERF_RECORD_FORK:
    case PERF_RECORD_EXIT: {
        uint32_t v[4];
        if ((size_t)(end - body) < 16) break;
        memcpy(v, body, 16);
        if (hd->type == PERF_RECORD_FORK && h->fork) h->fork(ctx, v[0], v[1], v[2]);
        if (hd->type == PERF_RECORD_EXIT && h->exit) h->exit(ctx, v[0], v[2]);
        break;
    }
    case PERF_RECORD_LOST: {
        uint64_t v[2];
        if ((size_t)(end - body) < 16) break;
        memcpy(v, body, 16);
        ps->lost += v[1];
        if (h->lost) h->lost(ctx, v[1]);
        break;
    }
    default:
        break;
    }
}

/* Side-band records of one poll, from every ring, to be dispatched in time order. */
typedef struct side_ent {
    uint64_t time, seq;
    size_t off;
    uint32_t size;
} side_ent;

#define SIDE_MAX_BYTES ((size_t)64 << 20)

static void side_add(perf_sampler *ps, const uint8_t *rec, size_t size, const perf_handlers *h, void *ctx)
{
    side_ent *ents = ps->side_ents;
    uint64_t time = 0;
    /* sample_id trailer: pid/tid, time, cpu/res (the 24 last bytes). */
    if (size >= sizeof(struct perf_event_header) + 24) memcpy(&time, rec + size - 16, 8);
    if (ps->side_len + size > SIDE_MAX_BYTES || hgrow((void **)&ps->side, &ps->side_cap, ps->side_len + size, 1) ||
        hgrow((void **)&ents, &ps->side_ents_cap, ps->n_side + 1, sizeof(side_ent))) {
        dispatch(ps, rec, size, 0, h, ctx); /* over the cap: in ring order rather than not at all */
        return;
    }
    ps->side_ents = ents;
    memcpy(ps->side + ps->side_len, rec, size);
    ents[ps->n_side] = (side_ent){time, ps->n_side, ps->side_len, (uint32_t)size};
    ps->n_side++;
    ps->side_len += size;
}

static int side_cmp(const void *a, const void *b)
{
    const side_ent *x = a, *y = b;
    if (x->time != y->time) return x->time < y->time ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void side_flush(perf_sampler *ps, const perf_handlers *h, void *ctx)
{
    side_ent *ents = ps->side_ents;
    if (!ps->n_side) return;
    qsort(ents, ps->n_side, sizeof(side_ent), side_cmp);
    for (size_t i = 0; i < ps->n_side; i++) dispatch(ps, ps->side + ents[i].off, ents[i].size, 0, h, ctx);
    ps->n_side = 0;
    ps->side_len = 0;
}

/*
 * Walks ring c from tail to *head (read from the ring when *head is 0, and
 * stored back, so pass 2 stops exactly where pass 1 did); with consume,
 * advances the tail.
 */
static int drain(perf_sampler *ps, int c, int samples, int consume, uint64_t *head_io,
                 const perf_handlers *h, void *ctx)
{
    struct perf_event_mmap_page *meta = ps->rings[c];
    const uint8_t *data = (const uint8_t *)ps->rings[c] + ps->page;
    uint64_t head = *head_io ? *head_io : __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail, pos = tail;
    size_t mask = ps->ring_bytes - 1;
    int n = 0;

    while (pos < head) {
        struct perf_event_header hd;
        size_t off = (size_t)(pos & mask);
        const uint8_t *rec;
        if (off + sizeof(hd) <= ps->ring_bytes) {
            memcpy(&hd, data + off, sizeof(hd));
        } else {
            size_t first = ps->ring_bytes - off;
            memcpy(&hd, data + off, first);
            memcpy((uint8_t *)&hd + first, data, sizeof(hd) - first);
        }
        if (hd.size < sizeof(hd) || pos + hd.size > head) break; /* corrupt: stop, resync next poll */
        if (off + hd.size <= ps->ring_bytes) {
            rec = data + off;
        } else {
            size_t first = ps->ring_bytes - off;
            memcpy(ps->bounce, data + off, first);
            memcpy(ps->bounce + first, data, hd.size - first);
            rec = ps->bounce;
        }
        if (!samples && hd.type != PERF_RECORD_SAMPLE) side_add(ps, rec, hd.size, h, ctx);
        else dispatch(ps, rec, hd.size, samples, h, ctx);
        pos += hd.size;
        n++;
    }
    *head_io = pos;
    if (consume) __atomic_store_n(&meta->data_tail, pos, __ATOMIC_RELEASE);
    return n;
}

int perf_poll(perf_sampler *ps, int timeout_ms, const perf_handlers *h, void *ctx)
{
    struct pollfd pfds[4096];
    int np = 0, n = 0;
    for (int c = 0; c < ps->n_cpus && np < (int)ARRAY_SIZE(pfds); c++) {
        if (ps->fds[c] < 0) continue;
        pfds[np].fd = ps->fds[c];
        pfds[np].events = POLLIN;
        np++;
    }
    if (timeout_ms > 0 && poll(pfds, (nfds_t)np, timeout_ms) < 0 && errno != EINTR) return -errno;
    for (int c = 0; c < ps->n_cpus; c++) {
        ps->heads[c] = 0;
        if (ps->rings[c]) drain(ps, c, 0, 0, &ps->heads[c], h, ctx);
    }
    /* A fork on CPU 0 must be seen before its child's exec and mmaps on CPU 1. */
    side_flush(ps, h, ctx);
    for (int c = 0; c < ps->n_cpus; c++)
        if (ps->rings[c] && ps->heads[c]) n += drain(ps, c, 1, 1, &ps->heads[c], h, ctx);
    return n;
}
