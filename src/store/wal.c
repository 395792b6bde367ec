/*
 * wal.c: the write-ahead log. Segments DIR/wal/<seq:016x>.wal, each a
 * 16-byte header then records [u32 length][u32 crc32(payload)][payload]
 * (docs/format.md). A record is appended with one write(2) under the
 * mutex; durability is a separate step so that many writers share one
 * fdatasync (group commit): `written` and `synced` are logical byte counts
 * across segments; a writer waits until synced >= its end; the first
 * waiter that finds no sync running becomes the syncer for everything
 * written so far. Rotation syncs the old segment before the new one starts,
 * so `synced` stays monotonic.
 *
 * Replay reads segments in order; the first record whose length runs past
 * the end or whose CRC does not match ends the log: the segment is
 * truncated there (a torn tail from a crash) and a warning names the file
 * and offset. Later segments are still read (they can only exist when the
 * damage is not a torn tail, which is also logged).
 */
#include "core/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "store/store_int.h"

const double store_fsync_bounds_s[STORE_FSYNC_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

static const char WAL_MAGIC[8] = {'H', 'R', 'T', 'H', 'W', 'A', 'L', '1'};
#define WAL_HDR 16
#define WAL_MAX_RECORD (1u << 30)

static void seg_path(char *out, size_t n, const char *dir, uint64_t seq)
{
    snprintf(out, n, "%s/%016" PRIx64 ".wal", dir, seq);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * fdatasync(fd) timed into w's fsync histogram (atomics: callers may or may
 * not hold w->mu). Returns fdatasync's result; errno is kept.
 */
static int timed_fdatasync(st_wal *w, int fd)
{
    int64_t t0 = mono_ns();
    int rc = fdatasync(fd);
    int err = errno;
    int64_t d = mono_ns() - t0;
    if (d < 0)
        d = 0;
    double secs = (double)d / 1e9;
    size_t b = 0;
    while (b < STORE_FSYNC_BUCKETS && secs > store_fsync_bounds_s[b])
        b++;
    __atomic_add_fetch(&w->fsync_bucket[b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w->fsync_ns, (uint64_t)d, __ATOMIC_RELAXED);
    if (rc != 0)
        __atomic_add_fetch(&w->fsync_fail, 1, __ATOMIC_RELAXED);
    errno = err;
    return rc;
}

static int seg_create(st_wal *w, herr *e)
{
    char path[PATH_MAX];
    seg_path(path, sizeof(path), w->dir, w->seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return herr_set(e, -errno, "cannot create WAL segment \"%s\": %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size == 0) {
        uint8_t hdr[WAL_HDR];
        memcpy(hdr, WAL_MAGIC, 8);
        st_put32(hdr + 8, STORE_WAL_VERSION);
        st_put32(hdr + 12, 0);
        int rc = write_all(fd, hdr, sizeof(hdr));
        if (rc) {
            close(fd);
            return herr_set(e, rc, "cannot write WAL segment \"%s\": %s", path, strerror(-rc));
        }
        w->seg_bytes = WAL_HDR;
    } else {
        w->seg_bytes = (uint64_t)st.st_size;
    }
    w->fd = fd;
    st_fsync_dir(w->dir);
    return 0;
}

int st_wal_open(st_wal *w, const char *dir, uint64_t seq, enum store_fsync policy, herr *e)
{
    memset(w, 0, sizeof(*w));
    w->dir = xstrdup(dir);
    w->seq = seq;
    w->policy = policy;
    w->fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return seg_create(w, e);
}

void st_wal_close(st_wal *w)
{
    if (!w->dir)
        return;
    if (w->fd >= 0) {
        if (w->policy != STORE_FSYNC_NEVER)
            fdatasync(w->fd);
        close(w->fd);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->dir);
    w->dir = NULL;
}

int st_wal_append(st_wal *w, const void *payload, size_t n, uint64_t *pos)
{
    if (n > WAL_MAX_RECORD)
        return HE_TOOBIG;
    uint8_t hdr[8];
    st_put32(hdr, (uint32_t)n);
    st_put32(hdr + 4, st_crc32(payload, n));
    pthread_mutex_lock(&w->mu);
    if (w->failed) {
        pthread_mutex_unlock(&w->mu);
        return -EIO;
    }
    /* One writev per record, so a crash mostly tears at most the last record (the CRC catches it). */
    struct iovec iov[2] = {{hdr, 8}, {(void *)payload, n}};
    int rc = 0;
    size_t left = 8 + n;
    if (w->fail_after && w->written + left > w->fail_after) {
        /* Test hook: the disk fills up part way through this record. */
        size_t room = w->fail_after > w->written ? (size_t)(w->fail_after - w->written) : 0;
        if (room < 8) {
            iov[0].iov_len = room;
            iov[1].iov_len = 0;
        } else {
            iov[1].iov_len = room - 8;
        }
        left = room;
        rc = -ENOSPC;
    }
    while (left > 0) {
        ssize_t wr = writev(w->fd, iov, 2);
        if (wr < 0) {
            if (errno == EINTR)
                continue;
            if (!rc)
                rc = -errno;
            break;
        }
        left -= (size_t)wr;
        for (int k = 0; k < 2; k++) {
            size_t take = MIN((size_t)wr, iov[k].iov_len);
            iov[k].iov_base = (char *)iov[k].iov_base + take;
            iov[k].iov_len -= take;
            wr -= (ssize_t)take;
        }
    }
    if (rc) {
        /* Cut the partial record so the next append starts clean. */
        if (ftruncate(w->fd, (off_t)w->seg_bytes) != 0)
            w->failed = 1;
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    w->seg_bytes += 8 + n;
    w->written += 8 + n;
    *pos = w->written;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int st_wal_wait(st_wal *w, uint64_t pos)
{
    if (w->policy != STORE_FSYNC_ALWAYS)
        return 0;
    pthread_mutex_lock(&w->mu);
    while (w->synced < pos && !w->failed) {
        if (!w->syncing) {
            w->syncing = 1;
            uint64_t target = w->written;
            int fd = w->fd;
            pthread_mutex_unlock(&w->mu);
            int rc = timed_fdatasync(w, fd);
            pthread_mutex_lock(&w->mu);
            w->syncing = 0;
            if (rc != 0)
                w->failed = 1; /* after a failed fsync the page cache state is unknown: stop acknowledging */
            else if (target > w->synced)
                w->synced = target;
            pthread_cond_broadcast(&w->cv);
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
    }
    int rc = w->failed ? -EIO : 0;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int st_wal_sync(st_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->written;
    int rc = timed_fdatasync(w, w->fd) ? -errno : 0;
    if (!rc && target > w->synced)
        w->synced = target;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int st_wal_rotate(st_wal *w, herr *e)
{
    pthread_mutex_lock(&w->mu);
    while (w->syncing)
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = 0;
    if (w->policy != STORE_FSYNC_NEVER && timed_fdatasync(w, w->fd) != 0) {
        w->failed = 1;
        rc = herr_set(e, -EIO, "WAL fsync failed: %s", strerror(errno));
    }
    if (!rc) {
        w->synced = w->written;
        close(w->fd);
        w->fd = -1;
        w->seq++;
        rc = seg_create(w, e);
        if (rc)
            w->failed = 1;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Segment numbers in dir, sorted; caller frees. */
static int list_segments(const char *dir, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l != 20 || strcmp(de->d_name + 16, ".wal") != 0)
            continue;
        char *end;
        uint64_t seq = strtoull(de->d_name, &end, 16);
        if (end != de->d_name + 16)
            continue;
        if (HGROW(*out, cap, *n + 1)) {
            closedir(d);
            return -ENOMEM;
        }
        (*out)[(*n)++] = seq;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

void st_wal_remove_upto(const char *dir, uint64_t upto)
{
    uint64_t *segs;
    size_t n;
    if (list_segments(dir, &segs, &n))
        return;
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        if (segs[i] > upto)
            continue;
        seg_path(path, sizeof(path), dir, segs[i]);
        unlink(path);
    }
    free(segs);
    st_fsync_dir(dir);
}

int st_wal_replay(const char *dir, uint64_t after, int read_only,
                  int (*fn)(void *arg, uint64_t seq, const uint8_t *p, size_t n), void *arg,
                  uint64_t *last_seq, uint64_t *bytes, herr *e)
{
    uint64_t *segs;
    size_t n;
    int rc = list_segments(dir, &segs, &n);
    if (rc)
        return herr_set(e, rc, "cannot list WAL directory \"%s\": %s", dir, strerror(-rc));
    *last_seq = after;
    *bytes = 0;
    char path[PATH_MAX];
    buf data;
    buf_init(&data, (size_t)8 << 30);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (segs[i] > *last_seq)
            *last_seq = segs[i];
        if (segs[i] <= after)
            continue;
        seg_path(path, sizeof(path), dir, segs[i]);
        buf_reset(&data);
        rc = buf_read_file(&data, path);
        if (rc) {
            rc = herr_set(e, rc, "cannot read WAL segment \"%s\": %s", path, hearth_strerror(rc));
            break;
        }
        *bytes += data.len;
        const uint8_t *p = (const uint8_t *)data.data;
        size_t len = data.len, off = WAL_HDR, good = WAL_HDR;
        const char *why = NULL;
        if (len < WAL_HDR || memcmp(p, WAL_MAGIC, 8) != 0) {
            why = "bad or missing segment header";
            good = 0;
            off = len;
        } else if (st_get32(p + 8) < 1 || st_get32(p + 8) > STORE_WAL_VERSION) {
            rc = herr_set(e, HE_UNSUPPORTED, "WAL segment \"%s\" has format version %u; this hearth reads versions 1 to %d",
                          path, st_get32(p + 8), STORE_WAL_VERSION);
            break;
        }
        while (off < len) {
            if (len - off < 8) {
                why = "partial record header";
                break;
            }
            uint32_t rl = st_get32(p + off), crc = st_get32(p + off + 4);
            if (rl > len - off - 8) {
                why = "record runs past the end";
                break;
            }
            if (st_crc32(p + off + 8, rl) != crc) {
                why = "record checksum mismatch";
                break;
            }
            rc = fn(arg, segs[i], p + off + 8, rl);
            if (rc)
                break;
            off += 8 + rl;
            good = off;
        }
        if (rc)
            break;
        if (why) {
            int last = i + 1 == n;
            if (read_only) {
                log_warn("WAL segment \"%s\": %s at offset %zu; %zu bytes after it ignored (read-only)",
                         path, why, good, len - good);
            } else {
                log_warn("WAL segment \"%s\": %s at offset %zu; truncating %zu bytes%s", path, why, good, len - good,
                         last ? " (torn tail from an interrupted write)" : " (damage before the last segment: records after it are lost)");
                int fd = open(path, O_WRONLY | O_CLOEXEC);
                if (fd >= 0) {
                    if (good == 0) {
                        uint8_t hdr[WAL_HDR];
                        memcpy(hdr, WAL_MAGIC, 8);
                        st_put32(hdr + 8, STORE_WAL_VERSION);
                        st_put32(hdr + 12, 0);
                        if (ftruncate(fd, 0) == 0 && write_all(fd, hdr, WAL_HDR) == 0)
                            good = WAL_HDR;
                    } else if (ftruncate(fd, (off_t)good) != 0) {
                        log_warn("cannot truncate \"%s\": %s", path, strerror(errno));
                    }
                    fsync(fd);
                    close(fd);
                }
            }
        }
    }
    buf_release(&data);
    free(segs);
    return rc;
}

int st_rec_encode(buf *out, const char *tenant, const store_label *labels, size_t n,
                  const profile *p, int64_t time_ns, int64_t duration_ns)
{
    int rc;
    if ((rc = st_putv(out, 1)) || (rc = st_puts(out, tenant, strlen(tenant))) || (rc = st_putv(out, n)))
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = st_puts(out, labels[i].name, strlen(labels[i].name))) ||
            (rc = st_puts(out, labels[i].value, strlen(labels[i].value))))
            return rc;
    if ((rc = st_putz(out, time_ns)) || (rc = st_putz(out, duration_ns)))
        return rc;
    return st_blob_encode(p, out);
}

int st_rec_type(const uint8_t *p, size_t n)
{
    st_rd r = {p, p + n};
    uint64_t t;
    if (st_getv(&r, &t) || (t != 1 && t != 2))
        return 0;
    return (int)t;
}

int st_rec_each(const uint8_t *p, size_t n, int (*fn)(void *arg, const uint8_t *p, size_t n), void *arg, herr *e)
{
    return st_rec_type(p, n) == 2 ? st_rec_batch_each(p, n, fn, arg, e) : fn(arg, p, n);
}

int st_rec_batch_each(const uint8_t *p, size_t n, int (*fn)(void *arg, const uint8_t *p, size_t n), void *arg, herr *e)
{
    st_rd r = {p, p + n};
    uint64_t t, cnt;
    if (st_getv(&r, &t) || t != 2 || st_getv_max(&r, STORE_MAX_BATCH, &cnt))
        return herr_set(e, HE_FORMAT, "WAL batch record: bad header");
    /* Check the framing of every sub-record before the first one is applied. */
    const uint8_t *q = r.p;
    for (uint64_t i = 0; i < cnt; i++) {
        if ((size_t)(r.end - q) < 4 || st_get32(q) > (size_t)(r.end - q) - 4)
            return herr_set(e, HE_FORMAT, "WAL batch record: sub-record %" PRIu64 " of %" PRIu64 " runs past the end", i, cnt);
        q += 4 + st_get32(q);
    }
    if (q != r.end)
        return herr_set(e, HE_FORMAT, "WAL batch record: %zu bytes after the last sub-record", (size_t)(r.end - q));
    q = r.p;
    for (uint64_t i = 0; i < cnt; i++) {
        uint32_t l = st_get32(q);
        int rc = fn(arg, q + 4, l);
        if (rc)
            return rc;
        q += 4 + l;
    }
    return 0;
}

/* Strings of a record are copied into the profile's string arena so they outlive the WAL buffer. */
static const char *keep(st_rec *rec, const char *s, size_t n)
{
    int32_t id = prof_str(&rec->prof, s, n);
    return id < 0 ? NULL : prof_s(&rec->prof, (uint32_t)id);
}

int st_rec_decode(st_rec *rec, const uint8_t *p, size_t n, herr *e)
{
    st_rd r = {p, p + n};
    uint64_t type, nl;
    const char *s;
    size_t sl;
    int rc;
    memset(rec, 0, sizeof(*rec));
    if ((rc = prof_init(&rec->prof)))
        return rc;
    if ((rc = st_getv(&r, &type)) || type != 1)
        return herr_set(e, HE_FORMAT, "WAL record: unknown type");
    if ((rc = st_gets(&r, 256, &s, &sl)))
        return herr_set(e, HE_FORMAT, "WAL record: bad tenant");
    /* Decode the profile first into rec->prof, then intern label strings after: ids must start clean. */
    if ((rc = st_getv_max(&r, STORE_MAX_LABELS, &nl)))
        return herr_set(e, HE_FORMAT, "WAL record: bad label count");
    const char *ls[STORE_MAX_LABELS][2];
    size_t ll[STORE_MAX_LABELS][2];
    for (uint64_t i = 0; i < nl; i++)
        for (int k = 0; k < 2; k++)
            if ((rc = st_gets(&r, STORE_MAX_LABEL_VALUE, &ls[i][k], &ll[i][k])))
                return herr_set(e, HE_FORMAT, "WAL record: bad label");
    if ((rc = st_getz(&r, &rec->time_ns)) || (rc = st_getz(&r, &rec->duration_ns)))
        return herr_set(e, HE_FORMAT, "WAL record: bad time");
    if ((rc = st_blob_decode(&rec->prof, &r, e)))
        return rc;
    rec->tenant = keep(rec, s, sl);
    rec->n_labels = nl;
    for (uint64_t i = 0; i < nl; i++) {
        rec->labels[i].name = keep(rec, ls[i][0], ll[i][0]);
        rec->labels[i].value = keep(rec, ls[i][1], ll[i][1]);
        if (!rec->labels[i].name || !rec->labels[i].value)
            return -ENOMEM;
    }
    if (!rec->tenant)
        return -ENOMEM;
    return 0;
}
